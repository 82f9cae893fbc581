"""RFC 6962 / RFC 9162 (section 2.1) Merkle tree hashing and proofs, over primitives only.

No I/O: the store hands in an oracle `perfect(level, index)` that returns the stored hash of
the perfect, aligned subtree over leaves [index << level, (index + 1) << level). Any root or
proof needs O(log n) of those, because at most one element of a proof is a non-perfect
right-edge subtree, and that one is itself built from O(log n) perfect subtrees.

Edge-case policy for verification (the public vectors in shared/vectors/merkle test all of it):
- consistency from size 0 is refused, as transparency-dev/merkle does: there is nothing to
  prove, and a caller that accepts any tree after the empty one (a C2SP tlog-witness does)
  handles size 0 itself rather than calling verify_consistency;
- size1 > size2 is refused; size1 == size2 needs an empty proof and byte-equal roots (as
  upstream, whatever their length: nothing is hashed);
- every hash that is combined (roots, leaf hashes, proof elements) must be exactly 32 bytes;
- a proof one element too short or too long is refused.

Raises ProofError everywhere a proof or range is wrong.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from lotledger.ledger.errors import ProofError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

PerfectHash = Callable[[int, int], bytes]


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly less than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaf_hashes(leaves: Sequence[bytes]) -> bytes:
    """MTH by the RFC's recursive definition: the reference the incremental code is tested on."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = _split(n)
    return node_hash(root_from_leaf_hashes(leaves[:k]), root_from_leaf_hashes(leaves[k:]))


def subtree_hash(start: int, end: int, perfect: PerfectHash) -> bytes:
    """MTH(D[start:end]) for a range the RFC recursion produces: `start` is a multiple of the
    largest power of two <= end - start, so the range decomposes into perfect subtrees."""
    n = end - start
    if n <= 0:
        raise ProofError(f"empty range [{start}, {end})", reason="BAD_RANGE")
    if n & (n - 1) == 0:
        level = n.bit_length() - 1
        if start % n:
            raise ProofError(f"range [{start}, {end}) is not aligned", reason="BAD_RANGE")
        return perfect(level, start >> level)
    k = _split(n)
    return node_hash(subtree_hash(start, start + k, perfect), subtree_hash(start + k, end, perfect))


def root(size: int, perfect: PerfectHash) -> bytes:
    return EMPTY_ROOT if size == 0 else subtree_hash(0, size, perfect)


