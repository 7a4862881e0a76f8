"""The independent ledger verifier: honest exports pass, every tampering is caught.

The honest export (1,000 entries, checkpoints at 0, 250, 500, 750, 1000) is
built once per module. Verifier states are snapshotted after each honest
line, so a tampered variant is checked by resuming the real verifier at the
first changed line instead of re-reading the identical prefix; a sample is
also re-verified from scratch to show that resuming changes nothing.
"""

from __future__ import annotations

import ast
import json
import random
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from services.consent import ledger, tokens, verify

from .conftest import BASE_TIME, build_entries

N_ENTRIES = 1000
CHECKPOINT_SIZES = (0, 250, 500, 750, 1000)


class Honest:
    def __init__(self, key):
        self.key = key
        self.keys = verify.load_public_keys(tokens.public_key_to_pem(key))
        self.entries = build_entries(N_ENTRIES)
        self.tree = ledger.MerkleTree.from_entries(self.entries)
        self.checkpoints = [
            ledger.sign_checkpoint(
                self.tree, key, BASE_TIME + timedelta(days=1, hours=size), tree_size=size
            )
            for size in CHECKPOINT_SIZES
        ]
        self.lines = [
            line.encode("utf-8") for line in ledger.export_lines(self.entries, self.checkpoints)
        ]
        # line number (1-based) of each entry seq, and the checkpoint line numbers
        self.entry_line = {}
        self.checkpoint_lines = []
        for number, line in enumerate(self.lines, start=1):
            if line.startswith(b'{"at"'):
                self.entry_line[len(self.entry_line)] = number
            else:
                self.checkpoint_lines.append(number)
        # states[i]: the verifier after reading the first i lines
        self.states = []
        state = verify.ExportVerifier(self.keys)
        for number, line in enumerate(self.lines, start=1):
            self.states.append(state.copy())
            assert state.feed(line, number)
        self.states.append(state)

    def resume(self, tampered: list[bytes], first_changed: int) -> verify.Report:
        """Verify ``tampered`` (identical to the honest lines before index ``first_changed``)."""
        return (
            self.states[first_changed]
            .copy()
            .run(tampered[first_changed:], first_line=first_changed + 1)
        )

    def from_scratch(self, tampered: list[bytes], **kwargs) -> verify.Report:
        return verify.verify_export(tampered, self.keys, **kwargs)


@pytest.fixture(scope="module")
def honest(signing_key) -> Honest:
    return Honest(signing_key)


def flipped(line: bytes, position: int, new_byte: int) -> bytes:
    assert line[position] != new_byte
    return line[:position] + bytes([new_byte]) + line[position + 1 :]


# ---- honest export ------------------------------------------------------------------


def test_honest_export_verifies(honest):
    report = honest.from_scratch(honest.lines)
    assert report.ok, report.message()
    assert report.message() == f"OK: {N_ENTRIES} entries, {len(CHECKPOINT_SIZES)} checkpoints"
    assert honest.states[-1].finish().ok
    assert len(honest.entry_line) == N_ENTRIES and len(honest.checkpoint_lines) == len(
        CHECKPOINT_SIZES
    )


def test_cut_member_texts_equal_the_canonical_encodings(honest):
    for entry, line in zip(
        honest.entries, (honest.lines[n - 1] for n in honest.entry_line.values()), strict=True
    ):
        text = line.decode().rstrip("\n")
        entry_text, body_text = verify.entry_texts(text, json.loads(text))
        assert entry_text == verify.canonical(entry)
        assert body_text == verify.canonical({k: v for k, v in entry.items() if k != "hash"})


def test_verifier_and_service_agree_on_roots_proofs_and_signed_bytes(honest):
    builder = verify.RootBuilder()
    rng = random.Random(5)
    for size, entry in enumerate(honest.entries, start=1):
        builder.append(bytes.fromhex(ledger.leaf_hash(entry)))
        if size % 97 == 0 or size in (1, 2, 3, N_ENTRIES):
            assert builder.root() == honest.tree.root(size)
            index, first = rng.randrange(size), rng.randrange(size + 1)
            path = honest.tree.inclusion_proof(index, size)
            leaf = bytes.fromhex(ledger.leaf_hash(honest.entries[index]))
            assert verify.verify_inclusion(leaf, index, size, path, builder.root())
            assert not verify.verify_inclusion(leaf[::-1], index, size, path, builder.root())
            if size > 1:
                assert not verify.verify_inclusion(
                    leaf, (index + 1) % size, size, path, builder.root()
                )
            proof = honest.tree.consistency_proof(first, size)
            assert verify.verify_consistency(
                first, size, honest.tree.root(first), builder.root(), proof
            )
            if proof:
                assert not verify.verify_consistency(
                    first, size, honest.tree.root(first), builder.root(), proof[1:]
                )
    assert verify.checkpoint_message(7, "ab" * 32, "t") == ledger.checkpoint_message(
        7, "ab" * 32, "t"
    )
    assert verify.key_id(honest.key.public_key()) == tokens.key_id(honest.key)


