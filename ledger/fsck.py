"""Checking a data directory's derived indexes against its entries: an fsck for the ledger.

The entries (and the signed checkpoints) are the truth. The writer (ledger/log.py) derives
the rest from them in the same transaction: `record_ids` (the keys the admission step claims
for each record: its record key, and under rules 2 a new shipment's id and consignee), `tree`
(every perfect subtree hash), `admin_seqs` (the entries that change the key history) and
`meta` size. A verifier that trusts no server reads only the entries and the checkpoint, so a
damaged index passes verification, and then misleads the server: a record id missing from
`record_ids` lets a replay in as a new entry, after which the log fails verification for ever.

- `check_store`: everything, in one read transaction, in one pass over the entries (O(n) time;
  memory for the claimed keys, as a verifier keeps the record ids): `lotledger verify --data-dir`
  runs it after the log itself verifies.
- `quick_check`: what costs O(log n) reads (and, under rules 2, a scan of the shipment claims):
  every server start runs it, and refuses a directory it finds damaged.

Both name what is damaged; neither writes anything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.message import DecodeError

from lotledger.ledger.core import rules
from lotledger.ledger.core.admission import Admitted, Seen, admit
from lotledger.ledger.core.policy import ADMIN_KINDS
from lotledger.ledger.core.registry import Registry
from lotledger.ledger.core.validation import decode_record, record_kind
from lotledger.ledger.errors import LedgerError, StorageError, VerificationFailed
from lotledger.ledger.store import Store, from_u64, tree_key, u64
from lotledger.ledger.tlog import merkle
from lotledger.ledger.tlog.entries import ZERO_HASH, decode_entry
from lotledger.ledger.verify.verifier import open_signed_checkpoint
from lotledger.signing.errors import SigningError
from lotledger.signing.note import Checkpoint, NoteVerifier, parse_note
from lotledger.v1 import records_pb2

# Under rules 2, `record_ids` also holds the claims of shipments (ledger/core/admission.py:
# shipment_key, consignee_key), which start with "#"; no record key does (no participant id does).
CLAIM_PREFIX = b"#"
# Examples of one kind of damage shown in a report; the rest are counted.
_SHOWN = 3


class _Findings:
    """What is damaged, by index, in the order found: a few examples each and a count."""

    def __init__(self) -> None:
        self.found: dict[str, list[str]] = {}

    def add(self, index: str, what: str) -> None:
        self.found.setdefault(index, []).append(what)

    def lines(self) -> list[str]:
        out = []
        for index, items in self.found.items():
            more = f" (and {len(items) - _SHOWN} more)" if len(items) > _SHOWN else ""
            out.append(f"{index}: {'; '.join(items[:_SHOWN])}{more}")
        return out


def tree_node_count(size: int) -> int:
    """How many perfect subtree hashes (leaves included) a tree of `size` leaves has."""
    return 2 * size - size.bit_count()


def check_store(store: Store, log_key: NoteVerifier | None = None) -> None:
    """Check every derived index of `store` against its entries, and each stored checkpoint
    (signed by `log_key`, when given) against the root of the entries it covers.

    Raises VerificationFailed (reason DAMAGED_INDEX) naming each damaged index with examples,
    or StorageError (the store cannot be read).
    """
    findings = _Findings()
    with store.read() as txn:
        size, roots = _check_entries(store, txn, findings)
        checkpoints = _check_checkpoints(store, txn, size, roots, log_key, findings)
        _check_cosignatures(store, txn, checkpoints, findings)
    if findings.found:
        raise VerificationFailed(
            f"the derived indexes of {store.path} do not match its entries: "
            + "; ".join(findings.lines())
            + ". A server trusts these indexes: restore the data directory from a copy before serving it",
            reason="DAMAGED_INDEX",
        )


def _check_entries(store: Store, txn: Any, findings: _Findings) -> tuple[int, dict[int, bytes]]:
    """One pass over the entries: chain, tree, record_ids, admin_seqs and meta size. Returns
    the number of entries that chain from entry 0 and the root at each checkpointed size."""
    wanted = {from_u64(k) for k, _ in store.iterate(txn, "checkpoints")}
    roots: dict[int, bytes] = {}
    claims: dict[bytes, tuple[int, Seen]] = {}  # what record_ids must hold, and what admit keeps
    admin: list[int] = []
    registry = Registry()
    admissible = True
    head, frontier, n = ZERO_HASH, list[bytes](), 0
    for key, value in store.iterate(txn, "entries"):
        if key != u64(n):
            findings.add("entries", f"entry {n} is missing (the next one is entry {from_u64(key)})")
            break
        try:
            link = decode_entry(value, n, head)
        except VerificationFailed as e:
            findings.add("entries", str(e))
            break
        if admissible:
            try:
                record = decode_record(link.entry.signed_record.record_bytes)
                kind = record_kind(record)
                admitted = Admitted(link.entry.signed_record, record, kind, None)
                # The keys were the verifier's to check: here only what the writer derived.
                admission = admit(admitted, n, registry, lambda k: claims.get(k.encode(), _UNSEEN)[1], check_key=False)
            except LedgerError as e:
                findings.add("entries", f"entry {n} is not admissible ({e}): record_ids and admin_seqs not checked")
                admissible = False
            else:
                for claim, seen in admission.claims.items():
                    claims[claim.encode()] = (n, seen)
                if kind in ADMIN_KINDS:
                    admin.append(n)
        frontier, nodes = merkle.append_leaf(frontier, n, link.leaf_hash)
        for level, index, node in nodes:
            stored = store.get(txn, "tree", tree_key(level, index))
            if stored != node:
                what = "missing" if stored is None else f"{stored.hex()[:16]}.., not {node.hex()[:16]}.."
                findings.add("tree", f"node ({level}, {index}) is {what}")
        head, n = link.leaf_hash, n + 1
        if n in wanted:
            roots[n] = merkle.root_from_frontier(frontier, n)

    size_raw = store.get(txn, "meta", b"size")
    stated = from_u64(size_raw) if size_raw is not None else None
    if stated != n:
        findings.add("meta", f"size is {stated}, but the store holds {n} entries")
    for key, _ in store.iterate(txn, "tree"):
        level, index = key[0], from_u64(key[1:])
        if len(key) != 9 or (index + 1) << level > n:
            findings.add("tree", f"node ({level}, {index}) lies beyond the {n} entries")
    if admissible:
        _check_record_ids(store, txn, claims, findings)
        stored_admin = [from_u64(k) for k, _ in store.iterate(txn, "admin_seqs")]
        for seq in sorted(set(admin) - set(stored_admin)):
            findings.add("admin_seqs", f"entry {seq} changes the key history but is not listed")
        for seq in sorted(set(stored_admin) - set(admin)):
            findings.add("admin_seqs", f"entry {seq} is listed but does not change the key history")
    return n, roots


_UNSEEN: tuple[int, Seen | None] = (-1, None)


def _check_record_ids(store: Store, txn: Any, claims: dict[bytes, tuple[int, Seen]], findings: _Findings) -> None:
    missing = {key: seq for key, (seq, _) in claims.items()}
    for key, value in store.iterate(txn, "record_ids"):
        seq = from_u64(value)
        expected = missing.pop(key, None)
        if expected is None:
            findings.add("record_ids", f"{key.decode(errors='replace')!r} names entry {seq}, which does not claim it")
        elif expected != seq:
            findings.add("record_ids", f"{key.decode(errors='replace')!r} names entry {seq}, not entry {expected}")
    for key, seq in missing.items():
        findings.add("record_ids", f"{key.decode(errors='replace')!r} of entry {seq} is missing")


def _check_checkpoints(
    store: Store, txn: Any, size: int, roots: dict[int, bytes], log_key: NoteVerifier | None, findings: _Findings
) -> set[int]:
    """Each checkpoint under its own size, within the log, over the root of its entries."""
    sizes = set()
    for key, note in store.iterate(txn, "checkpoints"):
        at = from_u64(key)
        sizes.add(at)
        try:
            cp = open_signed_checkpoint(note, log_key) if log_key is not None else _parse(note)
        except (VerificationFailed, SigningError) as e:
            findings.add("checkpoints", f"the one under size {at} does not open: {e}")
            continue
        if cp.size != at:
            findings.add("checkpoints", f"the one under size {at} is of size {cp.size}")
        elif at > size:
            findings.add("checkpoints", f"size {at} lies beyond the {size} entries")
        elif roots.get(at) != cp.root_hash:
            findings.add("checkpoints", f"the root of size {at} is not the root of the first {at} entries")
    return sizes


def _parse(note: bytes) -> Checkpoint:
    return Checkpoint.from_body(parse_note(note)[0])


def _check_cosignatures(store: Store, txn: Any, checkpoints: set[int], findings: _Findings) -> None:
    for key, _ in store.iterate(txn, "cosignatures"):
        at = from_u64(key[:8])
        if at not in checkpoints:
            findings.add("cosignatures", f"one is stored for size {at}, which has no checkpoint")


# ---- at every start ----------------------------------------------------------------------


def quick_check(store: Store, txn: Any, record_key: Callable[[records_pb2.Record, int], bytes]) -> list[str]:
    """What can be checked in O(log n) reads: meta size against the last entry and the entry
    count; the tree's node count and last leaf; the latest checkpoint against the stored tree;
    the first admin entry; record_ids' count of record keys against the size, and the last
    entry's key (`record_key(record, log rules)`, the writer's). Returns what is damaged
    (empty: nothing seen). The log must have its genesis entry (the caller checks).

    Raises StorageError (the store cannot be read).
    """
    found = []
    size_raw = store.get(txn, "meta", b"size")
    size = from_u64(size_raw) if size_raw is not None else 0
    last = store.last(txn, "entries")
    count = store.count(txn, "entries")
    if last is None or from_u64(last[0]) != size - 1 or count != size:
        at = "none" if last is None else from_u64(last[0])
        found.append(f"meta: size is {size}, but the store holds {count} entries, the last numbered {at}")
        return found  # the rest is measured against the size

    nodes = store.count(txn, "tree")
    if nodes != tree_node_count(size):
        found.append(f"tree: holds {nodes} nodes, and {size} entries make {tree_node_count(size)}")
    if store.get(txn, "tree", tree_key(0, size - 1)) != merkle.leaf_hash(last[1]):
        found.append(f"tree: the leaf of entry {size - 1} is not the hash of that entry")

    latest = store.last(txn, "checkpoints")
    if latest is not None:
        found += _latest_checkpoint(store, txn, from_u64(latest[0]), latest[1], size)

    first_admin = store.first(txn, "admin_seqs")
    last_admin = store.last(txn, "admin_seqs")
    if first_admin is None or first_admin[0] != u64(0) or last_admin is None or from_u64(last_admin[0]) >= size:
        found.append("admin_seqs: does not start at the genesis entry or lists entries beyond the log")

    try:
        genesis = _record_of(store.get(txn, "entries", u64(0)) or b"")
        last_record = _record_of(last[1])
    except (DecodeError, LedgerError) as e:
        return [*found, f"entries: the first or the last entry does not parse ({e})"]
    log_rules = rules.of_genesis(genesis.participant_registered.rules_version)
    keys = store.count(txn, "record_ids")
    if log_rules >= rules.RULES_2:
        keys -= _count_prefix(store, txn, "record_ids", CLAIM_PREFIX)
    if keys != size:
        found.append(f"record_ids: holds {keys} record keys for {size} entries")
    # (Not the genesis entry: admission keys it before the log has rules, with the rules-1 key.)
    if size > 1 and store.get(txn, "record_ids", record_key(last_record, log_rules)) != u64(size - 1):
        found.append(f"record_ids: the record id of entry {size - 1} does not name it")
    return found


def _record_of(entry: bytes) -> records_pb2.Record:
    return decode_record(records_pb2.Entry.FromString(entry).signed_record.record_bytes)


def _latest_checkpoint(store: Store, txn: Any, at: int, note: bytes, size: int) -> list[str]:
    try:
        cp = _parse(note)
    except SigningError as e:
        return [f"checkpoints: the latest, under size {at}, does not parse: {e}"]
    if cp.size != at or at > size:
        return [f"checkpoints: the latest, under size {at}, is of size {cp.size}; the log has {size} entries"]

    def perfect(level: int, index: int) -> bytes:
        node = store.get(txn, "tree", tree_key(level, index))
        if node is None:
            raise _MissingNode(level, index)
        return bytes(node)

    try:
        root = merkle.root(at, perfect)
    except _MissingNode as e:
        return [f"tree: node {e.args} is missing"]
    if root != cp.root_hash:
        return [f"tree: the stored nodes do not give the root of the latest checkpoint (size {at})"]
    return []


class _MissingNode(StorageError):
    pass


def _count_prefix(store: Store, txn: Any, db: str, prefix: bytes) -> int:
    n = 0
    for key, _ in store.iterate(txn, db, prefix):
        if not key.startswith(prefix):
            break
        n += 1
    return n
