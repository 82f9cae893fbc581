"""C2SP tlog-tiles: paths as the spec and tessera's tests write them, the tile sets of the
spec's examples, and for every tree size 0..600 (and 65,539, across a full level-1 tile) the
tiles' root and proofs, read back as a tlog-tiles client reads them, equal ledger/merkle's."""

from __future__ import annotations

import random
import struct

import pytest

from lotledger.ledger.core.validation import MAX_RECORD_BYTES
from lotledger.ledger.errors import ProofError, RecordTooLarge, VerificationFailed
from lotledger.ledger.tlog import merkle, tiles
from lotledger.ledger.tlog.tiles import ENTRIES, TileBuilder, TileId, TileReader
from lotledger.v1 import records_pb2


def entry(i: int) -> bytes:
    return f"entry {i}".encode() * (1 + i % 3)


class Log:
    """A log grown entry by entry, with its tiles as a path -> bytes store (what a directory or
    a CDN serves) and the reference tree from ledger/merkle beside it."""

    def __init__(self) -> None:
        self.builder = TileBuilder()
        self.tree = merkle.MemoryTree()
        self.full: dict[str, bytes] = {}
        self.partial: dict[str, bytes] = {}

    def grow(self, n: int) -> None:
        for _ in range(n):
            data = entry(self.tree.size)
            for tile, blob in self.builder.append(data):
                assert tile.full and tile.path not in self.full, tile
                self.full[tile.path] = blob
            self.tree.append(merkle.leaf_hash(data))
        self.partial = {t.path: blob for t, blob in self.builder.partial()}

    def files(self) -> dict[str, bytes]:
        return {**self.full, **self.partial}

    def reader(self, size: int | None = None) -> TileReader:
        return TileReader(self.tree.size if size is None else size, self.files().__getitem__)


# ---- paths ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tile", "path"),
    [
        # c2sp.org/tlog-tiles: "index 1234067 will be encoded as x001/x234/067"
        (TileId(0, 1234067), "tile/0/x001/x234/067"),
        (TileId(0, 1234067, 8), "tile/0/x001/x234/067.p/8"),
        (TileId(ENTRIES, 1234067, 8), "tile/entries/x001/x234/067.p/8"),
        # transparency-dev/tessera api/layout/paths_test.go
        (TileId(0, 0), "tile/0/000"),
        (TileId(0, 0, 255), "tile/0/000.p/255"),
        (TileId(1, 0), "tile/1/000"),
        (TileId(1, 0, 1), "tile/1/000.p/1"),
        (TileId(1, 0, 4), "tile/1/000.p/4"),
        (TileId(15, 455667), "tile/15/x455/667"),
        (TileId(3, 1234567), "tile/3/x001/x234/567"),
        (TileId(15, 123456789), "tile/15/x123/x456/789"),
        (TileId(ENTRIES, 0), "tile/entries/000"),
        (TileId(ENTRIES, 0, 8), "tile/entries/000.p/8"),
        (TileId(ENTRIES, 255), "tile/entries/255"),
        (TileId(ENTRIES, 255, 253), "tile/entries/255.p/253"),
        (TileId(ENTRIES, 256), "tile/entries/256"),
        (TileId(ENTRIES, 123456789), "tile/entries/x123/x456/789"),
        (TileId(ENTRIES, 123456789000), "tile/entries/x123/x456/x789/000"),
        (TileId(63, 999999999999999999, 255), "tile/63/x999/x999/x999/x999/x999/999.p/255"),
        (TileId(63, 2**64 - 1), "tile/63/x018/x446/x744/x073/x709/x551/615"),
        (TileId(0, 1000), "tile/0/x001/000"),
        (TileId(0, 1), "tile/0/001"),
    ],
)
def test_paths(tile: TileId, path: str) -> None:
    assert tile.path == path


@pytest.mark.parametrize(
    ("seq", "size", "path"),
    # tessera's TestEntriesPathForLogIndex: the bundle holding entry `seq` in a log of `size`
    [(0, 256, "tile/entries/000"), (255, 256, "tile/entries/000"), (251, 255, "tile/entries/000.p/255")]
    + [(256, 512, "tile/entries/001"), (256, 257, "tile/entries/001.p/1")]
    + [(123456789 * 256, 123456790 * 256, "tile/entries/x123/x456/789")],
)
def test_the_bundle_of_an_entry(seq: int, size: int, path: str) -> None:
    n = seq // tiles.TILE_WIDTH
    assert TileId(ENTRIES, n, tiles.tile_width(size, ENTRIES, n)).path == path


def test_tiles_the_spec_cannot_name_are_refused() -> None:
    for level, index, width in [(64, 0, 256), (-2, 0, 256), (0, -1, 256), (0, 0, 0), (0, 0, 257)]:
        with pytest.raises(ValueError):
            TileId(level, index, width)


