"""The consent ledger: append-only entries, hash chain, RFC 6962 Merkle tree, signed checkpoints.

Every consent-relevant fact (a grant, a withdrawal, a published consent
text, a release sign-off, a confirmed erasure) becomes one entry:

    {seq, kind, at, data, prev_hash, hash}

``hash`` is SHA-256 over the canonical JSON of the entry without ``hash``,
and ``prev_hash`` is the previous entry's ``hash`` (64 zeros for seq 0), so
changing any entry breaks every later link. On top of the chain, the Merkle
tree of RFC 6962 / RFC 9162 (leaf = canonical JSON of the whole entry) gives
short inclusion and consistency proofs, and a periodically signed checkpoint
(tree size, root hash, timestamp, Ed25519 signature) commits the service to
one history that an auditor can check with ``services/consent/verify/``.

The ledger is permanent, so ``data`` is restricted per kind to identifiers,
pseudonyms, codes and hashes (see ``LEDGER_FIELDS``): nothing in it can ever
need erasing. Pure module: storage (unique index on seq, retry on duplicate
key) belongs to the repository that calls ``make_entry``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature

from services.consent import merkle

# The RFC 6962 tree itself is in `merkle`; callers of the ledger find its proofs here too.
from services.consent.merkle import EMPTY_ROOT as EMPTY_ROOT
from services.consent.merkle import hash_bytes, hash_leaf, root_of_leaf_hashes
from services.consent.merkle import verify_consistency as verify_consistency
from services.consent.merkle import verify_inclusion as verify_inclusion
from services.consent.tokens import (
    PrivateKeyLike,
    PublicKeyLike,
    as_private_key,
    as_public_key,
    key_id,
)

_leaf = hash_leaf  # the RFC 6962 leaf hash, under the name the ledger's callers know

KINDS = (
    "consent.granted",
    "consent.withdrawn",
    "consent_text.published",
    "release.signed_off",
    "response.erased",
    "withdrawal.processed",
    "contacts.accessed",
)
ENTRY_FIELDS = ("seq", "kind", "at", "data", "prev_hash", "hash")
GENESIS_PREV_HASH = "0" * 64
CHECKPOINT_FIELDS = ("tree_size", "root_hash", "timestamp", "signature", "key_id")
CHECKPOINT_CONTEXT = "voices-consent-ledger checkpoint v1"

# kind -> (required keys, optional keys). Identifiers, pseudonyms, codes and
# hashes only: a ledger cannot be edited, so personal data must never enter it.
LEDGER_FIELDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "consent.granted": (
        frozenset(
            {
                "grant_id",
                "pseudonym",
                "consultation_id",
                "purposes",
                "text_version",
                "language",
                "text_sha256",
                "collection_method",
                "guardian",
                "granted_at",
            }
        ),
        frozenset(),
    ),
    "consent.withdrawn": (
        frozenset(
            {
                "grant_id",
                "pseudonym",
                "consultation_id",
                "purposes",
                "remaining",
                "all",
                "withdrawn_at",
            }
        ),
        frozenset(),
    ),
    "consent_text.published": (
        frozenset({"consultation_id", "text_version", "language", "text_sha256"}),
        frozenset({"organisation_id", "published_at", "text_id"}),
    ),
    "release.signed_off": (
        frozenset({"release_id", "consultation_id", "snapshot", "signed_off_by", "digest"}),
        frozenset({"organisation_id", "signed_off_at", "released_at"}),
    ),
    "response.erased": (
        frozenset({"response_id", "consultation_id", "pseudonym", "reason", "erased_at"}),
        frozenset({"grant_id"}),
    ),
    "withdrawal.processed": (
        frozenset(
            {"consultation_id", "pseudonym", "responses_erased", "key_shredded", "processed_at"}
        ),
        frozenset(),
    ),
    "contacts.accessed": (
        frozenset({"consultation_id", "organisation_id", "accessed_by", "count", "accessed_at"}),
        frozenset(),
    ),
}
_MAX_VALUE_CHARS = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


# ---- canonical form and timestamps ---------------------------------------------


def canonical_json(value: Any) -> bytes:
    """Canonical JSON: sorted keys, no spaces, UTF-8, no NaN. The byte form everything is hashed over."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def format_timestamp(moment: datetime | str) -> str:
    """ISO-8601 UTC with microseconds and a 'Z' (one spelling, so hashes are stable).

    Accepts an aware datetime or an ISO-8601 string with an offset; raises
    ValueError for naive or unparsable times.
    """
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment)
        except ValueError:
            raise ValueError(f"not an ISO-8601 timestamp: {moment!r}") from None
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware (UTC)")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---- entries and the hash chain -------------------------------------------------


