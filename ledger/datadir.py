"""Making a data directory, whole or not at all (`lotledger init`).

A data directory is `keys/` (the log key and the first admin key), `log.vkey` (the log's
verifier key, for regulators) and `ledger/` (the LMDB environment: settings, the genesis entry
and the checkpoint of size 1, all committed in one transaction by Ledger.initialize). `create`
builds it all in a hidden sibling, syncs every file and directory, and renames the sibling
onto the target: before the rename the target does not exist (or is the empty directory it
was), after it the target is complete. An init that fails (a full disk, a bad passphrase)
removes its sibling, so it can simply be run again; one killed outright leaves only its
hidden sibling `.<name>.init-<random>`, never a partial target for `serve` to open.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from lotledger.ledger.errors import RequestError
from lotledger.ledger.log import Ledger, LedgerConfig
from lotledger.signing.files import atomic_write, fsync_dir
from lotledger.signing.keys import SigningKey
from lotledger.signing.note import NoteSigner


@dataclass(frozen=True)
class Created:
    """What a new data directory holds that its maker hands on: the verifier key goes to
    regulators, the admin key id is the first admin's."""

    data_dir: Path
    origin: str
    log_verifier_key: str
    admin_id: str
    admin_key_id: str

    @property
    def log_key_path(self) -> Path:
        return self.data_dir / "keys" / "log.key"

    @property
    def admin_key_path(self) -> Path:
        return self.data_dir / "keys" / "admin.key"


def create(
    data_dir: Path,
    origin: str,
    *,
    admin_id: str = "admin",
    log_key_passphrase: bytes | None = None,
    config: LedgerConfig | None = None,
) -> Created:
    """Make a new data directory at `data_dir` (which must not exist, or be empty) with a new
    log key (encrypted with `log_key_passphrase` when given) and first admin key.

    Raises RequestError (`data_dir` holds a ledger or anything else), ResourceExhausted
    (DISK_FULL), StorageError, KeyFileError or InvalidKey, OSError. Whatever it raises,
    `data_dir` is as it was and nothing is left beside it.
    """
    data_dir = Path(data_dir)
    _check_target(data_dir)
    parent = data_dir.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    building = parent / f".{data_dir.name}.init-{secrets.token_hex(6)}"
    building.mkdir()
    try:
        keys = building / "keys"
        keys.mkdir()
        log_key, admin_key = SigningKey.generate(), SigningKey.generate()
        log_key.save_pair(keys / "log.key", log_key_passphrase)
        admin_key.save_pair(keys / "admin.key")
        Ledger.initialize(building, origin, log_key, admin_key, admin_id=admin_id, config=config).close()
        vkey = NoteSigner(origin, log_key).verifier_key
        atomic_write(building / "log.vkey", f"{vkey}\n".encode(), sync_dir=False)
        for directory in (keys, building / "ledger", building):  # the names in them, durably
            fsync_dir(directory)
        try:
            os.rename(building, data_dir)  # onto a missing or empty directory only
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                raise RequestError(
                    f"{data_dir} changed while init ran (it must be missing or an empty directory); it was left as it is"
                ) from e
            raise
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    fsync_dir(parent)
    return Created(data_dir, origin, vkey, admin_id, admin_key.key_id)


def _check_target(data_dir: Path) -> None:
    """Raises RequestError unless `data_dir` is missing or an empty directory."""
    if not data_dir.exists():
        return
    if not data_dir.is_dir():
        raise RequestError(f"{data_dir} exists and is not a directory")
    if (data_dir / "ledger" / "data.mdb").exists():
        raise RequestError(f"{data_dir} already holds a ledger")
    if any(data_dir.iterdir()):
        raise RequestError(f"{data_dir} is not empty: init makes a new data directory (give it a new or empty one)")
