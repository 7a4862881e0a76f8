"""The ledger's formats and proofs, re-implemented for the verifier: canonical JSON, entry and
checkpoint shapes, RFC 6962 / RFC 9162 Merkle hashes with inclusion and consistency proofs, and
signed checkpoints (standard library and ``cryptography`` only)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Sequence
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

# Duplicated from services/consent/ledger.py on purpose (see the module docstring).
KINDS = frozenset(
    {
        "consent.granted",
        "consent.withdrawn",
        "consent_text.published",
        "release.signed_off",
        "response.erased",
        "withdrawal.processed",
        "contacts.accessed",
    }
)
ENTRY_KEYS = frozenset({"type", "seq", "kind", "at", "data", "prev_hash", "hash"})
CHECKPOINT_KEYS = frozenset({"type", "tree_size", "root_hash", "timestamp", "signature", "key_id"})
GENESIS_PREV_HASH = "0" * 64
CHECKPOINT_CONTEXT = "voices-consent-ledger checkpoint v1"
HEX64 = re.compile(r"^[0-9a-f]{64}$")
PARTIAL_MARK = (
    '{"type":"partial"}'  # the first line of an export of part of the ledger (ledger.PARTIAL_MARK)
)


_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical(value: object) -> str:
    """Canonical JSON text: sorted keys, no spaces, non-ASCII kept as UTF-8, no NaN."""
    return _CANONICAL.encode(value)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# ---- RFC 6962 / RFC 9162 -------------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 §2.1: leaf hash = SHA-256(0x00 || data)."""
    return sha256(b"\x00" + data)


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 §2.1: interior node = SHA-256(0x01 || left || right)."""
    return sha256(b"\x01" + left + right)


class RootBuilder:
    """Merkle tree heads of every prefix, one leaf at a time, in O(1) amortised per leaf.

    Keeps the perfect subtrees ("peaks") of the leaves so far; the RFC 6962
    tree head (split at the largest power of two below n) is these peaks
    folded right to left. Leaf hashes are kept so a root of an earlier prefix
    can be recomputed when a checkpoint line comes late in the file.
    """

    def __init__(self) -> None:
        self.peaks: list[tuple[int, bytes]] = []
        self.leaves: list[bytes] = []

    def append(self, leaf: bytes) -> None:
        self.leaves.append(leaf)
        size, h = 1, leaf
        while self.peaks and self.peaks[-1][0] == size:
            _, left = self.peaks.pop()
            h, size = node_hash(left, h), size * 2
        self.peaks.append((size, h))

    def root(self) -> bytes:
        if not self.peaks:
            return sha256(b"")
        h = self.peaks[-1][1]
        for _, left in reversed(self.peaks[:-1]):
            h = node_hash(left, h)
        return h

    def root_of_prefix(self, size: int) -> bytes:
        if size == len(self.leaves):
            return self.root()
        again = RootBuilder()
        for leaf in self.leaves[:size]:
            again.append(leaf)
        return again.root()


def verify_inclusion(
    leaf: bytes, index: int, tree_size: int, path: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: does the audit path prove leaf hash ``leaf`` at ``index`` in the tree ``root``?"""
    if not 0 <= index < tree_size:
        return False
    fn, sn, r = index, tree_size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, path: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: is (second, second_root) an append-only extension of (first, first_root)?"""
    if not 0 <= first <= second:
        return False
    if first == second:
        return not path and first_root == second_root
    if first == 0:  # everything extends the empty tree; only its root can be checked
        return not path and first_root == sha256(b"")
    if not path:
        return False
    path = list(path)
    if first & (first - 1) == 0:
        path = [first_root] + path
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == first_root and sr == second_root and sn == 0


# ---- keys and checkpoints -------------------------------------------------------


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


_PEM_BLOCK = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.DOTALL)


def load_public_keys(pem: bytes) -> dict[str, Ed25519PublicKey]:
    """Every Ed25519 public key in a PEM file (several allowed, for key rotation), by key id."""
    keys = {}
    for block in _PEM_BLOCK.findall(pem):
        key = serialization.load_pem_public_key(block)
        if isinstance(key, Ed25519PublicKey):
            keys[key_id(key)] = key
    return keys


def checkpoint_message(tree_size: int, root_hash: str, timestamp: str) -> bytes:
    return f"{CHECKPOINT_CONTEXT}\n{tree_size}\n{root_hash}\n{timestamp}\n".encode("ascii")


def checkpoint_problem(cp: dict, keys: dict[str, Ed25519PublicKey]) -> str | None:
    """Why a checkpoint's fields or signature are not acceptable, or None."""
    size, root, stamp, sig, kid = (
        cp.get(k) for k in ("tree_size", "root_hash", "timestamp", "signature", "key_id")
    )
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return "tree_size is not a non-negative integer"
    if not isinstance(root, str) or not HEX64.match(root):
        return "root_hash is not 64 lowercase hex digits"
    if not isinstance(stamp, str) or parse_time(stamp) is None:
        return "timestamp is not an ISO-8601 time with a zone"
    if not isinstance(kid, str) or kid not in keys:
        return f"signed by key {kid!r}, which is not in the public key file"
    try:
        signature = base64.b64decode(sig, validate=True) if isinstance(sig, str) else b""
    except (binascii.Error, ValueError):
        signature = b""
    # Only the canonical base64 spelling of a 64-byte signature is accepted.
    if len(signature) != 64 or base64.b64encode(signature).decode("ascii") != sig:
        return "signature is not base64 of 64 bytes"
    try:
        keys[kid].verify(signature, checkpoint_message(size, root, stamp))
    except InvalidSignature:
        return "signature does not verify with the public key"
    return None


def parse_time(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