def test_verifier_uses_only_the_standard_library_and_cryptography():
    # Every module of the verifier package: each may import the others (relative imports) and
    # nothing else of Voices.
    modules = sorted(Path(verify.__file__).parent.glob("*.py"))
    assert {path.name for path in modules} >= {"__init__.py", "proofs.py", "export.py", "cli.py"}
    imported = set()
    for path in modules:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add((node.module or "").split(".")[0])
    assert imported - set(sys.stdlib_module_names) == {"cryptography"}


# ---- tampering: byte flips -------------------------------------------------------------


def test_every_entry_line_with_a_flipped_byte_is_caught_at_that_line(honest):
    rng = random.Random(20250301)
    still_json = broken_json = 0
    for seq, number in honest.entry_line.items():
        line = honest.lines[number - 1]
        body_length = len(line) - 1  # the newline is tested separately
        for attempt in range(3):
            position = rng.randrange(body_length)
            original = line[position]
            if attempt == 0:  # a look-alike printable character: usually still valid JSON
                new_byte = rng.choice([c for c in b"0123456789abcdefABCDEF" if c != original])
            elif attempt == 1:  # flip one bit
                new_byte = original ^ (1 << rng.randrange(8))
            else:  # any other byte value, including ones that are not UTF-8
                new_byte = rng.choice([b for b in range(256) if b != original])
            tampered_line = flipped(line, position, new_byte)
            try:
                json.loads(tampered_line)
                still_json += 1
            except ValueError:
                broken_json += 1
            tampered = list(honest.lines)
            tampered[number - 1] = tampered_line
            report = honest.resume(tampered, number - 1)
            assert not report.ok, (seq, position, new_byte)
            assert report.line == number, (seq, position, report.message())
    assert still_json >= 500 and broken_json >= 500, (still_json, broken_json)


def test_flipping_any_newline_is_caught(honest):
    rng = random.Random(7)
    for number in range(1, len(honest.lines) + 1):
        line = honest.lines[number - 1]
        new_byte = rng.choice([b for b in range(256) if b != 0x0A])
        # the flipped newline joins this line to the next (or leaves junk at the end)
        joined = (
            line[:-1]
            + bytes([new_byte])
            + (honest.lines[number] if number < len(honest.lines) else b"")
        )
        tampered = honest.lines[: number - 1] + [joined] + honest.lines[number + 1 :]
        report = honest.resume(tampered, number - 1)
        assert not report.ok and report.line == number, report.message()


def test_every_byte_of_every_checkpoint_line_matters(honest):
    rng = random.Random(11)
    checked = 0
    for number in honest.checkpoint_lines:
        line = honest.lines[number - 1]
        for position in range(len(line) - 1):
            new_byte = rng.choice(
                [b for b in b'0123456789abcdefABCDEF+/=:,"{} ' if b != line[position]]
            )
            tampered = list(honest.lines)
            tampered[number - 1] = flipped(line, position, new_byte)
            report = honest.resume(tampered, number - 1)
            assert not report.ok, (number, position, chr(new_byte))
            assert report.line == number, report.message()
            checked += 1
    assert checked > 800


def test_resuming_gives_the_same_answer_as_verifying_from_scratch(honest):
    rng = random.Random(3)
    for _ in range(25):
        number = rng.randrange(1, len(honest.lines) + 1)
        line = honest.lines[number - 1]
        position = rng.randrange(len(line) - 1)
        tampered = list(honest.lines)
        tampered[number - 1] = flipped(line, position, line[position] ^ 0x01)
        resumed, scratch = honest.resume(tampered, number - 1), honest.from_scratch(tampered)
        assert (resumed.ok, resumed.line, resumed.seq, resumed.reason) == (
            scratch.ok,
            scratch.line,
            scratch.seq,
            scratch.reason,
        ) and not scratch.ok


def entry_line_for(entry: dict) -> bytes:
    return ledger.canonical_json({"type": "entry", **entry}) + b"\n"