# ---- which tiles a tree has ----------------------------------------------------------------------


def shape(size: int) -> dict[int, tuple[int, int]]:
    """level -> (full tiles, width of the partial tile or 0)."""
    out: dict[int, tuple[int, int]] = {}
    for t in tiles.tiles_for_size(size):
        full, partial = out.get(t.level, (0, 0))
        out[t.level] = (full + 1, partial) if t.full else (full, t.width)
    return out


def test_the_specs_examples_of_which_tiles_exist() -> None:
    # "a tree of size 70,000 will be represented by 273 full level 0 tiles, one partial level 0
    # tile of width 112, one full level 1 tile, one partial level 1 tile of width 17, and one
    # partial level 2 tile of width 1"
    assert shape(70_000) == {0: (273, 112), 1: (1, 17), 2: (0, 1), ENTRIES: (273, 112)}
    # "a tree of size 256 will be represented by a full level 0 tile and a partial level 1 tile of width 1"
    assert shape(256) == {0: (1, 0), 1: (0, 1), ENTRIES: (1, 0)}
    assert shape(0) == {}
    assert shape(1) == {0: (0, 1), ENTRIES: (0, 1)}
    assert [t.path for t in tiles.partial_tiles(70_000)] == [
        "tile/0/273.p/112",
        "tile/1/001.p/17",
        "tile/2/000.p/1",
        "tile/entries/273.p/112",
    ]


def test_new_tiles_are_the_difference_of_the_two_trees() -> None:
    sizes = [0, 1, 2, 255, 256, 257, 511, 512, 600, 65_535, 65_536, 65_537, 70_000, 131_073]
    for old in sizes:
        for new in sizes:
            if old <= new:
                expected = set(tiles.tiles_for_size(new)) - set(tiles.tiles_for_size(old))
                got = list(tiles.new_tiles(old, new))
                assert len(got) == len(set(got)) and set(got) == expected, (old, new)
    with pytest.raises(ValueError):
        list(tiles.new_tiles(5, 4))


# ---- tiles against ledger/merkle --------------------------------------------------------------------


def check_tree(log: Log, rng: random.Random, *, proofs: int = 3) -> None:
    size = log.tree.size
    reader = log.reader()
    assert set(log.files()) == {t.path for t in tiles.tiles_for_size(size)}
    root = log.tree.root()
    assert reader.root() == root == log.builder.root()
    for index in {0, size - 1, *(rng.randrange(size) for _ in range(proofs))} if size else ():
        proof = reader.inclusion_proof(index)
        assert proof == log.tree.inclusion_proof(index, size)
        merkle.verify_inclusion(index, size, log.tree.perfect(0, index), proof, root)
    for old in {1, size, *(rng.randint(1, size) for _ in range(proofs))} if size else ():
        proof = reader.consistency_proof(old)
        merkle.verify_consistency(old, size, log.tree.root(old), root, proof)


def test_every_size_to_600_against_merkle() -> None:
    rng = random.Random(600)
    log = Log()
    check_tree(log, rng)
    for _ in range(600):
        log.grow(1)
        check_tree(log, rng)


