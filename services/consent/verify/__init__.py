"""Independent verifier for a Voices consent-ledger export.

    python -m services.consent.verify EXPORT.jsonl PUBLIC_KEY.pem [--since CHECKPOINT.json] [--allow-unsigned-tail]
    voices-verify-ledger EXPORT.jsonl PUBLIC_KEY.pem

Prints "OK: N entries, M checkpoints" and exits 0, or names the first bad
line (line number, entry seq, what is wrong) and exits 1; exit 2 for
unusable arguments (unreadable files, no public key).

This package is deliberately self-contained: its modules import only the
Python standard library, ``cryptography`` and each other, and re-implement
the canonical JSON, hash chain, RFC 6962 / RFC 9162 Merkle functions and the
checkpoint message instead of importing them from the service. An auditor
must be able to read this folder (``proofs.py``, ``export.py``, ``cli.py``),
run it on an export, and trust the result without trusting (or even
installing) the code that wrote the ledger.

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

from .cli import main
from .export import ExportVerifier, PartialExportVerifier, Report, entry_texts, verify_export
from .proofs import (
    CHECKPOINT_CONTEXT,
    CHECKPOINT_KEYS,
    ENTRY_KEYS,
    GENESIS_PREV_HASH,
    HEX64,
    KINDS,
    PARTIAL_MARK,
    RootBuilder,
    canonical,
    checkpoint_message,
    checkpoint_problem,
    key_id,
    leaf_hash,
    load_public_keys,
    node_hash,
    parse_time,
    sha256,
    verify_consistency,
    verify_inclusion,
)

__all__ = [
    "CHECKPOINT_CONTEXT",
    "CHECKPOINT_KEYS",
    "ENTRY_KEYS",
    "GENESIS_PREV_HASH",
    "HEX64",
    "KINDS",
    "PARTIAL_MARK",
    "ExportVerifier",
    "PartialExportVerifier",
    "Report",
    "RootBuilder",
    "canonical",
    "checkpoint_message",
    "checkpoint_problem",
    "entry_texts",
    "key_id",
    "leaf_hash",
    "load_public_keys",
    "main",
    "node_hash",
    "parse_time",
    "sha256",
    "verify_consistency",
    "verify_export",
    "verify_inclusion",
]
