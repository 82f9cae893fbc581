"""Reading a tiled log (C2SP tlog-tiles, ledger/tlog/tiles.py) with no server of ours: over
HTTP(S) from any web server, object store or CDN, or from a local directory. What `verify
--tiles`, `monitor --tiles` (and mirrors) read through. All I/O lives here; what the bytes must
be is checked by the pure code (tiles.decode_bundle, the LogVerifier, check_extends).

Two roots of failure, kept apart as in python-tuf's ngclient: the transport (a refused
connection, a timeout, a 5xx after every retry) raises Unavailable, exit 3, "try again later";
the data (a tile of the wrong length, a bundle cut short, a hash that does not match, a tile the
signed checkpoint needs but the source does not have) raises VerificationFailed, exit 1. A 401
or 403 is neither: the reader lacks a certificate the source asks for (RequestError).

The HTTP side (httpx): one connection pool with at most `concurrency` connections; tiles are
fetched ahead, in order, by that many workers; every request has a timeout and is retried with
exponential backoff (and jitter) on transport errors, 429 and 5xx; the checkpoint is fetched
with If-None-Match / If-Modified-Since, so a monitor polling an unchanged log costs a 304. A
partial tile that has gone (the publisher deletes partials once the full tile exists) is read
from the full tile's prefix, as the spec tells clients to.

What TilesSource checks beyond what `verify_log` does with the entries: each bundle against
its level-0 hash tile, and every hash tile above level 0 against the tiles below it (each hash
is the root of one full tile), so that a tile with one byte changed anywhere in the tree is
found, not only in the bundles.
"""

from __future__ import annotations

import random
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from lotledger.ledger.errors import RequestError, Unavailable, VerificationFailed
from lotledger.ledger.tlog import merkle, tiles
from lotledger.ledger.tlog.bundle import Increment, KeyHistoryEntry
from lotledger.ledger.verify.verifier import open_signed_checkpoint
from lotledger.signing.note import NoteVerifier

DEFAULT_CONCURRENCY = 8
DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 4


class TileStore(Protocol):
    """Where a tiled log's files come from. `get` returns None for a file that is not there."""

    name: str

    def get(self, path: str) -> bytes | None: ...

    def checkpoint(self) -> bytes: ...

    def close(self) -> None: ...


class DirectoryTiles:
    """A tiled log in a local directory (an `export-tiles` or `serve --publish` DIR, a copy)."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise RequestError(f"{root} is not a directory (--tiles takes a URL or a directory)")
        self.root = root
        self.name = str(root)

    def get(self, path: str) -> bytes | None:
        try:
            return (self.root / path).read_bytes()
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None

    def checkpoint(self) -> bytes:
        data = self.get(tiles.CHECKPOINT_PATH)
        if data is None:
            raise VerificationFailed(f"{self.root} holds no checkpoint", reason="NO_CHECKPOINT")
        return data

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class HttpTls:
    """HTTPS settings: the CA that signed the web server's certificate (None: the system's
    trust store) and this reader's client certificate and key (for entry bundles)."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None

    def context(self) -> ssl.SSLContext:
        """Raises RequestError for files that cannot be loaded."""
        try:
            ctx = ssl.create_default_context(cafile=str(self.ca) if self.ca else None)
            if self.cert is not None:
                ctx.load_cert_chain(str(self.cert), str(self.key) if self.key else None)
        except (OSError, ssl.SSLError) as e:
            raise RequestError(f"cannot load the TLS files for HTTPS: {e}") from e
        return ctx