def test_a_level_1_tile_fills_and_the_spec_formula_holds() -> None:
    """65,539 entries: 256 full level-0 tiles, one full level-1 tile, a level-2 partial of width
    1, a level-0 partial of width 3. Every tile hash is checked against the spec's definition
    MTH(D[(n*256 + i) * 256**L : (n*256 + i + 1) * 256**L])."""
    rng = random.Random(65_539)
    log = Log()
    log.grow(65_536 + 3)
    assert shape(log.tree.size) == {0: (256, 3), 1: (1, 0), 2: (0, 1), ENTRIES: (256, 3)}
    check_tree(log, rng, proofs=40)
    for path, blob in log.files().items():
        if path.startswith("tile/entries/"):
            continue
        level = int(path.split("/")[1])
        index_text = path.split("/", 2)[2].split(".p/")[0]
        n = int(index_text.replace("x", "").replace("/", ""))
        for i in range(len(blob) // 32):
            assert blob[32 * i : 32 * (i + 1)] == log.tree.perfect(8 * level, n * 256 + i), (path, i)
    # a client holding an older checkpoint reads the same full tiles and its own size's partials
    for old in (300, 65_000, 65_536):
        older = TileReader(old, {**log.full, **partials_at(old)}.__getitem__)
        assert older.root() == log.tree.root(old)
        assert older.consistency_proof(1) == log.tree.consistency_proof(1, old)


def partials_at(size: int) -> dict[str, bytes]:
    """The partial tiles a log of the same entries had at `size` (what an exporter then wrote)."""
    log = Log()
    log.grow(size)
    return log.partial


def test_bundles_hold_the_entries_and_hash_to_level_0() -> None:
    log = Log()
    log.grow(300)
    reader = log.reader()
    assert reader.entries(0) == [entry(i) for i in range(256)]
    assert reader.entries(1) == [entry(i) for i in range(256, 300)]
    blob = log.files()["tile/entries/001.p/44"]
    assert struct.unpack(">H", blob[:2])[0] == len(entry(256)) and blob[2 : 2 + len(entry(256))] == entry(256)
    # a changed entry no longer matches its leaf in the level-0 tile
    files = log.files()
    files["tile/entries/001.p/44"] = blob.replace(b"entry 299", b"entry 2x9")
    with pytest.raises(VerificationFailed, match="entry 299 does not hash"):
        TileReader(300, files.__getitem__).entries(1)
    # cut short, or one entry too many
    for bad in (blob[:-1], blob + blob[:10]):
        files["tile/entries/001.p/44"] = bad
        with pytest.raises(VerificationFailed) as e:
            TileReader(300, files.__getitem__).entries(1)
        assert e.value.reason == "BAD_BUNDLE"


def test_resume_continues_exactly_where_a_published_tree_stopped() -> None:
    """A builder resumed from the partial tiles of size s writes what one that never stopped
    writes; resuming from damaged partial tiles is refused."""
    whole = Log()
    whole.grow(70_000)
    for stop in (0, 1, 255, 256, 257, 65_535, 65_536, 65_537, 69_999):
        prefix = Log()
        prefix.grow(stop)
        resumed = TileBuilder.resume(stop, prefix.files().__getitem__)
        assert resumed.root() == prefix.tree.root()
        written = dict(prefix.full)
        for i in range(stop, 70_000):
            for tile, blob in resumed.append(entry(i)):
                assert tile.path not in written
                written[tile.path] = blob
        written.update({t.path: blob for t, blob in resumed.partial()})
        assert written == whole.files(), stop
    damaged = Log()
    damaged.grow(300)
    files = damaged.files()
    files["tile/0/001.p/44"] = files["tile/0/001.p/44"][:-1]
    with pytest.raises(VerificationFailed, match="not 44 hashes"):
        TileBuilder.resume(300, files.__getitem__)
    files = damaged.files()
    files["tile/entries/001.p/44"] = files["tile/entries/001.p/44"].replace(b"entry 299", b"entry 2x9")
    with pytest.raises(VerificationFailed, match="do not hash to the level-0 tile"):
        TileBuilder.resume(300, files.__getitem__)


def test_the_reader_refuses_tiles_of_the_wrong_width_and_ranges_outside_the_tree() -> None:
    log = Log()
    log.grow(300)
    files = log.files()
    files["tile/0/001.p/44"] += bytes(32)
    with pytest.raises(VerificationFailed) as e:
        TileReader(300, files.__getitem__).root()
    assert e.value.reason == "BAD_TILE"
    with pytest.raises(ProofError):
        log.reader().inclusion_proof(300)
    with pytest.raises(ProofError):
        log.reader().perfect(9, 0)  # 512 leaves: more than the tree has
    with pytest.raises(KeyError):  # a client of a larger checkpoint asks for files that are not there
        TileReader(301, log.files().__getitem__).root()


# ---- entry sizes ------------------------------------------------------------------------------


def test_the_largest_record_makes_an_entry_a_bundle_can_hold() -> None:
    """Worst-case framing: 10-byte seq varint, negative received_at fields (10-byte varints),
    a 64-character key id and a 64-byte signature around a record of MAX_RECORD_BYTES."""
    e = records_pb2.Entry(seq=2**64 - 1, prev_hash=b"\xff" * 32)
    e.received_at.seconds, e.received_at.nanos = -1, -1
    e.signed_record.record_bytes = b"\x01" * MAX_RECORD_BYTES
    e.signed_record.key_id, e.signed_record.signature = "f" * 64, b"\xff" * 64
    data = e.SerializeToString(deterministic=True)
    assert len(data) <= tiles.MAX_ENTRY_BYTES
    builder = TileBuilder()
    builder.append(data)
    assert builder.size == 1


def test_an_entry_too_big_for_a_bundle_is_refused_and_changes_nothing() -> None:
    builder = TileBuilder()
    builder.append(b"a")
    with pytest.raises(RecordTooLarge) as e:
        builder.append(b"\x00" * (tiles.MAX_ENTRY_BYTES + 1))
    assert e.value.reason == "ENTRY_TOO_LARGE_FOR_TILES" and "entry 1 is 65,536 bytes" in e.value.message
    assert builder.size == 1 and [t.path for t, _ in builder.partial()] == ["tile/0/000.p/1", "tile/entries/000.p/1"]
    builder.append(b"\x00" * tiles.MAX_ENTRY_BYTES)  # the largest that fits
    assert builder.size == 2
