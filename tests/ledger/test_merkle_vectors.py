"""Every public RFC 6962 test vector (transparency-dev/merkle, vendored in
tests/ledger/vectors/merkle with its LICENSE): valid cases are accepted and every mutation is refused with ProofError, nothing else."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest

from lotledger.ledger.errors import ProofError
from lotledger.ledger.tlog.merkle import verify_consistency, verify_inclusion


def vectors_dir() -> Path:
    env = os.environ.get("LOTLEDGER_VECTORS")
    return Path(env) if env else Path(__file__).resolve().parent / "vectors" / "merkle"


def cases(kind: str) -> list[Path]:
    root = vectors_dir() / kind
    return sorted(root.rglob("*.json")) if root.is_dir() else []


def b64(value: str | None) -> bytes:
    return base64.b64decode(value) if value else b""


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_the_vectors_are_there() -> None:
    found = len(cases("inclusion")) + len(cases("consistency"))
    assert found >= 190, f"expected the public vectors under {vectors_dir()}, found {found} files"


def _id(path: Path) -> str:
    return str(path.relative_to(vectors_dir()))


@pytest.mark.parametrize("path", cases("inclusion"), ids=_id)
def test_inclusion_vector(path: Path) -> None:
    v = load(path)
    args = (v["leafIdx"], v["treeSize"], b64(v["leafHash"]), [b64(p) for p in v["proof"] or []], b64(v["root"]))
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("path", cases("consistency"), ids=_id)
def test_consistency_vector(path: Path) -> None:
    v = load(path)
    args = (v["size1"], v["size2"], b64(v["root1"]), b64(v["root2"]), [b64(p) for p in v["proof"] or []])
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)