@pytest.mark.parametrize("seq", [0, 5, 249, 250, 777])
def test_an_entry_rehashed_in_place_breaks_the_link_from_the_next_one(honest, seq):
    changed = {
        **honest.entries[seq],
        "data": {**honest.entries[seq]["data"], "consultation_id": "c-elsewhere"},
    }
    changed["hash"] = ledger.entry_hash(changed)
    tampered = list(honest.lines)
    number = honest.entry_line[seq]
    tampered[number - 1] = entry_line_for(changed)
    report = honest.resume(tampered, number - 1)
    assert not report.ok
    if (
        seq + 1 in CHECKPOINT_SIZES
    ):  # the checkpoint right after it is read first and no longer matches
        assert report.line == number + 1 and "does not match" in report.reason
    else:
        assert report.line == honest.entry_line[seq + 1] and report.seq == seq + 1
        assert "prev_hash" in report.reason


def test_a_renumbered_entry_is_caught_at_its_line_even_with_a_recomputed_hash(honest):
    renumbered = {**honest.entries[400], "seq": 401}
    renumbered["hash"] = ledger.entry_hash(renumbered)
    tampered = list(honest.lines)
    number = honest.entry_line[400]
    tampered[number - 1] = entry_line_for(renumbered)
    report = honest.resume(tampered, number - 1)
    assert not report.ok and report.line == number and "expected entry seq 400" in report.reason


def test_lines_must_be_in_canonical_form_even_when_their_values_are_unchanged(honest):
    number = honest.checkpoint_lines[2]
    respaced = json.dumps(json.loads(honest.lines[number - 1]), sort_keys=True).encode() + b"\n"
    assert json.loads(respaced) == json.loads(honest.lines[number - 1])
    tampered = list(honest.lines)
    tampered[number - 1] = respaced
    report = honest.resume(tampered, number - 1)
    assert not report.ok and report.line == number and "canonical" in report.reason


# ---- tampering: deleting, swapping, duplicating, rewriting ----------------------------------


def test_deleting_any_entry_is_caught(honest):
    for seq, number in honest.entry_line.items():
        tampered = honest.lines[: number - 1] + honest.lines[number:]
        report = honest.resume(tampered, number - 1)
        assert not report.ok, seq
        assert report.line is not None and report.line >= number


def test_swapping_entries_is_caught(honest):
    rng = random.Random(42)
    pairs = {(s, s + 1) for s in range(0, N_ENTRIES - 1, 9)}
    while len(pairs) < 300:
        a, b = sorted(rng.sample(range(N_ENTRIES), 2))
        pairs.add((a, b))
    for a, b in pairs:
        i, j = honest.entry_line[a] - 1, honest.entry_line[b] - 1
        tampered = list(honest.lines)
        tampered[i], tampered[j] = tampered[j], tampered[i]
        report = honest.resume(tampered, i)
        assert not report.ok and report.line == i + 1, (a, b, report.message())


def test_duplicated_or_inserted_entries_are_caught(honest):
    for seq in range(0, N_ENTRIES, 37):
        number = honest.entry_line[seq]
        tampered = honest.lines[:number] + [honest.lines[number - 1]] + honest.lines[number:]
        report = honest.resume(tampered, number)
        assert not report.ok and report.line == number + 1


def rewrite_history(honest: Honest, seq: int) -> list[dict]:
    """An attacker changes one entry and recomputes every later hash so the chain looks intact."""
    entries = honest.entries[:seq]
    prev = entries[-1] if entries else None
    for i, original in enumerate(honest.entries[seq:], start=seq):
        data = dict(original["data"])
        if i == seq:
            data["consultation_id"] = "c-rewritten"
        prev = ledger.make_entry(prev, original["kind"], data, original["at"])
        entries.append(prev)
    assert ledger.verify_chain(entries) is None  # the chain alone cannot tell
    return entries


@pytest.mark.parametrize("seq", [0, 1, 249, 250, 499, 640, 998, 999])
def test_a_rechained_history_fails_against_the_signed_checkpoints(honest, seq):
    entries = rewrite_history(honest, seq)
    tampered = [line.encode() for line in ledger.export_lines(entries, honest.checkpoints)]
    report = honest.from_scratch(tampered)
    first_covering = min(size for size in CHECKPOINT_SIZES if size > seq)
    assert not report.ok
    assert (
        report.line
        == tampered.index(
            next(line for line in tampered if b'"tree_size":%d,' % first_covering in line)
        )
        + 1
    )
    assert "does not match" in report.reason


