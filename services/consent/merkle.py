"""The Merkle tree of RFC 6962 / RFC 9162 over leaf hashes: roots and inclusion and consistency
proofs for any prefix of a growing log, and their verification. Knows nothing of ledger entries:
`ledger` turns entries into leaves."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def hash_leaf(data: bytes) -> bytes:
    """The RFC 6962 hash of a leaf input: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """RFC 6962: the largest power of two strictly smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def hash_bytes(value: bytes | str) -> bytes:
    """A hash given as bytes or as hex text, as bytes."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return bytes.fromhex(value)


class MerkleTree:
    """An RFC 6962 tree over leaf hashes that answers roots and proofs for any prefix size.

    It keeps every complete (perfect, aligned) subtree hash, so building is
    O(n) and each root or proof for any size ≤ n costs O(log² n) hashes at
    most: a 100k-entry ledger is built once and then queried freely.
    """

    def __init__(self, leaf_hashes: Iterable[bytes]) -> None:
        level = [bytes(h) for h in leaf_hashes]
        self._levels: list[list[bytes]] = [level]
        while len(level) > 1:
            level = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            self._levels.append(level)

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append leaves (leaf hashes) in O(1) amortised hashes each.

        A ledger only grows, so a tree kept in memory follows it by appending
        the new leaves; every level list only grows, so roots and proofs for
        sizes already covered are unchanged. The parents a leaf completes are
        stored before the leaf itself: a reader in another thread that takes
        ``size`` and asks for that size never meets a missing node.
        """
        for value in leaf_hashes:
            leaf = bytes(value)
            node, level, index = leaf, 0, len(self._levels[0])
            parents = []
            while index & 1:  # this leaf (or node) completes a pair: its parent is now known
                node = _node(self._levels[level][index - 1], node)
                level, index = level + 1, index >> 1
                parents.append((level, node))
            for level, parent in parents:
                if level == len(self._levels):
                    self._levels.append([])
                self._levels[level].append(parent)
            self._levels[0].append(leaf)

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def _subtree(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]); perfect aligned blocks come from the cache."""
        n = end - start
        if n == 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and start % n == 0:
            height = n.bit_length() - 1
            return self._levels[height][start >> height]
        k = _split(n)
        return _node(self._subtree(start, start + k), self._subtree(start + k, end))

    def _check_size(self, size: int | None) -> int:
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise ValueError(f"tree size {size} outside 0..{self.size}")
        return size

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (default all)."""
        return self._subtree(0, self._check_size(size))

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 6962 §2.1.1 PATH(index, D[0:size]), leaf-side first. Raises ValueError if index ≥ size."""
        size = self._check_size(size)
        if not 0 <= index < size:
            raise ValueError(f"leaf index {index} outside tree of size {size}")
        path: list[bytes] = []
        start, end = 0, size
        while end - start > 1:  # descend from the root; the RFC lists siblings bottom-up
            k = _split(end - start)
            if index < start + k:
                path.append(self._subtree(start + k, end))
                end = start + k
            else:
                path.append(self._subtree(start, start + k))
                start += k
        return path[::-1]

    def consistency_proof(self, first: int, second: int | None = None) -> list[bytes]:
        """RFC 6962 §2.1.2 PROOF(first, D[0:second]); empty when first is 0 or equals second."""
        second = self._check_size(second)
        if not 0 <= first <= second:
            raise ValueError(f"consistency needs 0 <= first <= second, got {first}, {second}")
        if first == 0 or first == second:
            return []
        proof: list[bytes] = []
        start, end, m, complete = 0, second, first, True
        while True:  # SUBPROOF(m, D[start:end], complete), unrolled
            if m == end - start:
                if not complete:
                    proof.append(self._subtree(start, end))
                break
            k = _split(end - start)
            if m <= k:
                proof.append(self._subtree(start + k, end))
                end = start + k
            else:
                proof.append(self._subtree(start, start + k))
                start, m, complete = start + k, m - k, False
        return proof[::-1]


def root_of_leaf_hashes(leaf_hashes: Iterable[bytes]) -> bytes:
    # Streaming RFC 6962 root: keep the perfect subtrees ("peaks"); the MTH
    # folds them right to left, which is exactly the RFC's k-split recursion.
    peaks: list[tuple[int, bytes]] = []
    for h in leaf_hashes:
        size = 1
        while peaks and peaks[-1][0] == size:
            _, left = peaks.pop()
            h, size = _node(left, h), size * 2
        peaks.append((size, h))
    if not peaks:
        return EMPTY_ROOT
    root = peaks[-1][1]
    for _, left in reversed(peaks[:-1]):
        root = _node(left, root)
    return root


def verify_inclusion(
    leaf_hash_value: bytes | str,
    index: int,
    tree_size: int,
    proof: Sequence[bytes | str],
    root_hash: bytes | str,
) -> bool:
    """RFC 9162 §2.1.3.2: does ``proof`` place this leaf hash at ``index`` under ``root_hash``?

    Returns False (never raises) for malformed input.
    """
    try:
        r, path, root = (
            hash_bytes(leaf_hash_value),
            [hash_bytes(p) for p in proof],
            hash_bytes(root_hash),
        )
    except (ValueError, TypeError):
        return False
    if not isinstance(index, int) or not isinstance(tree_size, int) or not 0 <= index < tree_size:
        return False
    fn, sn = index, tree_size - 1
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = _node(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(
    first: int,
    second: int,
    first_root: bytes | str,
    second_root: bytes | str,
    proof: Sequence[bytes | str],
) -> bool:
    """RFC 9162 §2.1.4.2: is the tree (second, second_root) an append-only extension of (first, first_root)?

    Trivial cases: first == second needs an empty proof and equal roots;
    first == 0 needs an empty proof and the empty-tree root as first_root. Returns False (never raises) for malformed input.
    """
    try:
        path, old, new = (
            [hash_bytes(p) for p in proof],
            hash_bytes(first_root),
            hash_bytes(second_root),
        )
    except (ValueError, TypeError):
        return False
    if not isinstance(first, int) or not isinstance(second, int) or not 0 <= first <= second:
        return False
    if first == second:
        return not path and old == new
    if first == 0:  # everything extends the empty tree; only its root can be checked
        return not path and old == EMPTY_ROOT
    if not path:
        return False
    if first & (first - 1) == 0:  # first is a power of two: its root is the first node
        path = [old] + path
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = _node(c, fr), _node(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = _node(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == old and sr == new and sn == 0