def inclusion_proof(index: int, size: int, perfect: PerfectHash) -> list[bytes]:
    """RFC 9162 2.1.3.1 PATH(index, D[0:size]), leaf-side first."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} is not in a tree of size {size}", reason="BAD_RANGE")
    proof: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            proof.append(subtree_hash(start + k, end, perfect))
            end = start + k
        else:
            proof.append(subtree_hash(start, start + k, perfect))
            start += k
    proof.reverse()
    return proof


def consistency_proof(size1: int, size2: int, perfect: PerfectHash) -> list[bytes]:
    """RFC 9162 2.1.4.1 PROOF(size1, D[0:size2]) = SUBPROOF(size1, D[0:size2], true)."""
    if not 0 < size1 <= size2:
        raise ProofError(f"no consistency proof from {size1} to {size2}", reason="BAD_RANGE")
    proof: list[bytes] = []
    start, end, m, complete = 0, size2, size1, True
    while True:
        n = end - start
        if m == n:
            if not complete:
                proof.append(subtree_hash(start, end, perfect))
            break
        k = _split(n)
        if m <= k:
            proof.append(subtree_hash(start + k, end, perfect))
            end = start + k
        else:
            proof.append(subtree_hash(start, start + k, perfect))
            start, m, complete = start + k, m - k, False
    proof.reverse()
    return proof


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} is {len(value)} bytes, not {HASH_SIZE}", reason="BAD_HASH")


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 2.1.3.2: the root that `proof` leads to from `leaf`. Raises ProofError."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} is not in a tree of size {size}", reason="BAD_RANGE")
    _check_hash(leaf, "leaf hash")
    fn, sn = index, size - 1
    r = leaf
    for i, p in enumerate(proof):
        _check_hash(p, f"proof[{i}]")
        if sn == 0:
            raise ProofError("proof is longer than the tree is deep", reason="BAD_PROOF")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("proof is shorter than the tree is deep", reason="BAD_PROOF")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root_hash: bytes) -> None:
    """Raises ProofError unless `leaf` is at `index` in the tree of `size` with `root_hash`.

    A size is only trustworthy because a signed checkpoint binds it to its root: this proves
    a relation to a (size, root) pair the caller already trusts, nothing more."""
    _check_hash(root_hash, "root")
    if root_from_inclusion_proof(index, size, leaf, proof) != root_hash:
        raise ProofError(
            f"inclusion proof for index {index} in size {size} does not lead to the root", reason="BAD_PROOF"
        )


def verify_consistency(size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]) -> None:
    """RFC 9162 2.1.4.2: raises ProofError unless the tree (size1, root1) is a prefix of
    (size2, root2). As with inclusion, the sizes and roots must come from signed checkpoints."""
    if size1 == 0:
        raise ProofError("consistency from size 0 proves nothing (policy: refused)", reason="BAD_RANGE")
    if size1 > size2:
        raise ProofError(f"size1 {size1} is larger than size2 {size2}", reason="BAD_RANGE")
    if size1 == size2:
        # As upstream: the same tree needs no proof, and its roots must be the same bytes.
        if proof:
            raise ProofError("equal sizes need an empty proof", reason="BAD_PROOF")
        if root1 != root2:
            raise ProofError("equal sizes with different roots", reason="BAD_PROOF")
        return
    _check_hash(root1, "root1")
    _check_hash(root2, "root2")
    for i, p in enumerate(proof):
        _check_hash(p, f"proof[{i}]")
    if not proof:
        raise ProofError("empty consistency proof", reason="BAD_PROOF")
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # size1 is a power of two: its root is the first node
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long", reason="BAD_PROOF")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short", reason="BAD_PROOF")
    if fr != root1 or sr != root2:
        raise ProofError(f"consistency proof from {size1} to {size2} does not match the roots", reason="BAD_PROOF")


# ---- incremental append (what the store writes) ---------------------------------------------


def append_leaf(frontier: Sequence[bytes], size: int, leaf: bytes) -> tuple[list[bytes], list[tuple[int, int, bytes]]]:
    """Add leaf number `size`. `frontier` holds one perfect-subtree hash per set bit of size,
    largest (leftmost) first. Returns the frontier for size + 1 and the (level, index, hash)
    perfect nodes this leaf completes (level 0 is the leaf itself): exactly what to store."""
    new = list(frontier)
    nodes = [(0, size, leaf)]
    h, level, index = leaf, 0, size
    while index & 1:
        h = node_hash(new.pop(), h)
        level += 1
        index >>= 1
        nodes.append((level, index, h))
    new.append(h)
    return new, nodes


def root_from_frontier(frontier: Sequence[bytes], size: int) -> bytes:
    if size == 0:
        return EMPTY_ROOT
    r = frontier[-1]
    for h in reversed(frontier[:-1]):
        r = node_hash(h, r)
    return r


def frontier_from_perfect(size: int, perfect: PerfectHash) -> list[bytes]:
    """The frontier of a tree of `size`, from stored perfect subtrees (at start-up)."""
    out = []
    start = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            out.append(perfect(level, start >> level))
            start += 1 << level
    return out


class MemoryTree:
    """An in-memory tree with the same interface the store offers: for tests and benchmarks."""

    def __init__(self) -> None:
        self.levels: list[list[bytes]] = [[]]
        self._frontier: list[bytes] = []

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def append(self, leaf: bytes) -> None:
        self._frontier, nodes = append_leaf(self._frontier, self.size, leaf)
        for level, index, h in nodes:
            if level == len(self.levels):
                self.levels.append([])
            assert len(self.levels[level]) == index
            self.levels[level].append(h)

    def perfect(self, level: int, index: int) -> bytes:
        return self.levels[level][index]

    def root(self, size: int | None = None) -> bytes:
        return root(self.size if size is None else size, self.perfect)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return inclusion_proof(index, size, self.perfect)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        return consistency_proof(size1, size2, self.perfect)
