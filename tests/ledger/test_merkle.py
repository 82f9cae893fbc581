"""RFC 6962 hashing against published roots; every proof up to 64 leaves; tampering fails;
proofs and roots cost O(log n) reads of the stored tree."""

from __future__ import annotations

import hashlib
import random

import pytest

from lotledger.ledger.errors import ProofError
from lotledger.ledger.tlog import merkle

# The test tree of RFC 6962's reference implementation (certificate-transparency), and its
# published roots for sizes 1..8.
RFC_LEAVES = [
    bytes.fromhex(h)
    for h in ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
]
RFC_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def tree_of(n: int) -> tuple[merkle.MemoryTree, list[bytes]]:
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]
    tree = merkle.MemoryTree()
    for leaf in leaves:
        tree.append(leaf)
    return tree, leaves


def test_empty_tree_and_one_leaf() -> None:
    assert merkle.EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert merkle.root_from_leaf_hashes([]) == merkle.EMPTY_ROOT
    assert merkle.root_from_leaf_hashes([merkle.leaf_hash(b"")]) == bytes.fromhex(RFC_ROOTS[0])


@pytest.mark.parametrize("size", range(1, 9))
def test_rfc6962_reference_roots(size: int) -> None:
    leaves = [merkle.leaf_hash(d) for d in RFC_LEAVES[:size]]
    assert merkle.root_from_leaf_hashes(leaves).hex() == RFC_ROOTS[size - 1]
    tree = merkle.MemoryTree()
    for leaf in leaves:
        tree.append(leaf)
    assert tree.root().hex() == RFC_ROOTS[size - 1]


def test_incremental_tree_matches_the_definition_at_every_size() -> None:
    tree, leaves = tree_of(130)
    frontier: list[bytes] = []
    for n in range(1, 131):
        frontier, _ = merkle.append_leaf(frontier, n - 1, leaves[n - 1])
        want = merkle.root_from_leaf_hashes(leaves[:n])
        assert tree.root(n) == want
        assert merkle.root_from_frontier(frontier, n) == want
        assert merkle.frontier_from_perfect(n, tree.perfect) == frontier


def test_every_inclusion_proof_up_to_64_verifies_and_every_bit_flip_fails() -> None:
    tree, leaves = tree_of(64)
    rng = random.Random(1)
    for size in range(1, 65):
        root = merkle.root_from_leaf_hashes(leaves[:size])
        for index in range(size):
            proof = tree.inclusion_proof(index, size)
            merkle.verify_inclusion(index, size, leaves[index], proof, root)
            for i, element in enumerate(proof):
                bad = list(proof)
                bad[i] = flip(element, rng.randrange(256))
                with pytest.raises(ProofError):
                    merkle.verify_inclusion(index, size, leaves[index], bad, root)
            with pytest.raises(ProofError):
                merkle.verify_inclusion(index, size, flip(leaves[index], rng.randrange(256)), proof, root)
            with pytest.raises(ProofError):
                merkle.verify_inclusion(index, size, leaves[index], proof, flip(root, rng.randrange(256)))


def test_every_consistency_proof_up_to_64_verifies_and_every_bit_flip_fails() -> None:
    tree, leaves = tree_of(64)
    rng = random.Random(2)
    roots = [merkle.EMPTY_ROOT] + [merkle.root_from_leaf_hashes(leaves[:n]) for n in range(1, 65)]
    for size2 in range(1, 65):
        for size1 in range(1, size2 + 1):
            proof = tree.consistency_proof(size1, size2)
            merkle.verify_consistency(size1, size2, roots[size1], roots[size2], proof)
            for i, element in enumerate(proof):
                bad = list(proof)
                bad[i] = flip(element, rng.randrange(256))
                with pytest.raises(ProofError):
                    merkle.verify_consistency(size1, size2, roots[size1], roots[size2], bad)
            with pytest.raises(ProofError):
                merkle.verify_consistency(size1, size2, flip(roots[size1], rng.randrange(256)), roots[size2], proof)
            with pytest.raises(ProofError):
                merkle.verify_consistency(size1, size2, roots[size1], flip(roots[size2], rng.randrange(256)), proof)


def test_each_bit_of_one_proof_element_matters() -> None:
    tree, leaves = tree_of(37)
    root = tree.root()
    proof = tree.inclusion_proof(13, 37)
    for bit in range(256):
        bad = [flip(proof[0], bit), *proof[1:]]
        with pytest.raises(ProofError):
            merkle.verify_inclusion(13, 37, leaves[13], bad, root)


def test_policy_edge_cases() -> None:
    h = hashlib.sha256(b"x").digest()
    with pytest.raises(ProofError):
        merkle.verify_consistency(0, 5, merkle.EMPTY_ROOT, h, [])  # size 0: nothing to prove
    with pytest.raises(ProofError):
        merkle.verify_consistency(3, 3, h, h, [h])  # equal sizes need an empty proof
    merkle.verify_consistency(3, 3, h, h, [])
    with pytest.raises(ProofError):
        merkle.verify_inclusion(0, 1, h[:31], [], h[:31])  # hashes are exactly 32 bytes
    with pytest.raises(ProofError):
        merkle.inclusion_proof(5, 5, lambda level, index: h)


def test_proofs_cost_o_log_n_reads() -> None:
    tree, _ = tree_of((1 << 15) + 12345)
    n = tree.size
    calls = 0

    def counting(level: int, index: int) -> bytes:
        nonlocal calls
        calls += 1
        return tree.perfect(level, index)

    limit = 2 * n.bit_length() + 2
    for index in (0, 1, n // 3, n - 2, n - 1):
        calls = 0
        merkle.inclusion_proof(index, n, counting)
        assert calls <= limit, (index, calls)
    for old in (1, 7, n // 2, n - 1):
        calls = 0
        merkle.consistency_proof(old, n, counting)
        assert calls <= limit, (old, calls)
    calls = 0
    merkle.root(n, counting)
    assert calls <= n.bit_length()