class HttpTiles:
    """A tiled log under a URL prefix (`https://host/log/` serving `checkpoint`, `tile/...`)."""

    def __init__(
        self,
        url: str,
        *,
        tls: HttpTls | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        concurrency: int = DEFAULT_CONCURRENCY,
        backoff: float = 0.2,
    ) -> None:
        self.name = url
        self.base = url if url.endswith("/") else url + "/"
        self.retries = retries
        self.backoff = backoff
        verify: ssl.SSLContext | bool = (tls or HttpTls()).context() if self.base.startswith("https:") else True
        self.client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            verify=verify,
            headers={"User-Agent": "lotledger-tiles-client"},
            follow_redirects=True,
        )
        self._validators: dict[str, str] = {}
        self._note: bytes | None = None
        self.requests = self.not_modified = 0
        self._count = threading.Lock()

    def _request(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        """GET with retries on transport errors, 429 and 5xx. Raises Unavailable when every
        attempt failed, RequestError on 401/403."""
        url = self.base + path
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * (2 ** (attempt - 1)) * (0.5 + random.random()))
            try:
                with self._count:
                    self.requests += 1
                response = self.client.get(url, headers=headers)
            except httpx.TransportError as e:
                last = f"{type(e).__name__}: {e}"
                continue
            if response.status_code == 429 or response.status_code >= 500:
                last = f"HTTP {response.status_code}"
                continue
            if response.status_code in (401, 403):
                raise RequestError(
                    f"{url}: HTTP {response.status_code}: the server wants a client certificate this reader may "
                    "use (entry bundles are for auditors and mirrors: --tls-cert/--tls-key)",
                    reason="FORBIDDEN",
                )
            return response
        raise Unavailable(f"{url}: unreachable after {self.retries + 1} attempts ({last})")

    def get(self, path: str) -> bytes | None:
        response = self._request(path)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise VerificationFailed(f"{self.base}{path}: HTTP {response.status_code}", reason="BAD_RESPONSE")
        return response.content

    def checkpoint(self) -> bytes:
        """The checkpoint, asked for conditionally once a copy is held (304: the held copy)."""
        headers = {}
        if self._note is not None:
            headers = {
                k: v
                for k, v in (
                    ("If-None-Match", self._validators.get("etag")),
                    ("If-Modified-Since", self._validators.get("last-modified")),
                )
                if v
            }
        response = self._request(tiles.CHECKPOINT_PATH, headers)
        if response.status_code == 304 and self._note is not None:
            self.not_modified += 1
            return self._note
        if response.status_code == 404:
            raise VerificationFailed(f"{self.base}checkpoint: not found (HTTP 404)", reason="NO_CHECKPOINT")
        if response.status_code != 200:
            raise VerificationFailed(f"{self.base}checkpoint: HTTP {response.status_code}", reason="BAD_RESPONSE")
        self._note = response.content
        self._validators = {k: response.headers[k] for k in ("etag", "last-modified") if k in response.headers}
        return self._note

    def close(self) -> None:
        self.client.close()


def open_tiles(where: str, *, tls: HttpTls | None = None, concurrency: int = DEFAULT_CONCURRENCY) -> TileStore:
    """An http(s):// URL or a local directory. Raises RequestError for anything else."""
    if where.startswith(("http://", "https://")):
        return HttpTiles(where, tls=tls, concurrency=concurrency)
    if "://" in where:
        raise RequestError(f"--tiles {where}: only http://, https:// or a local directory")
    return DirectoryTiles(Path(where))