def _check_data(kind: str, data: Mapping[str, Any]) -> dict[str, Any]:
    if kind not in LEDGER_FIELDS:
        raise ValueError(f"unknown ledger entry kind {kind!r}; expected one of {', '.join(KINDS)}")
    if not isinstance(data, Mapping):
        raise ValueError("ledger entry data must be a mapping")
    required, optional = LEDGER_FIELDS[kind]
    missing = required - data.keys()
    unexpected = data.keys() - required - optional
    if missing:
        raise ValueError(f"{kind} ledger entry lacks {sorted(missing)}")
    if unexpected:
        raise ValueError(
            f"{kind} ledger entry may not carry {sorted(unexpected)} (identifiers and hashes only)"
        )
    clean: dict[str, Any] = {}
    for name, value in data.items():
        values = value if isinstance(value, list) else [value]
        for item in values:
            # Floats would make the canonical form ambiguous; long or multi-line
            # strings are how free text would sneak in.
            if isinstance(item, float) or not isinstance(item, (str, int, bool, type(None))):
                raise ValueError(
                    f"{kind}.{name}: only strings, integers, booleans, null or lists of those"
                )
            if isinstance(item, str) and (len(item) > _MAX_VALUE_CHARS or _CONTROL.search(item)):
                raise ValueError(f"{kind}.{name}: values are short single-line identifiers")
        clean[name] = list(value) if isinstance(value, list) else value
    return clean


