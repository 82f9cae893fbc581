"""The log as a C2SP tlog-tiles directory (https://c2sp.org/tlog-tiles): pure, no I/O.

A tiled log is a set of static files that an auditor can mirror from plain files or a CDN and
from which any tlog-tiles client computes roots and proofs itself:

    checkpoint                  the signed note (C2SP tlog-checkpoint), exactly as the log signed it
    tile/<L>/<N>[.p/<W>]        hash tiles: 256 consecutive hashes of one level, 32 bytes each
    tile/entries/<N>[.p/<W>]    entry bundles: each entry as a big-endian uint16 length + its bytes

Tile height is fixed at 8 by the spec. The hashes of a level-0 tile are leaf hashes; hash i of
tile n at level L is MTH(D[(n*256 + i) * 256**L : (n*256 + i + 1) * 256**L]), i.e. each hash at
level L >= 1 is the root of one *full* tile of the level below. <N> is written in 3-digit groups,
all but the last prefixed with "x" (1234067 -> x001/x234/067). A tree of size s has, at each
level L with s >> 8L > 0, the full tiles n < (s >> 8L) // 256 and, when (s >> 8L) % 256 = W > 0,
one partial tile of width W at the next index: a partial tile is never hashed into the level
above. Entry bundles follow level 0. So a tree of 70,000 entries has 273 full level-0 tiles, a
level-0 partial of width 112, one full level-1 tile, a level-1 partial of 17 and a level-2
partial of 1 (the spec's own example).

Our leaf is the exact stored Entry bytes, and leaf hash = SHA-256(0x00 || entry bytes) (DESIGN
section 4), so a bundle holds the Entry bytes themselves and any tlog-tiles client computes the
same leaf hashes, root and proofs as lotledger. A bundle entry must fit a uint16 length: records
are capped (validation.MAX_RECORD_BYTES) so that every entry the server builds does; an entry
that does not is refused (RecordTooLarge), never truncated into a corrupt bundle.

Three parts: naming (TileId, tiles_for_size, new_tiles), a streaming TileBuilder that keeps only
the current partial tile of each level (constant memory at any size) and can resume from the
partial tiles of a published tree, and a TileReader that does what a tlog-tiles client does
(fetch by path, compute roots and RFC 9162 proofs), against which the builder is tested.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from lotledger.ledger.errors import ProofError, RecordTooLarge, VerificationFailed
from lotledger.ledger.tlog import merkle

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
HASH_SIZE = merkle.HASH_SIZE
MAX_LEVEL = 63
MAX_ENTRY_BYTES = 0xFFFF  # an entry bundle's uint16 length prefix
ENTRIES = -1  # the "level" of entry bundles (as in Go's tlog.Tile, where L = -1 is the data)
CHECKPOINT_PATH = "checkpoint"

Fetch = Callable[[str], bytes]
_LENGTH = struct.Struct(">H")


def index_path(n: int) -> str:
    """<N> of a tile path: 3-digit groups, all but the last prefixed with x (1234067 -> x001/x234/067)."""
    if n < 0:
        raise ValueError(f"tile index {n} is negative")
    groups = [f"{n % 1000:03d}"]
    n //= 1000
    while n:
        groups.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(groups))


@dataclass(frozen=True, order=True)
class TileId:
    """One file of a tiled log: hash tile (`level` 0..63) or entry bundle (`level` ENTRIES),
    its index within the level, and its width (TILE_WIDTH for a full tile, 1..255 partial).

    Raises ValueError on construction for a level, index or width the spec does not allow."""

    level: int
    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        if not ENTRIES <= self.level <= MAX_LEVEL:
            raise ValueError(f"tile level {self.level} is outside [0, {MAX_LEVEL}]")
        if self.index < 0:
            raise ValueError(f"tile index {self.index} is negative")
        if not 1 <= self.width <= TILE_WIDTH:
            raise ValueError(f"tile width {self.width} is outside [1, {TILE_WIDTH}]")

    @property
    def full(self) -> bool:
        return self.width == TILE_WIDTH

    @property
    def is_bundle(self) -> bool:
        return self.level == ENTRIES

    @property
    def path(self) -> str:
        """tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>], relative to the log's prefix."""
        level = "entries" if self.is_bundle else str(self.level)
        partial = "" if self.full else f".p/{self.width}"
        return f"tile/{level}/{index_path(self.index)}{partial}"

    @property
    def partials_dir(self) -> str:
        """The directory that holds this index's partial versions: tile/<L>/<N>.p."""
        level = "entries" if self.is_bundle else str(self.level)
        return f"tile/{level}/{index_path(self.index)}.p"