class TileFetcher:
    """Files of one tree size, fetched by path through a store, with the partial-tile fallback
    and a window of `ahead` requests in flight (in order) for sequential reads."""

    def __init__(self, store: TileStore, size: int, *, ahead: int = DEFAULT_CONCURRENCY) -> None:
        self.store = store
        self.size = size
        self.ahead = max(1, ahead)
        self._pool: ThreadPoolExecutor | None = None

    def fetch(self, path: str) -> bytes:
        """Raises VerificationFailed (MISSING_TILE) when neither the file nor, for a partial
        tile, its full tile is there; Unavailable; RequestError."""
        data = self.store.get(path)
        if data is not None:
            return data
        if ".p/" in path:  # pruned once the full tile existed: its prefix is the partial tile
            full_path, width = path.split(".p/")
            full = self.store.get(full_path)
            if full is not None:
                return _prefix(full, full_path, int(width))
        raise VerificationFailed(
            f"{self.store.name}: {path} is missing, but the checkpoint of size {self.size} needs it",
            reason="MISSING_TILE",
        )

    def fetch_all(self, paths: Iterable[str]) -> Iterator[bytes]:
        """The files in order, up to `ahead` requests in flight."""
        if self.ahead == 1:
            for p in paths:
                yield self.fetch(p)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.ahead, thread_name_prefix="tiles")
        window: deque[Future[bytes]] = deque()
        it = iter(paths)
        try:
            for p in it:
                window.append(self._pool.submit(self.fetch, p))
                if len(window) >= self.ahead:
                    break
            while window:
                data = window.popleft().result()
                nxt = next(it, None)
                if nxt is not None:
                    window.append(self._pool.submit(self.fetch, nxt))
                yield data
        finally:
            for f in window:
                f.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _prefix(full: bytes, path: str, width: int) -> bytes:
    """The first `width` hashes (or entries, for a bundle) of a full tile."""
    if "/entries/" in path:
        at = 0
        for _ in range(width):
            if at + 2 > len(full):
                break
            at += 2 + int.from_bytes(full[at : at + 2], "big")
        return full[:at]
    return full[: width * tiles.HASH_SIZE]


