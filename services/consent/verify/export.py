"""Checking an export line by line: a whole ledger (`ExportVerifier`) or one organisation's part
with inclusion proofs (`PartialExportVerifier`); `verify_export` picks the one the first line asks for."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .proofs import (
    CHECKPOINT_KEYS,
    ENTRY_KEYS,
    GENESIS_PREV_HASH,
    HEX64,
    KINDS,
    PARTIAL_MARK,
    RootBuilder,
    canonical,
    checkpoint_problem,
    leaf_hash,
    parse_time,
    sha256,
    verify_inclusion,
)

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

    def copy(self) -> ExportVerifier:
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

    LINE_TYPES: tuple[str, ...] = ("entry", "checkpoint")

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
        if moment is None:  # _check_checkpoint refused it already; this keeps the types honest
            raise _Bad(number, "checkpoint timestamp is not an ISO-8601 time with a zone")
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
        head = self.head
        if head is None:  # an entry is refused before the checkpoint, so no proof can come first
            raise _Bad(number, "an inclusion proof before the signed checkpoint")
        path = obj.get("audit_path")
        if (
            set(obj) != {"type", "seq", "tree_size", "audit_path"}
            or obj["seq"] != seq
            or obj["tree_size"] != head["tree_size"]
            or not isinstance(path, list)
            or not all(isinstance(h, str) and HEX64.match(h) for h in path)
        ):
            raise _Bad(
                number, "not the inclusion proof of the entry before it in the signed tree", seq=seq
            )
        if not verify_inclusion(
            leaf,
            seq,
            head["tree_size"],
            [bytes.fromhex(h) for h in path],
            bytes.fromhex(head["root_hash"]),
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