def test_rechained_history_resigned_with_a_wrong_key_is_caught(honest, other_key):
    entries = rewrite_history(honest, 300)
    tree = ledger.MerkleTree.from_entries(entries)
    forged = [
        ledger.sign_checkpoint(tree, other_key, cp["timestamp"], tree_size=cp["tree_size"])
        for cp in honest.checkpoints
    ]
    report = honest.from_scratch([line.encode() for line in ledger.export_lines(entries, forged)])
    assert not report.ok and "not in the public key file" in report.reason and report.line == 1
    # the forger also copies the real key id: the signature itself must fail
    relabelled = [{**cp, "key_id": tokens.key_id(honest.key)} for cp in forged]
    report = honest.from_scratch(
        [line.encode() for line in ledger.export_lines(entries, relabelled)]
    )
    assert not report.ok and "does not verify" in report.reason


def test_every_checkpoint_resigned_with_a_wrong_key_is_caught(honest, other_key):
    for index, number in enumerate(honest.checkpoint_lines):
        cp = honest.checkpoints[index]
        for forged in (
            ledger.sign_checkpoint(
                honest.tree, other_key, cp["timestamp"], tree_size=cp["tree_size"]
            ),
            {
                **ledger.sign_checkpoint(
                    honest.tree, other_key, cp["timestamp"], tree_size=cp["tree_size"]
                ),
                "key_id": cp["key_id"],
            },
        ):
            tampered = list(honest.lines)
            tampered[number - 1] = ledger.canonical_json({"type": "checkpoint", **forged}) + b"\n"
            report = honest.resume(tampered, number - 1)
            assert not report.ok and report.line == number


def test_history_rewritten_by_the_key_holder_is_caught_with_a_checkpoint_kept_earlier(honest):
    kept = honest.checkpoints[2]  # tree_size 500, saved by an auditor last time
    entries = rewrite_history(honest, 100)
    tree = ledger.MerkleTree.from_entries(entries)
    resigned = [
        ledger.sign_checkpoint(tree, honest.key, cp["timestamp"], tree_size=cp["tree_size"])
        for cp in honest.checkpoints
    ]
    lines = [line.encode() for line in ledger.export_lines(entries, resigned)]
    assert honest.from_scratch(lines).ok  # self-consistent forgery by whoever holds the key ...
    report = honest.from_scratch(lines, trusted=[kept])
    assert (
        not report.ok and "trusted checkpoint" in report.reason
    )  # ... but not consistent with what was seen
    assert honest.from_scratch(honest.lines, trusted=[kept]).ok


def test_truncation_and_uncovered_tails(honest):
    # cutting the last entry leaves the final checkpoint claiming more than is there
    without_last_entry = honest.lines[:-2] + honest.lines[-1:]
    report = honest.from_scratch(without_last_entry)
    assert not report.ok and "covers 1000 entries" in report.reason
    # dropping the final checkpoint too is only visible as an unsigned tail (an error unless allowed)
    tail_cut = honest.lines[:-1]
    report = honest.from_scratch(tail_cut)
    assert report.ok and any("not yet covered" in note for note in report.notes)
    strict = honest.from_scratch(tail_cut, strict=True)
    assert not strict.ok and strict.seq == 750


def test_shrinking_or_backdated_checkpoints_are_refused(honest):
    late = honest.checkpoints[1]  # size 250 again, after the size-500 checkpoint
    stale = ledger.canonical_json({"type": "checkpoint", **late}) + b"\n"
    number = honest.checkpoint_lines[2]
    tampered = honest.lines[:number] + [stale] + honest.lines[number:]
    report = honest.resume(tampered, number)
    assert not report.ok and report.line == number + 1 and "only grow" in report.reason

    number = honest.checkpoint_lines[
        3
    ]  # size 750, signed properly but dated before the size-500 one
    backdated = ledger.sign_checkpoint(honest.tree, honest.key, BASE_TIME, tree_size=750)
    tampered = list(honest.lines)
    tampered[number - 1] = ledger.canonical_json({"type": "checkpoint", **backdated}) + b"\n"
    report = honest.resume(tampered, number - 1)
    assert not report.ok and report.line == number and "older" in report.reason


# ---- early exit and the command line ------------------------------------------------------