def _level_count(size: int, level: int) -> int:
    """How many hashes the tree of `size` has at tile level `level` (bundles count as level 0)."""
    return size >> (TILE_HEIGHT * max(level, 0))


def tile_width(size: int, level: int, index: int) -> int:
    """The width tile (level, index) has in the tree of `size`: TILE_WIDTH when full, the
    partial width for the rightmost one, 0 when the tree has no such tile yet."""
    return max(0, min(TILE_WIDTH, _level_count(size, level) - index * TILE_WIDTH))


def _levels(size: int) -> Iterator[int]:
    level = 0
    while _level_count(size, level) > 0:
        yield level
        level += 1


def tiles_for_size(size: int) -> Iterator[TileId]:
    """Every file (hash tiles, then bundles) a tiled log of `size` entries serves besides its
    checkpoint: full tiles and, per level, at most one partial. Nothing for the empty tree."""
    for level in [*_levels(size), ENTRIES] if size else []:
        count = _level_count(size, level)
        for n in range(count // TILE_WIDTH):
            yield TileId(level, n)
        if count % TILE_WIDTH:
            yield TileId(level, count // TILE_WIDTH, count % TILE_WIDTH)


def partial_tiles(size: int) -> list[TileId]:
    """The partial tiles (and partial bundle) of a tree of `size`: the only ones its root
    depends on beyond full tiles' roots, and all a writer needs to resume at `size`."""
    out = []
    for level in [*_levels(size), ENTRIES] if size else []:
        count = _level_count(size, level)
        if count % TILE_WIDTH:
            out.append(TileId(level, count // TILE_WIDTH, count % TILE_WIDTH))
    return out


def new_tiles(old_size: int, new_size: int) -> Iterator[TileId]:
    """The files a log of `new_size` serves that one of `old_size` did not (go's tlog.NewTiles,
    without the intermediate partial widths: only the new size's own partial tile)."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no tiles from size {old_size} to {new_size}")
    for level in [*_levels(new_size), ENTRIES] if new_size else []:
        old, new = _level_count(old_size, level), _level_count(new_size, level)
        for n in range(old // TILE_WIDTH, new // TILE_WIDTH):
            yield TileId(level, n)
        if new % TILE_WIDTH and old != new:
            yield TileId(level, new // TILE_WIDTH, new % TILE_WIDTH)


# ---- entry bundles ---------------------------------------------------------------------------


def encode_entry(entry: bytes, seq: int) -> bytes:
    """One bundle element: uint16 big-endian length + the entry bytes.
    Raises RecordTooLarge if the entry does not fit a uint16 length."""
    if len(entry) > MAX_ENTRY_BYTES:
        raise RecordTooLarge(
            f"entry {seq} is {len(entry):,} bytes; a tlog-tiles entry bundle holds entries of at most "
            f"{MAX_ENTRY_BYTES:,} bytes (uint16 length), so this log cannot be written as tiles",
            reason="ENTRY_TOO_LARGE_FOR_TILES",
        )
    return _LENGTH.pack(len(entry)) + entry


def decode_bundle(data: bytes, tile: TileId) -> list[bytes]:
    """The entries of bundle `tile`, which must hold exactly `tile.width` of them and nothing
    after. Raises VerificationFailed (BAD_BUNDLE) naming the bundle."""
    entries: list[bytes] = []
    at = 0
    while at < len(data):
        if at + _LENGTH.size > len(data):
            raise VerificationFailed(f"{tile.path}: cut short inside a length prefix", reason="BAD_BUNDLE")
        (length,) = _LENGTH.unpack_from(data, at)
        at += _LENGTH.size
        if at + length > len(data):
            raise VerificationFailed(
                f"{tile.path}: entry {len(entries)} is cut short ({len(data) - at} of {length} bytes)",
                reason="BAD_BUNDLE",
            )
        entries.append(data[at : at + length])
        at += length
    if len(entries) != tile.width:
        raise VerificationFailed(f"{tile.path}: holds {len(entries)} entries, not {tile.width}", reason="BAD_BUNDLE")
    return entries


def _split_hashes(data: bytes, tile: TileId) -> list[bytes]:
    if len(data) != tile.width * HASH_SIZE:
        raise VerificationFailed(
            f"{tile.path}: {len(data)} bytes, not {tile.width} hashes of {HASH_SIZE}", reason="BAD_TILE"
        )
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def _perfect_root(hashes: Sequence[bytes]) -> bytes:
    """MTH over a power-of-two run of hashes (a perfect subtree), bottom-up."""
    row = list(hashes)
    while len(row) > 1:
        row = [merkle.node_hash(row[i], row[i + 1]) for i in range(0, len(row), 2)]
    return row[0]


def _tile_span(size: int, level: int, index: int) -> tuple[int, int, int, int]:
    """Where the perfect subtree (merkle `level`, `index`) of a tree of `size` sits in the
    tiles: (tile level, tile index, first hash, number of hashes). Raises ProofError if the
    subtree is not all inside the tree."""
    if level < 0 or index < 0 or (index + 1) << level > size:
        raise ProofError(f"subtree ({level}, {index}) is not inside a tree of size {size}", reason="BAD_RANGE")
    tile_level, below = divmod(level, TILE_HEIGHT)
    first = index << below  # position among the hashes of tile_level
    return tile_level, first // TILE_WIDTH, first % TILE_WIDTH, 1 << below


# ---- writing ---------------------------------------------------------------------------------


class TileBuilder:
    """Turns entries, appended in order, into tiles: full tiles and bundles as they complete
    (each exactly once), and on request the partial ones for the current size. Holds only
    the current partial tile of each level and the current bundle: O(log n) hashes and at
    most 255 entries, whatever the size of the log."""

    def __init__(self) -> None:
        self.size = 0
        self._rows: list[list[bytes]] = []  # per tile level, the hashes of its current tile
        self._bundle = bytearray()
        self._bundled = 0

    @classmethod
    def resume(cls, size: int, fetch: Fetch) -> TileBuilder:
        """A builder at `size`, from that tree's partial tiles and partial bundle (fetched by
        path). Checks their lengths and that the bundle's entries hash to the level-0 tile;
        the caller checks root() against the checkpoint of `size` before trusting any of it.

        Raises VerificationFailed (BAD_TILE, BAD_BUNDLE) and whatever `fetch` raises."""
        builder = cls()
        builder.size = size
        builder._rows = [[] for _ in _levels(size)]
        for tile in partial_tiles(size):
            data = fetch(tile.path)
            if tile.is_bundle:
                entries = decode_bundle(data, tile)
                if [merkle.leaf_hash(e) for e in entries] != builder._rows[0]:
                    raise VerificationFailed(
                        f"{tile.path}: its entries do not hash to the level-0 tile {TileId(0, tile.index, tile.width).path}",
                        reason="BAD_BUNDLE",
                    )
                builder._bundle = bytearray(data)
                builder._bundled = len(entries)
            else:
                builder._rows[tile.level] = _split_hashes(data, tile)
        return builder

    def append(self, entry: bytes) -> list[tuple[TileId, bytes]]:
        """Add entry number `size`; returns the full tiles and bundle it completes (usually
        none), children before parents. Raises RecordTooLarge (nothing changes) if the entry
        cannot go in a bundle."""
        element = encode_entry(entry, self.size)
        self._bundle += element
        self._bundled += 1
        done: list[tuple[TileId, bytes]] = []
        after = self.size + 1
        if self._bundled == TILE_WIDTH:
            done.append((TileId(ENTRIES, after // TILE_WIDTH - 1), bytes(self._bundle)))
            self._bundle, self._bundled = bytearray(), 0
        h, level = merkle.leaf_hash(entry), 0
        while True:
            if level == len(self._rows):
                self._rows.append([])
            row = self._rows[level]
            row.append(h)
            if len(row) < TILE_WIDTH:
                break
            done.append((TileId(level, _level_count(after, level + 1) - 1), b"".join(row)))
            h = _perfect_root(row)
            self._rows[level] = []
            level += 1
        self.size = after
        return done

    def partial(self) -> list[tuple[TileId, bytes]]:
        """The partial tiles and bundle of the current size (lowest level first, bundle last)."""
        out = []
        for level, row in enumerate(self._rows):
            if row:
                out.append((TileId(level, _level_count(self.size, level) // TILE_WIDTH, len(row)), b"".join(row)))
        if self._bundled:
            out.append((TileId(ENTRIES, self.size // TILE_WIDTH, self._bundled), bytes(self._bundle)))
        return out

    def _perfect(self, level: int, index: int) -> bytes:
        tile_level, n, first, count = _tile_span(self.size, level, index)
        row = self._rows[tile_level] if tile_level < len(self._rows) else []
        if n != _level_count(self.size, tile_level) // TILE_WIDTH or first + count > len(row):
            raise ProofError(f"subtree ({level}, {index}) is not in the current partial tiles", reason="BAD_RANGE")
        return _perfect_root(row[first : first + count])

    def root(self) -> bytes:
        """The tree's root: it depends only on the partial tiles (each perfect subtree of the
        right edge lies in the partial tile of its level)."""
        return merkle.root(self.size, self._perfect)


# ---- reading (what a tlog-tiles client does) ------------------------------------------------


class TileReader:
    """Hashes, the root and RFC 9162 proofs of the tree of `size`, computed from its tiles as
    a tlog-tiles client computes them: each tile fetched by path with the width that `size`
    implies (so a client that trusts a checkpoint of `size` knows which files to ask for), and
    every hash above level 0 rebuilt from the tile below. Fetched tiles are cached.

    Raises ProofError for ranges outside the tree, VerificationFailed (BAD_TILE, BAD_BUNDLE) for
    files of the wrong shape, and whatever `fetch` raises for missing ones. A root or proof
    proves something only once compared with a checkpoint whose signature verified."""

    def __init__(self, size: int, fetch: Fetch) -> None:
        self.size = size
        self._fetch = fetch
        self._tiles: dict[tuple[int, int], list[bytes]] = {}

    def tile(self, level: int, index: int) -> list[bytes]:
        key = (level, index)
        if key not in self._tiles:
            width = tile_width(self.size, level, index)
            if width == 0:
                raise ProofError(f"a tree of size {self.size} has no tile ({level}, {index})", reason="BAD_RANGE")
            tile = TileId(level, index, width)
            self._tiles[key] = _split_hashes(self._fetch(tile.path), tile)
        return self._tiles[key]

    def perfect(self, level: int, index: int) -> bytes:
        """The hash of the perfect subtree over leaves [index << level, (index + 1) << level)."""
        tile_level, n, first, count = _tile_span(self.size, level, index)
        return _perfect_root(self.tile(tile_level, n)[first : first + count])

    def leaf_hash(self, index: int) -> bytes:
        return self.perfect(0, index)

    def root(self) -> bytes:
        return merkle.root(self.size, self.perfect)

    def inclusion_proof(self, index: int) -> list[bytes]:
        return merkle.inclusion_proof(index, self.size, self.perfect)

    def consistency_proof(self, old_size: int) -> list[bytes]:
        return merkle.consistency_proof(old_size, self.size, self.perfect)

    def entries(self, index: int) -> list[bytes]:
        """Bundle `index`, checked entry by entry against the leaf hashes of its level-0 tile."""
        width = tile_width(self.size, 0, index)
        if width == 0:
            raise ProofError(f"a tree of size {self.size} has no entry bundle {index}", reason="BAD_RANGE")
        bundle = TileId(ENTRIES, index, width)
        entries = decode_bundle(self._fetch(bundle.path), bundle)
        for i, (entry, leaf) in enumerate(zip(entries, self.tile(0, index), strict=True)):
            if merkle.leaf_hash(entry) != leaf:
                raise VerificationFailed(
                    f"{bundle.path}: entry {index * TILE_WIDTH + i} does not hash to its leaf in the level-0 tile",
                    reason="BAD_BUNDLE",
                )
        return entries
