"""Independent verifier for a Voices consent-ledger export.

    python -m services.consent.verify EXPORT.jsonl PUBLIC_KEY.pem [--since CHECKPOINT.json] [--allow-unsigned-tail]
    voices-verify-ledger EXPORT.jsonl PUBLIC_KEY.pem

Prints "OK: N entries, M checkpoints" and exits 0, or names the first bad
line (line number, entry seq, what is wrong) and exits 1; exit 2 for
unusable arguments (unreadable files, no public key).

This file is deliberately self-contained: it imports only the Python
standard library and ``cryptography``, and re-implements the canonical JSON,
hash chain, RFC 6962 / RFC 9162 Merkle functions and the checkpoint message
instead of importing them from the service. An auditor must be able to
read one file, run it on an export, and trust the result without trusting
(or even installing) the code that wrote the ledger.

Export format, one JSON object per line, each in canonical JSON (sorted
keys, no spaces, UTF-8, so every line has exactly one valid spelling):
  {"type":"entry","seq":0,"kind":"...","at":"...","data":{...},"prev_hash":"<64 hex>","hash":"<64 hex>"}
  {"type":"checkpoint","tree_size":N,"root_hash":"<64 hex>","timestamp":"...","signature":"<base64>","key_id":"<16 hex>"}

An auditor of one organisation gets a partial export instead: a first line {"type":"partial"},
the signed checkpoint of the whole ledger, then each of their entries followed by its inclusion
proof in that tree:
  {"type":"inclusion","seq":N,"tree_size":T,"audit_path":["<64 hex>",...]}
It checks the signature, each entry's own hash, and each entry's audit path up to the signed root.

Checks of a whole export, in file order: every line is canonical JSON of a known shape;
entries have seq 0, 1, 2, ... with no gap; prev_hash is the previous
entry's hash (64 zeros first); hash = SHA-256(canonical entry without
"hash"); each checkpoint is signed (Ed25519) by a key in the PEM file over
its size, root and timestamp; its root equals the RFC 6962 Merkle tree head
recomputed over the first tree_size entries; successive checkpoints never
shrink or go back in time, and so each one's tree is a prefix of the next
(recomputing both roots from the same entries is the consistency proof,
made with the data itself). ``--since`` also checks an earlier checkpoint
the auditor kept, so a rewritten history cannot hide behind fresh
signatures.

The service's exports always end in a signed checkpoint, so by default entries
after the last checkpoint fail the check: they are what an entry forged after
it, a rewrite with the last checkpoint dropped, a last checkpoint replaced by
an older one, or a cut tail look like. ``--allow-unsigned-tail`` accepts them
(with a note), for an export cut by hand. An export cut back to an earlier
checkpoint, entries and checkpoints together, is a valid older export: only
``--since`` with a later checkpoint the auditor kept catches it.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import itertools
import json
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable, Sequence

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


# ---- the export -------------------------------------------------------------------


@dataclass
class Report:
    """Outcome of a verification: ok, counts, and the first problem found (line, seq, reason)."""

    ok: bool
    entries: int
    checkpoints: int
    line: int | None = None
    seq: int | None = None
    reason: str | None = None
    notes: list[str] = field(default_factory=list)

    def message(self) -> str:
        if self.ok:
            return "\n".join(
                [f"OK: {self.entries} entries, {self.checkpoints} checkpoints", *self.notes]
            )
        where = f"line {self.line}" if self.line is not None else "export"
        if self.seq is not None:
            where += f" (entry seq {self.seq})"
        return f"FAIL: {where}: {self.reason}"


class _Bad(Exception):
    def __init__(self, line: int | None, reason: str, seq: int | None = None) -> None:
        super().__init__(reason)
        self.line, self.reason, self.seq = line, reason, seq


def _parse_line(raw: bytes | str, number: int) -> tuple[dict, str]:
    try:
        text = raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw
        obj = json.loads(text)
    except (
        UnicodeDecodeError,
        ValueError,
        RecursionError,
    ):  # RecursionError: absurdly deep nesting
        raise _Bad(number, "not valid UTF-8 JSON") from None
    if not isinstance(obj, dict):
        raise _Bad(number, "not a JSON object")
    try:
        canonical_text = canonical(obj)
    except ValueError:
        raise _Bad(number, "not canonical JSON") from None
    if canonical_text != text:
        raise _Bad(number, "not in canonical JSON form (altered after export?)")
    return obj, text


def entry_texts(line: str, obj: dict) -> tuple[str, str]:
    """Canonical JSON of the entry (the Merkle leaf) and of the entry without "hash" (the chained body).

    Equal to canonical({k: v for k != "type"}) and canonical({k: v for k not
    in ("type", "hash")}), computed by cutting members out of the line: the
    line is already proven canonical, so its keys are sorted (at, data,
    hash, kind, prev_hash, seq, type) and removing a top-level member's text
    leaves the canonical text of the object without it. This saves two
    full JSON encodings per entry (about half the verifier's time); the
    unit tests check both forms against canonical() for every test entry.
    """
    type_member = ',"type":"entry"}'
    tail = (
        ',"kind":'
        + canonical(obj["kind"])
        + ',"prev_hash":'
        + canonical(obj["prev_hash"])
        + ',"seq":'
        + str(obj["seq"])
        + "}"
    )  # seq is already checked to be an int
    hash_member = ',"hash":"' + obj["hash"] + '"'
    if not line.endswith(type_member):
        raise ValueError("entry line does not end with its type member")
    entry_text = line[: -len(type_member)] + "}"
    if not entry_text.endswith(hash_member + tail):
        raise ValueError("entry line members are not in canonical order")
    body_text = entry_text[: -len(hash_member + tail)] + tail
    return entry_text, body_text


def _check_entry_fields(obj: dict, number: int) -> None:
    if set(obj) != ENTRY_KEYS:
        raise _Bad(number, f"entry fields are {sorted(obj)}, expected {sorted(ENTRY_KEYS)}")
    seq = obj["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise _Bad(number, f"entry seq {seq!r} is not a whole number")


def _check_entry_values(obj: dict, number: int) -> None:
    if (
        not isinstance(obj["kind"], str)
        or obj["kind"] not in KINDS
        or not isinstance(obj["data"], dict)
        or not isinstance(obj["at"], str)
        or parse_time(obj["at"]) is None
    ):
        raise _Bad(number, "kind, data or at is not valid", seq=obj["seq"])


def _checked_entry_text(obj: dict, text: str, number: int) -> str:
    """The canonical entry (its Merkle leaf) once its own hash matches its content. Raises _Bad."""
    seq = obj["seq"]
    if not isinstance(obj["hash"], str) or not HEX64.match(obj["hash"]):
        raise _Bad(number, "hash is not 64 lowercase hex digits", seq=seq)
    try:
        entry_text, body_text = entry_texts(text, obj)
    except ValueError as exc:
        raise _Bad(number, str(exc), seq=seq) from None
    if sha256(body_text.encode("utf-8")).hex() != obj["hash"]:
        raise _Bad(number, "hash does not match the entry's content", seq=seq)
    return entry_text


def _check_checkpoint(obj: dict, number: int, public_keys: dict[str, Ed25519PublicKey]) -> None:
    if set(obj) != CHECKPOINT_KEYS:
        raise _Bad(
            number, f"checkpoint fields are {sorted(obj)}, expected {sorted(CHECKPOINT_KEYS)}"
        )
    problem = checkpoint_problem(obj, public_keys)
    if problem:
        raise _Bad(number, f"checkpoint: {problem}")


class ExportVerifier:
    """Streaming verifier: feed the export's lines in order, then ``finish()``.

    It holds only what the next line needs (the previous hash, the Merkle
    peaks, checkpoints still waiting for their entries), so ``copy()`` can
    snapshot it: tests verify one honest prefix once and resume from there
    for every tampered variant. Most callers want ``verify_export``.
    """

    def __init__(
        self,
        public_keys: dict[str, Ed25519PublicKey],
        trusted: Sequence[dict] = (),
        strict: bool = False,
    ) -> None:
        self.public_keys, self.strict = public_keys, strict
        self.builder = RootBuilder()
        self.expected_prev = GENESIS_PREV_HASH
        self.entries = self.checkpoints = 0
        self.pending: dict[
            int, list[tuple[int | None, str, str]]
        ] = {}  # size -> [(line, label, root)]
        self.last_size: int = -1
        self.last_time: datetime | None = None
        self.blank_line: int | None = None
        self.problem: _Bad | None = None
        try:
            for cp in trusted:
                if not isinstance(cp, dict):
                    raise _Bad(None, "trusted checkpoint is not a JSON object")
                problem = checkpoint_problem(cp, public_keys)
                if problem:
                    raise _Bad(None, f"trusted checkpoint: {problem}")
                self._schedule(None, "trusted checkpoint", cp["tree_size"], cp["root_hash"])
        except _Bad as bad:
            self.problem = bad

    def copy(self) -> "ExportVerifier":
        twin = object.__new__(ExportVerifier)
        twin.__dict__.update(self.__dict__)
        twin.builder = RootBuilder()
        twin.builder.peaks, twin.builder.leaves = (
            list(self.builder.peaks),
            list(self.builder.leaves),
        )
        twin.pending = {size: list(items) for size, items in self.pending.items()}
        return twin

    def _check_root(self, line: int | None, label: str, size: int, root: str) -> None:
        if self.builder.root_of_prefix(size).hex() != root:
            raise _Bad(
                line,
                f"{label}: the signed root for tree_size {size} does not match entries 0..{size - 1} "
                f"(an entry in that range was changed, removed, added or reordered)",
            )

    def _schedule(self, line: int | None, label: str, size: int, root: str) -> None:
        if size <= self.entries:
            self._check_root(line, label, size, root)
        else:
            self.pending.setdefault(size, []).append((line, label, root))

    def run(self, lines: Iterable[bytes | str], first_line: int = 1) -> Report:
        """Feed ``lines`` (numbered from ``first_line``), stopping at the first problem, and finish."""
        if self.problem is None:
            for number, raw in enumerate(lines, start=first_line):
                if not self.feed(raw, number):
                    break  # the first problem is the answer; read no further
        return self.finish()

    def feed(self, raw: bytes | str, number: int) -> bool:
        """Check one line; False (and the problem kept for ``finish``) when it is bad."""
        if self.problem is not None:
            return False
        try:
            self._feed(raw, number)
            return True
        except _Bad as bad:
            self.problem = bad
            return False

    def _feed(self, raw: bytes | str, number: int) -> None:
        stripped = (
            raw.rstrip(b"\r\n") if isinstance(raw, (bytes, bytearray)) else raw.rstrip("\r\n")
        )
        if not stripped:
            self.blank_line = (
                self.blank_line or number
            )  # only a final newline may leave an empty line
            return
        if self.blank_line is not None:
            raise _Bad(self.blank_line, "blank line inside the export")
        obj, text = _parse_line(stripped, number)
        kind = obj.get("type")
        if kind not in self.LINE_TYPES:
            raise _Bad(number, f"unknown line type {kind!r}")
        getattr(self, f"_{kind}")(obj, text, number)

    LINE_TYPES = ("entry", "checkpoint")

    def _entry(self, obj: dict, text: str, number: int) -> None:
        _check_entry_fields(obj, number)
        seq = obj["seq"]
        if seq != self.entries:
            raise _Bad(
                number,
                f"expected entry seq {self.entries}, found {seq!r} (missing, extra or "
                f"reordered entries)",
                seq=seq,
            )
        _check_entry_values(obj, number)
        if obj["prev_hash"] != self.expected_prev:
            raise _Bad(number, "prev_hash is not the previous entry's hash (chain broken)", seq=seq)
        entry_text = _checked_entry_text(obj, text, number)
        self.builder.append(leaf_hash(entry_text.encode("utf-8")))
        self.expected_prev = obj["hash"]
        self.entries += 1
        for line, label, root in self.pending.pop(self.entries, ()):
            self._check_root(line, label, self.entries, root)

    def _checkpoint(self, obj: dict, text: str, number: int) -> None:
        _check_checkpoint(obj, number, self.public_keys)
        moment = parse_time(obj["timestamp"])
        if obj["tree_size"] < self.last_size or (
            self.last_time is not None and moment < self.last_time
        ):
            raise _Bad(
                number,
                "checkpoint is smaller or older than the one before it (the log must only grow)",
            )
        self.last_size, self.last_time = obj["tree_size"], moment
        self.checkpoints += 1
        self._schedule(number, "checkpoint", obj["tree_size"], obj["root_hash"])

    def finish(self) -> Report:
        """The Report: the first problem seen, or OK with notes on what no signature covers."""
        if self.problem is None and self.pending:
            size = min(self.pending)
            line, label, _ = self.pending[size][0]
            self.problem = _Bad(
                line, f"{label} covers {size} entries but the export has only {self.entries}"
            )
        if self.problem is not None:
            bad = self.problem
            return Report(False, self.entries, self.checkpoints, bad.line, bad.seq, bad.reason)
        report = Report(True, self.entries, self.checkpoints)
        covered = max(self.last_size, 0)
        if self.checkpoints == 0:
            report.notes.append("note: no checkpoint, so nothing in this export is signed")
        if covered < self.entries:
            report.notes.append(
                f"note: entries {covered}..{self.entries - 1} are hash-chained but not yet "
                f"covered by a signed checkpoint"
            )
            if self.strict:
                return Report(
                    False,
                    self.entries,
                    self.checkpoints,
                    None,
                    covered,
                    f"entries {covered}..{self.entries - 1} are not covered by a signed checkpoint, "
                    f"but an export ends in one: added, cut or its last checkpoint removed "
                    f"(--allow-unsigned-tail accepts this)",
                )
        return report


class PartialExportVerifier(ExportVerifier):
    """Verifier for an export of part of the ledger (an organisation's entries, as its auditors get
    it): the signed tree head first, then each entry followed by its inclusion proof in that tree.

    Each entry must hash to its own hash, and its leaf must sit at its seq under the signed root.
    Entries come in rising seq order; where two neighbours are both shown, their chain link is
    checked too. What lies between them is proven to exist, not shown.
    """

    LINE_TYPES = ("entry", "checkpoint", "inclusion")

    def __init__(
        self,
        public_keys: dict[str, Ed25519PublicKey],
        trusted: Sequence[dict] = (),
        strict: bool = False,
    ) -> None:
        super().__init__(public_keys, (), strict)
        self.head: dict | None = None
        self.previous: dict | None = None
        self.unproven: tuple[int, int, bytes] | None = (
            None  # (line, seq, leaf hash) awaiting its proof
        )
        self.partial_notes = [
            "note: a part of the ledger; each entry is proven under the signed root"
        ]
        if trusted:
            self.partial_notes.append(
                "note: --since needs the whole ledger's export; not checked here"
            )

    def _checkpoint(self, obj: dict, text: str, number: int) -> None:
        if self.head is not None:
            raise _Bad(number, "a partial export has one checkpoint, on its first line")
        _check_checkpoint(obj, number, self.public_keys)
        self.head, self.checkpoints = obj, 1

    def _entry(self, obj: dict, text: str, number: int) -> None:
        if self.head is None:
            raise _Bad(
                number,
                "a partial export starts with the signed checkpoint its entries are proven under",
            )
        if self.unproven is not None:
            raise _Bad(
                number, "the entry before this one has no inclusion proof", seq=self.unproven[1]
            )
        _check_entry_fields(obj, number)
        seq = obj["seq"]
        last = -1 if self.previous is None else self.previous["seq"]
        if not last < seq < self.head["tree_size"]:
            raise _Bad(
                number,
                f"entry seq {seq} is not after {last} and inside the signed tree of "
                f"{self.head['tree_size']} entries",
                seq=seq,
            )
        _check_entry_values(obj, number)
        if (
            self.previous is not None
            and seq == last + 1
            and obj["prev_hash"] != self.previous["hash"]
        ):
            raise _Bad(number, "prev_hash is not the previous entry's hash (chain broken)", seq=seq)
        entry_text = _checked_entry_text(obj, text, number)
        self.unproven = (number, seq, leaf_hash(entry_text.encode("utf-8")))
        self.previous = obj

    def _inclusion(self, obj: dict, text: str, number: int) -> None:
        if self.unproven is None:
            raise _Bad(number, "an inclusion proof with no entry before it")
        _line, seq, leaf = self.unproven
        path = obj.get("audit_path")
        if (
            set(obj) != {"type", "seq", "tree_size", "audit_path"}
            or obj["seq"] != seq
            or obj["tree_size"] != self.head["tree_size"]
            or not isinstance(path, list)
            or not all(isinstance(h, str) and HEX64.match(h) for h in path)
        ):
            raise _Bad(
                number, "not the inclusion proof of the entry before it in the signed tree", seq=seq
            )
        if not verify_inclusion(
            leaf,
            seq,
            self.head["tree_size"],
            [bytes.fromhex(h) for h in path],
            bytes.fromhex(self.head["root_hash"]),
        ):
            raise _Bad(
                number,
                "the entry is not under the signed root (changed, or not in this ledger)",
                seq=seq,
            )
        self.unproven = None
        self.entries += 1

    def finish(self) -> Report:
        if self.problem is None and self.unproven is not None:
            line, seq, _leaf = self.unproven
            self.problem = _Bad(line, "the last entry has no inclusion proof", seq=seq)
        if self.problem is not None:
            bad = self.problem
            return Report(False, self.entries, self.checkpoints, bad.line, bad.seq, bad.reason)
        return Report(True, self.entries, self.checkpoints, notes=list(self.partial_notes))


def verify_export(
    lines: Iterable[bytes | str],
    public_keys: dict[str, Ed25519PublicKey],
    trusted: Sequence[dict] = (),
    strict: bool = False,
) -> Report:
    """Verify an export given as lines (with or without newlines) and return a Report.

    Stops reading at the first problem, in file order (a checkpoint that
    precedes its entries is checked once they have been read). ``trusted``
    are checkpoints the auditor kept from earlier: they must be signed and
    match this export's history too. An export whose first line is
    PARTIAL_MARK is a partial one (see PartialExportVerifier).
    """
    lines = iter(lines)
    first = next(lines, None)
    text = first.decode("utf-8", "replace") if isinstance(first, (bytes, bytearray)) else first
    if text is not None and text.rstrip("\r\n") == PARTIAL_MARK:
        return PartialExportVerifier(public_keys, trusted, strict).run(lines, first_line=2)
    return ExportVerifier(public_keys, trusted, strict).run(
        itertools.chain([] if first is None else [first], lines)
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status (0 ok, 1 bad export, 2 unusable input)."""
    parser = argparse.ArgumentParser(
        prog="voices-verify-ledger",
        description="Verify a Voices consent-ledger export with the public key only.",
    )
    parser.add_argument("export", help="the JSON-lines export")
    parser.add_argument("public_key", help="PEM file with the ledger's Ed25519 public key(s)")
    parser.add_argument(
        "--since",
        action="append",
        default=[],
        metavar="CHECKPOINT.json",
        help="a checkpoint you kept earlier; the export must extend it (repeatable)",
    )
    parser.add_argument(
        "--allow-unsigned-tail",
        action="store_true",
        help="accept entries after the last signed checkpoint (exports end in one, so by "
        "default they fail)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="the default; kept so older scripts still run"
    )
    args = parser.parse_args(argv)
    try:
        with open(args.public_key, "rb") as handle:
            keys = load_public_keys(handle.read())
        trusted = []
        for path in args.since:
            with open(path, "rb") as handle:
                trusted.append(json.loads(handle.read().decode("utf-8")))
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not keys:
        print(f"error: no Ed25519 public key in {args.public_key}", file=sys.stderr)
        return 2
    try:
        with open(args.export, "rb") as handle:
            report = verify_export(
                handle, keys, trusted=trusted, strict=not args.allow_unsigned_tail
            )
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.message())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