class _UpperLevels:
    """Checks hash tiles above level 0: the root of each full tile at level L must be hash
    n % 256 of tile n // 256 at level L + 1 (if the tree has it). Tiles are met in order, so one
    tile per level is held."""

    def __init__(self, fetcher: TileFetcher) -> None:
        self.fetcher = fetcher
        self.size = fetcher.size
        self._held: dict[int, tuple[int, list[bytes]]] = {}

    def _tile(self, level: int, index: int) -> list[bytes]:
        held = self._held.get(level)
        if held is not None and held[0] == index:
            return held[1]
        tile = tiles.TileId(level, index, tiles.tile_width(self.size, level, index))
        data = self.fetcher.fetch(tile.path)
        hashes = _split(data, tile)
        self._held[level] = (index, hashes)
        if tile.full:
            self.full_tile(level, index, hashes)
        return hashes

    def full_tile(self, level: int, index: int, hashes: list[bytes]) -> None:
        """`hashes` is full tile (level, index): check its root against the level above."""
        if tiles.tile_width(self.size, level + 1, index // tiles.TILE_WIDTH) == 0:
            return  # the tree is too small to have that level
        above = self._tile(level + 1, index // tiles.TILE_WIDTH)
        i = index % tiles.TILE_WIDTH
        if i >= len(above) or above[i] != _root(hashes):
            tile = tiles.TileId(level + 1, index // tiles.TILE_WIDTH, len(above))
            raise VerificationFailed(
                f"{tile.path}: hash {i} is not the root of {tiles.TileId(level, index).path}", reason="BAD_TILE"
            )


def _split(data: bytes, tile: tiles.TileId) -> list[bytes]:
    if len(data) != tile.width * tiles.HASH_SIZE:
        raise VerificationFailed(
            f"{tile.path}: {len(data)} bytes, not {tile.width} hashes of {tiles.HASH_SIZE}", reason="BAD_TILE"
        )
    return [data[i : i + tiles.HASH_SIZE] for i in range(0, len(data), tiles.HASH_SIZE)]


def _root(hashes: list[bytes]) -> bytes:
    row = hashes
    while len(row) > 1:
        row = [merkle.node_hash(row[i], row[i + 1]) for i in range(0, len(row), 2)]
    return row[0]


class TilesSource:
    """A tiled log as an EntrySource (audit/verify.py) for `verify_log`, pinned to one
    checkpoint: the one given, else the first one fetched."""

    def __init__(self, store: TileStore, note: bytes | None = None, *, ahead: int = DEFAULT_CONCURRENCY) -> None:
        self.store = store
        self.note = note
        self.ahead = ahead
        self._fetchers: list[TileFetcher] = []

    def checkpoint_note(self) -> bytes:
        if self.note is None:
            self.note = self.store.checkpoint()
        return self.note

    def _fetcher(self, size: int) -> TileFetcher:
        fetcher = TileFetcher(self.store, size, ahead=self.ahead)
        self._fetchers.append(fetcher)
        return fetcher

    def increment(self) -> Increment | None:
        return None

    def key_history(self) -> Iterator[KeyHistoryEntry]:
        return iter(())

    def entries(self, start: int, end: int, prefix_root: bytes | None = None) -> Iterator[bytes]:
        """Entries [start, end) from the bundles, each checked against its level-0 tile, and
        every hash tile from there on checked against the tiles below (_UpperLevels)."""
        if start >= end:
            return
        fetcher = self._fetcher(end)
        upper = _UpperLevels(fetcher)
        first, last = start // tiles.TILE_WIDTH, (end - 1) // tiles.TILE_WIDTH

        def pairs() -> Iterator[tuple[tiles.TileId, tiles.TileId]]:
            for n in range(first, last + 1):
                width = tiles.tile_width(end, 0, n)
                yield tiles.TileId(tiles.ENTRIES, n, width), tiles.TileId(0, n, width)

        fetched = fetcher.fetch_all(p.path for pair in pairs() for p in pair)  # lazily: O(window) memory
        for bundle, level0 in pairs():
            bundle_bytes, hash_bytes = next(fetched), next(fetched)
            entries = tiles.decode_bundle(bundle_bytes, bundle)
            leaves = _split(hash_bytes, level0)
            for i, (entry, leaf) in enumerate(zip(entries, leaves, strict=True)):
                if merkle.leaf_hash(entry) != leaf:
                    raise VerificationFailed(
                        f"{bundle.path}: entry {bundle.index * tiles.TILE_WIDTH + i} does not hash to its leaf in "
                        f"{level0.path}",
                        seq=bundle.index * tiles.TILE_WIDTH + i,
                        reason="BAD_BUNDLE",
                    )
            if level0.full:
                upper.full_tile(0, level0.index, leaves)
            base = bundle.index * tiles.TILE_WIDTH
            yield from entries[max(0, start - base) :]

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes] | None:
        """None: the new entries, fed from the state's frontier, must give the new signed root,
        which proves consistency. A proof computed from the tiles could not tell a damaged hash
        tile (the tile server's fault) from a fork (the log's, kept as evidence)."""
        return None

    def check_store(self, log_key: NoteVerifier) -> None:
        """The right edge: the partial tiles must give the signed root too (the entries gave
        it already; a partial hash tile above level 0 is checked here)."""
        cp = open_signed_checkpoint(self.checkpoint_note(), log_key)
        if cp.size and tiles.TileReader(cp.size, self._fetcher(cp.size).fetch).root() != cp.root_hash:
            raise VerificationFailed(
                f"{self.store.name}: the hash tiles do not give the root of the checkpoint", reason="BAD_TILE"
            )

    def close(self) -> None:
        for f in self._fetchers:
            f.close()
        self._fetchers.clear()


class TeeSource:
    """A TilesSource (for `verify_log`) that also hands every entry the verifier reads to
    `keep`, in batches of `batch` (the last one short), each before its last entry is yielded:
    how restore and the mirror store a log as they verify it, in one pass over the tiles."""

    def __init__(self, source: TilesSource, keep: Callable[[list[bytes]], None], *, batch: int = 1) -> None:
        self.source = source
        self.keep = keep
        self.batch = batch

    def checkpoint_note(self) -> bytes:
        return self.source.checkpoint_note()

    def increment(self) -> Increment | None:
        return None

    def key_history(self) -> Iterator[KeyHistoryEntry]:
        return iter(())

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes] | None:
        return self.source.consistency_proof(old_size, new_size)

    def check_store(self, log_key: NoteVerifier) -> None:
        self.source.check_store(log_key)

    def entries(self, start: int, end: int, prefix_root: bytes | None = None) -> Iterator[bytes]:
        held: list[bytes] = []
        for entry in self.source.entries(start, end, prefix_root):
            held.append(entry)
            if len(held) >= self.batch:
                self.keep(held)
                held = []
            yield entry
        if held:
            self.keep(held)

    def close(self) -> None:
        self.source.close()