def entry_hash(entry: Mapping[str, Any]) -> str:
    """SHA-256 (hex) over the canonical JSON of the entry's fields except ``hash``."""
    body = {name: entry[name] for name in ENTRY_FIELDS if name != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def make_entry(
    prev: Mapping[str, Any] | None, kind: str, data: Mapping[str, Any], at: datetime | str
) -> dict[str, Any]:
    """The next ledger entry after ``prev`` (None for the genesis entry, seq 0).

    Returns {seq, kind, at, data, prev_hash, hash}. Pure and deterministic:
    the repository inserts it under a unique index on seq and, on a
    duplicate key (another writer won the race), reloads the tail and calls
    this again. Raises ValueError for an unknown kind, data outside
    ``LEDGER_FIELDS`` or non-identifier values, or a naive timestamp.
    """
    clean = _check_data(kind, data)
    if prev is None:
        seq, prev_hash = 0, GENESIS_PREV_HASH
    else:
        if not _HEX64.match(str(prev.get("hash", ""))) or not isinstance(prev.get("seq"), int):
            raise ValueError("prev is not a ledger entry")
        seq, prev_hash = prev["seq"] + 1, prev["hash"]
    entry = {
        "seq": seq,
        "kind": kind,
        "at": format_timestamp(at),
        "data": clean,
        "prev_hash": prev_hash,
    }
    entry["hash"] = entry_hash(entry)
    return entry


def leaf_bytes(entry: Mapping[str, Any] | bytes) -> bytes:
    """The Merkle leaf input for an entry: canonical JSON of its six fields.

    Storage-only keys (e.g. Mongo's ``_id``) are ignored, so a stored document
    hashes the same as the entry ``make_entry`` returned.
    """
    if isinstance(entry, (bytes, bytearray)):
        return bytes(entry)
    return canonical_json({name: entry[name] for name in ENTRY_FIELDS})


def leaf_hash(entry: Mapping[str, Any] | bytes) -> str:
    """RFC 6962 leaf hash (hex): SHA-256(0x00 || leaf bytes)."""
    return hash_leaf(leaf_bytes(entry)).hex()


def verify_chain(
    entries: Sequence[Mapping[str, Any]], start_prev: Mapping[str, Any] | None = None
) -> int | None:
    """Seq of the first entry whose seq, prev_hash or hash is wrong, or None when the chain holds.

    ``start_prev`` is the entry just before ``entries[0]`` (None when the list
    starts at genesis), so a repository can check a page of the ledger.
    """
    expected_seq = 0 if start_prev is None else start_prev["seq"] + 1
    expected_prev = GENESIS_PREV_HASH if start_prev is None else start_prev["hash"]
    for entry in entries:
        try:
            intact = (
                entry["seq"] == expected_seq
                and entry["prev_hash"] == expected_prev
                and entry["hash"] == entry_hash(entry)
            )
        except (KeyError, TypeError, ValueError):
            intact = False
        if not intact:
            return expected_seq
        expected_seq, expected_prev = expected_seq + 1, entry["hash"]
    return None


# ---- the Merkle tree over entries (RFC 6962, see `merkle`) -------------------------


class MerkleTree(merkle.MerkleTree):
    """The RFC 6962 tree of `merkle`, which the ledger also builds from its entries."""

    @classmethod
    def from_entries(cls, entries: Iterable[Mapping[str, Any] | bytes]) -> MerkleTree:
        """Tree over ledger entries (or raw leaf inputs), hashed as RFC 6962 leaves."""
        return cls(hash_leaf(leaf_bytes(e)) for e in entries)


def merkle_root(leaves: Iterable[Mapping[str, Any] | bytes]) -> str:
    """Merkle tree head (hex) over ledger entries or raw leaf inputs; O(n), no recursion."""
    return root_of_leaf_hashes(hash_leaf(leaf_bytes(x)) for x in leaves).hex()


def inclusion_proof(
    leaves: Sequence[Mapping[str, Any] | bytes], index: int, tree_size: int | None = None
) -> list[str]:
    """Audit path (hex, leaf-side first) for leaf ``index`` in the tree of the first ``tree_size`` leaves."""
    return [h.hex() for h in MerkleTree.from_entries(leaves).inclusion_proof(index, tree_size)]


def consistency_proof(
    leaves: Sequence[Mapping[str, Any] | bytes], first: int, second: int | None = None
) -> list[str]:
    """Consistency proof (hex) between the trees of the first ``first`` and ``second`` leaves."""
    return [h.hex() for h in MerkleTree.from_entries(leaves).consistency_proof(first, second)]


# ---- signed checkpoints ---------------------------------------------------------


def checkpoint_message(tree_size: int, root_hash: str, timestamp: str) -> bytes:
    """The exact bytes a checkpoint signature covers (verify.py builds the same bytes)."""
    return f"{CHECKPOINT_CONTEXT}\n{tree_size}\n{root_hash}\n{timestamp}\n".encode("ascii")


def sign_checkpoint(
    entries_or_root: Sequence[Mapping[str, Any]] | MerkleTree | str | bytes,
    private_key: PrivateKeyLike,
    at: datetime | str,
    tree_size: int | None = None,
) -> dict[str, Any]:
    """Sign a tree head: {tree_size, root_hash (hex), timestamp, signature (base64), key_id}.

    Pass the entries (all of them are covered), a MerkleTree (its whole size,
    or ``tree_size``), or a root hash together with ``tree_size``. Raises
    ValueError when a root is given without a size or the root is not 32 bytes.
    """
    if isinstance(entries_or_root, merkle.MerkleTree):
        size = entries_or_root.size if tree_size is None else tree_size
        root = entries_or_root.root(size)
    elif isinstance(entries_or_root, (str, bytes, bytearray)):
        if tree_size is None:
            raise ValueError("a root hash needs its tree_size")
        size, root = tree_size, hash_bytes(entries_or_root)
    else:
        size = len(entries_or_root) if tree_size is None else tree_size
        root = bytes.fromhex(merkle_root(entries_or_root[:size]))
    if len(root) != 32 or size < 0:
        raise ValueError("a tree head is a non-negative size and a 32-byte root")
    signer = as_private_key(private_key)
    timestamp = format_timestamp(at)
    signature = signer.sign(checkpoint_message(size, root.hex(), timestamp))
    return {
        "tree_size": size,
        "root_hash": root.hex(),
        "timestamp": timestamp,
        "signature": base64.b64encode(signature).decode("ascii"),
        "key_id": key_id(signer),
    }


def verify_checkpoint(checkpoint: Mapping[str, Any], public_key: PublicKeyLike) -> bool:
    """True when the checkpoint's signature verifies with ``public_key`` over its size, root and timestamp.

    Only a strictly encoded 64-byte base64 signature is accepted (no
    alternative spellings). Never raises for a malformed checkpoint.
    """
    try:
        size, root, stamp = (
            checkpoint["tree_size"],
            checkpoint["root_hash"],
            checkpoint["timestamp"],
        )
        encoded = checkpoint["signature"]
        if (
            not isinstance(size, int)
            or isinstance(size, bool)
            or size < 0
            or not isinstance(root, str)
            or not _HEX64.match(root)
            or not isinstance(stamp, str)
            or not isinstance(encoded, str)
        ):
            return False
        signature = base64.b64decode(encoded, validate=True)
        if len(signature) != 64 or base64.b64encode(signature).decode("ascii") != encoded:
            return False
        as_public_key(public_key).verify(signature, checkpoint_message(size, root, stamp))
        return True
    except (KeyError, TypeError, ValueError, binascii.Error, InvalidSignature):
        return False


# ---- export ------------------------------------------------------------------------

PARTIAL_MARK = canonical_json({"type": "partial"}).decode("utf-8")


def partial_export_lines(
    head: Mapping[str, Any], proven: Iterable[tuple[Mapping[str, Any], Sequence[bytes]]]
) -> Iterator[str]:
    """The export of part of the ledger as JSON lines: PARTIAL_MARK, the signed checkpoint ``head``,
    then each entry followed by its inclusion proof (audit path, leaf-side first) in head's tree.
    ``verify.py`` checks it with the public key alone, like the whole export."""
    yield PARTIAL_MARK + "\n"
    yield (
        canonical_json({"type": "checkpoint", **{k: head[k] for k in CHECKPOINT_FIELDS}}).decode(
            "utf-8"
        )
        + "\n"
    )
    for entry, path in proven:
        yield (
            canonical_json({"type": "entry", **{k: entry[k] for k in ENTRY_FIELDS}}).decode("utf-8")
            + "\n"
        )
        yield (
            canonical_json(
                {
                    "type": "inclusion",
                    "seq": entry["seq"],
                    "tree_size": head["tree_size"],
                    "audit_path": [h.hex() for h in path],
                }
            ).decode("utf-8")
            + "\n"
        )


def export_lines(
    entries: Iterable[Mapping[str, Any]], checkpoints: Iterable[Mapping[str, Any]]
) -> Iterator[str]:
    """The auditor export as JSON lines (each ends in a newline), in canonical JSON.

    One ``{"type":"entry", ...}`` line per entry in the given (seq) order; each
    checkpoint ``{"type":"checkpoint", ...}`` right after the entry that
    completes its tree (checkpoints for more entries than given come last).
    ``verify.py`` requires lines to be canonical, so write them unchanged.
    """
    pending = sorted(checkpoints, key=lambda cp: cp["tree_size"])
    position = 0

    def flush(count: float) -> Iterator[str]:
        nonlocal position
        while position < len(pending) and pending[position]["tree_size"] <= count:
            cp = pending[position]
            position += 1
            yield (
                canonical_json(
                    {"type": "checkpoint", **{k: cp[k] for k in CHECKPOINT_FIELDS}}
                ).decode("utf-8")
                + "\n"
            )

    count = 0
    yield from flush(count)
    for entry in entries:
        yield (
            canonical_json({"type": "entry", **{k: entry[k] for k in ENTRY_FIELDS}}).decode("utf-8")
            + "\n"
        )
        count += 1
        yield from flush(count)
    yield from flush(
        float("inf")
    )  # checkpoints beyond the given entries: the verifier reports them