def test_the_first_problem_is_reported_and_nothing_after_it_is_read(honest):
    tampered = list(honest.lines)
    early, late = honest.entry_line[10], honest.entry_line[900]
    for number in (early, late):
        tampered[number - 1] = flipped(tampered[number - 1], 8, ord("Z"))
    pulled = 0

    def counting():
        nonlocal pulled
        for line in tampered:
            pulled += 1
            yield line

    report = verify.verify_export(counting(), honest.keys)
    assert not report.ok and report.line == early and report.seq == 10
    assert pulled == early


def test_command_line(honest, tmp_path, capsys):
    export, key_file = tmp_path / "ledger.jsonl", tmp_path / "ledger.pub.pem"
    export.write_bytes(b"".join(honest.lines))
    key_file.write_bytes(
        tokens.public_key_to_pem(tokens.generate_signing_key())
        + tokens.public_key_to_pem(honest.key)
    )  # a key ring: old and current key
    assert verify.main([str(export), str(key_file)]) == 0
    assert (
        capsys.readouterr().out.strip()
        == f"OK: {N_ENTRIES} entries, {len(CHECKPOINT_SIZES)} checkpoints"
    )

    bad = list(honest.lines)
    number = honest.entry_line[321]
    bad[number - 1] = bad[number - 1].replace(b'"seq":321', b'"seq":322')
    export.write_bytes(b"".join(bad))
    assert verify.main([str(export), str(key_file)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"FAIL: line {number} (entry seq 322)")

    kept = tmp_path / "kept.json"
    kept.write_text(json.dumps(honest.checkpoints[1]))
    export.write_bytes(b"".join(honest.lines))
    assert verify.main([str(export), str(key_file), "--since", str(kept), "--strict"]) == 0
    assert verify.main([str(export), str(tmp_path / "missing.pem")]) == 2
    key_file.write_text("no key here")
    assert verify.main([str(export), str(key_file)]) == 2


def test_an_unsigned_tail_fails_by_default_whatever_made_it(honest, tmp_path, capsys):
    """Service exports end in a signed checkpoint; each of these does not, and exits 1."""
    key_file = tmp_path / "ledger.pub.pem"
    key_file.write_bytes(tokens.public_key_to_pem(honest.key))
    [forged] = ledger.export_lines(
        [
            ledger.make_entry(
                honest.entries[-1], "consent.granted", dict(honest.entries[-1]["data"]), BASE_TIME
            )
        ],
        [],
    )
    rewritten = rewrite_history(honest, 800)
    last_checkpoint = honest.checkpoint_lines[-1]
    attacks = {
        "an entry forged after the last checkpoint": honest.lines + [forged.encode()],
        "a consistent rewrite with the last checkpoint dropped": [
            line.encode() for line in ledger.export_lines(rewritten, honest.checkpoints[:-1])
        ],
        "the last checkpoint replaced by an older one": honest.lines[: last_checkpoint - 1]
        + [honest.lines[honest.checkpoint_lines[-2] - 1]],
        "a cut tail": honest.lines[: honest.entry_line[900]],
    }
    for attack, lines in attacks.items():
        export = tmp_path / "ledger.jsonl"
        export.write_bytes(b"".join(lines))
        assert verify.main([str(export), str(key_file)]) == 1, attack
        assert "FAIL" in capsys.readouterr().out, attack
    # Relaxed on purpose, the cut tail passes with a note.
    assert verify.main([str(export), str(key_file), "--allow-unsigned-tail"]) == 0
    assert "not yet covered" in capsys.readouterr().out

    # Cut back to an earlier checkpoint, entries and checkpoints together, is a valid older export:
    # only a later checkpoint the auditor kept shows that something is missing.
    export.write_bytes(b"".join(honest.lines[: honest.checkpoint_lines[-2]]))
    assert verify.main([str(export), str(key_file)]) == 0
    kept = tmp_path / "kept.json"
    kept.write_text(json.dumps(honest.checkpoints[-1]))
    assert verify.main([str(export), str(key_file), "--since", str(kept)]) == 1


def test_runs_as_a_module(honest, tmp_path):
    export, key_file = tmp_path / "ledger.jsonl", tmp_path / "ledger.pub.pem"
    export.write_bytes(
        b"".join(honest.lines[:300])
    )  # a prefix: verifiable when allowed, tail unsigned
    key_file.write_bytes(tokens.public_key_to_pem(honest.key))
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.consent.verify",
            str(export),
            str(key_file),
            "--allow-unsigned-tail",
        ],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(
        "OK: 298 entries, 2 checkpoints"
    )  # checkpoint 0, 250 entries, checkpoint 250, 48 entries
    assert "not yet covered" in done.stdout
