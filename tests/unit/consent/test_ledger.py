"""Ledger entries, hash chain, RFC 6962 Merkle tree and proofs, signed checkpoints, export."""

from __future__ import annotations

import base64
import hashlib
import json
import random
from datetime import datetime, timedelta

import pytest

from services.consent import ledger, tokens

from .conftest import BASE_TIME, build_entries

# Certificate Transparency reference vectors (RFC 6962 test data used by the
# CT and transparency-dev implementations): leaf inputs, tree heads for sizes
# 0..8, and audit paths / consistency proofs over them.
CT_LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_INCLUSION = [  # (0-based leaf index, tree size, audit path)
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
CT_CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
MAX_N = 64


# ---- a reference written straight from the RFC 6962 §2.1 definitions ---------


def ref_mth(d: list[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = 1
    while k * 2 < len(d):
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = 1
    while k * 2 < len(d):
        k *= 2
    if m < k:
        return ref_path(m, d[:k]) + [ref_mth(d[k:])]
    return ref_path(m - k, d[k:]) + [ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    if m == len(d):
        return [] if b else [ref_mth(d)]
    k = 1
    while k * 2 < len(d):
        k *= 2
    if m <= k:
        return ref_subproof(m, d[:k], b) + [ref_mth(d[k:])]
    return ref_subproof(m - k, d[k:], False) + [ref_mth(d[:k])]


@pytest.fixture(scope="module")
def leaves() -> list[bytes]:
    rng = random.Random(6962)
    return [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 24))) for _ in range(MAX_N)]


@pytest.fixture(scope="module")
def tree(leaves) -> ledger.MerkleTree:
    return ledger.MerkleTree.from_entries(leaves)


def flip(h: bytes, bit: int = 0) -> bytes:
    return bytes([h[0] ^ (1 << bit)]) + h[1:]


# ---- canonical JSON and entries -------------------------------------------------


def test_canonical_json_is_sorted_compact_utf8():
    assert (
        ledger.canonical_json({"b": 1, "a": {"d": [1, 2], "c": "é"}})
        == '{"a":{"c":"é","d":[1,2]},"b":1}'.encode()
    )
    with pytest.raises(ValueError):
        ledger.canonical_json({"x": float("nan")})


def test_genesis_and_chain():
    first = ledger.make_entry(
        None,
        "consent_text.published",
        {"consultation_id": "c-1", "text_version": 1, "language": "en", "text_sha256": "a" * 64},
        BASE_TIME,
    )
    assert first["seq"] == 0 and first["prev_hash"] == "0" * 64
    assert first["at"] == "2025-03-01T09:00:00.000000Z"
    body = {k: first[k] for k in ("seq", "kind", "at", "data", "prev_hash")}
    assert (
        first["hash"]
        == hashlib.sha256(
            json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()
    )
    second = ledger.make_entry(
        first,
        "response.erased",
        {
            "response_id": "r-1",
            "consultation_id": "c-1",
            "pseudonym": "p-1",
            "reason": "withdrawal",
            "erased_at": "2025-03-01T10:00:00Z",
        },
        "2025-03-01T11:00:00+01:00",
    )
    assert second["seq"] == 1 and second["prev_hash"] == first["hash"]
    assert second["at"] == "2025-03-01T10:00:00.000000Z"  # normalised to UTC
    # pure: the same inputs give the same entry (a retried insert recomputes it identically)
    assert ledger.make_entry(first, second["kind"], second["data"], second["at"]) == second


def test_storage_keys_do_not_change_hashes():
    entry = build_entries(1)[0]
    stored = {**entry, "_id": "65f0c0ffee", "inserted_at": "whenever"}
    assert ledger.entry_hash(stored) == entry["hash"]
    assert ledger.leaf_hash(stored) == ledger.leaf_hash(entry)


@pytest.mark.parametrize(
    "kind, data, at",
    [
        ("consent.bogus", {}, BASE_TIME),
        (
            "response.erased",
            {"response_id": "r", "consultation_id": "c", "pseudonym": "p", "reason": "withdrawal"},
            BASE_TIME,
        ),  # erased_at missing
        (
            "response.erased",
            {
                "response_id": "r",
                "consultation_id": "c",
                "pseudonym": "p",
                "reason": "withdrawal",
                "erased_at": "x",
                "name": "Alice",
            },
            BASE_TIME,
        ),  # personal data
        (
            "consent_text.published",
            {
                "consultation_id": "c",
                "text_version": 1,
                "language": "en",
                "text_sha256": "I agree that my answers ..." * 20,
            },
            BASE_TIME,
        ),  # free text
        (
            "consent_text.published",
            {
                "consultation_id": "c",
                "text_version": 1.5,
                "language": "en",
                "text_sha256": "a" * 64,
            },
            BASE_TIME,
        ),  # float
        (
            "consent_text.published",
            {
                "consultation_id": "c\nline",
                "text_version": 1,
                "language": "en",
                "text_sha256": "a" * 64,
            },
            BASE_TIME,
        ),  # multi-line
        (
            "consent_text.published",
            {
                "consultation_id": {"nested": 1},
                "text_version": 1,
                "language": "en",
                "text_sha256": "a" * 64,
            },
            BASE_TIME,
        ),
        (
            "consent_text.published",
            {"consultation_id": "c", "text_version": 1, "language": "en", "text_sha256": "a" * 64},
            datetime(2025, 1, 1),  # noqa: DTZ001 the naive time is what this case refuses
        ),  # naive time
        (
            "consent_text.published",
            {"consultation_id": "c", "text_version": 1, "language": "en", "text_sha256": "a" * 64},
            "yesterday",
        ),
    ],
)
def test_make_entry_refuses_what_must_never_be_in_a_permanent_ledger(kind, data, at):
    with pytest.raises(ValueError):
        ledger.make_entry(None, kind, data, at)


def test_verify_chain_names_the_first_broken_entry():
    entries = build_entries(40)
    assert ledger.verify_chain(entries) is None
    assert ledger.verify_chain(entries[10:], start_prev=entries[9]) is None
    tampered = [dict(e) for e in entries]
    tampered[17] = {**tampered[17], "data": {**tampered[17]["data"], "consultation_id": "c-other"}}
    assert ledger.verify_chain(tampered) == 17
    assert ledger.verify_chain(entries[:5] + entries[6:]) == 5
    assert ledger.verify_chain(entries[1:]) == 0
    assert ledger.verify_chain([{"seq": 0}]) == 0


# ---- RFC 6962 reference vectors ---------------------------------------------------


def test_tree_heads_match_the_rfc6962_reference_vectors():
    tree = ledger.MerkleTree.from_entries(CT_LEAVES)
    for size, expected in enumerate(CT_ROOTS):
        assert ledger.merkle_root(CT_LEAVES[:size]) == expected
        assert tree.root(size).hex() == expected


@pytest.mark.parametrize("index, size, path", CT_INCLUSION)
def test_audit_paths_match_the_reference_vectors(index, size, path):
    assert ledger.inclusion_proof(CT_LEAVES, index, size) == path
    assert ledger.verify_inclusion(
        ledger.leaf_hash(CT_LEAVES[index]), index, size, path, CT_ROOTS[size]
    )


@pytest.mark.parametrize("first, second, proof", CT_CONSISTENCY)
def test_consistency_proofs_match_the_reference_vectors(first, second, proof):
    assert ledger.consistency_proof(CT_LEAVES, first, second) == proof
    assert ledger.verify_consistency(first, second, CT_ROOTS[first], CT_ROOTS[second], proof)


# ---- every tree shape up to 64 leaves ---------------------------------------------


def test_roots_match_the_rfc_definition_for_every_size(leaves, tree):
    for n in range(MAX_N + 1):
        expected = ref_mth(leaves[:n])
        assert tree.root(n) == expected
        assert ledger.merkle_root(leaves[:n]) == expected.hex()
        assert ledger.MerkleTree.from_entries(leaves[:n]).root() == expected


def test_inclusion_proofs_verify_for_every_leaf_and_size_and_tampering_fails(leaves, tree):
    leaf_hashes = [bytes.fromhex(ledger.leaf_hash(x)) for x in leaves]
    checked = 0
    for n in range(1, MAX_N + 1):
        root = tree.root(n)
        for m in range(n):
            proof = tree.inclusion_proof(m, n)
            assert proof == ref_path(m, leaves[:n])
            assert ledger.verify_inclusion(leaf_hashes[m], m, n, proof, root)
            # tampering: wrong leaf, wrong index, wrong size, wrong root, altered/short/long path
            assert not ledger.verify_inclusion(flip(leaf_hashes[m]), m, n, proof, root)
            assert not ledger.verify_inclusion(leaf_hashes[m], m, n, proof, flip(root, 7))
            if n > 1:
                assert not ledger.verify_inclusion(leaf_hashes[m], (m + 1) % n, n, proof, root)
                assert not ledger.verify_inclusion(leaf_hashes[m], m, n, proof[:-1], root)
            # (a different tree_size with the same root can legitimately verify, e.g. leaf 0 in
            # sizes 3 and 4: the signed checkpoint, not the path, binds the size to the root)
            assert (
                not ledger.verify_inclusion(
                    leaf_hashes[m], m, n + 1, proof, tree.root(min(n + 1, MAX_N))
                )
                or n == MAX_N
            )
            assert not ledger.verify_inclusion(leaf_hashes[m], m, n, proof + [root], root)
            for i in range(len(proof)):
                bad = proof[:i] + [flip(proof[i], i % 8)] + proof[i + 1 :]
                assert not ledger.verify_inclusion(leaf_hashes[m], m, n, bad, root)
            checked += 1
    assert checked == MAX_N * (MAX_N + 1) // 2
    assert not ledger.verify_inclusion(leaf_hashes[0], 0, 0, [], ledger.EMPTY_ROOT)
    assert not ledger.verify_inclusion("not hex", 0, 1, [], tree.root(1))


def test_consistency_proofs_verify_for_every_pair_and_tampering_fails(leaves, tree):
    roots = [tree.root(n) for n in range(MAX_N + 1)]
    for n in range(MAX_N + 1):
        for m in range(n + 1):
            proof = tree.consistency_proof(m, n)
            if 0 < m < n:
                assert proof == ref_subproof(m, leaves[:n], True)
            else:
                assert proof == []
            assert ledger.verify_consistency(m, n, roots[m], roots[n], proof)
            if m > 0:  # every tree extends the empty one, whatever its root
                assert not ledger.verify_consistency(m, n, roots[m], flip(roots[n]), proof)
            assert not ledger.verify_consistency(m, n, flip(roots[m], 3), roots[n], proof)
            for i in range(len(proof)):
                bad = proof[:i] + [flip(proof[i], i % 8)] + proof[i + 1 :]
                assert not ledger.verify_consistency(m, n, roots[m], roots[n], bad)
            if proof:
                assert not ledger.verify_consistency(m, n, roots[m], roots[n], proof[:-1])
                assert not ledger.verify_consistency(m, n, roots[m], roots[n], proof + [roots[m]])
            if 0 < m < n - 1:  # the proof for one size pair does not prove another
                assert not ledger.verify_consistency(
                    m, n - 1, roots[m], roots[n - 1], proof
                ) or proof == tree.consistency_proof(m, n - 1)
    assert not ledger.verify_consistency(5, 3, roots[5], roots[3], [])


def test_a_rewritten_history_has_no_consistency_proof(leaves):
    honest = ledger.MerkleTree.from_entries(leaves)
    rewritten = ledger.MerkleTree.from_entries(leaves[:10] + [b"rewritten"] + leaves[11:])
    old_root = honest.root(20)
    proof = rewritten.consistency_proof(20, MAX_N)
    assert not ledger.verify_consistency(20, MAX_N, old_root, rewritten.root(), proof)
    assert ledger.verify_consistency(
        20, MAX_N, old_root, honest.root(), honest.consistency_proof(20)
    )


def test_proof_functions_reject_impossible_sizes(tree):
    with pytest.raises(ValueError):
        tree.inclusion_proof(MAX_N)
    with pytest.raises(ValueError):
        tree.root(MAX_N + 1)
    with pytest.raises(ValueError):
        tree.consistency_proof(10, 5)


def test_large_tree_answers_prefix_roots_and_proofs_like_the_streaming_root():
    rng = random.Random(99)
    data = [rng.randbytes(8) for _ in range(5000)]
    tree = ledger.MerkleTree.from_entries(data)
    for size in [1, 2, 3, 1023, 1024, 1025, 4095, 4999, 5000] + rng.sample(range(1, 5001), 10):
        root = tree.root(size)
        assert root.hex() == ledger.merkle_root(data[:size])
        for index in {0, size - 1, rng.randrange(size)}:
            proof = tree.inclusion_proof(index, size)
            assert ledger.verify_inclusion(ledger.leaf_hash(data[index]), index, size, proof, root)
        first = rng.randrange(1, size + 1)
        assert ledger.verify_consistency(
            first, size, tree.root(first), root, tree.consistency_proof(first, size)
        )


# ---- checkpoints ---------------------------------------------------------------------


def test_signed_checkpoint_verifies_and_any_field_change_breaks_it(signing_key, other_key):
    entries = build_entries(12)
    cp = ledger.sign_checkpoint(entries, signing_key, BASE_TIME + timedelta(hours=1))
    assert cp["tree_size"] == 12 and cp["root_hash"] == ledger.merkle_root(entries)
    assert cp["key_id"] == tokens.key_id(signing_key) and cp["timestamp"].endswith("Z")
    assert len(base64.b64decode(cp["signature"])) == 64
    assert ledger.verify_checkpoint(cp, signing_key.public_key())
    assert ledger.verify_checkpoint(cp, tokens.public_key_to_pem(signing_key))
    assert not ledger.verify_checkpoint(cp, other_key.public_key())

    assert not ledger.verify_checkpoint({**cp, "tree_size": 11}, signing_key.public_key())
    assert not ledger.verify_checkpoint(
        {**cp, "root_hash": ledger.merkle_root(entries[:11])}, signing_key.public_key()
    )
    assert not ledger.verify_checkpoint(
        {**cp, "timestamp": "2025-03-01T10:00:00.000001Z"}, signing_key.public_key()
    )
    sig = cp["signature"]
    for i in range(len(sig) - 2):  # every base64 symbol of the signature (the last two are padding)
        replacement = "A" if sig[i] != "A" else "B"
        assert not ledger.verify_checkpoint(
            {**cp, "signature": sig[:i] + replacement + sig[i + 1 :]}, signing_key.public_key()
        )
    assert not ledger.verify_checkpoint(
        {k: v for k, v in cp.items() if k != "signature"}, signing_key.public_key()
    )
    assert not ledger.verify_checkpoint({**cp, "tree_size": True}, signing_key.public_key())


def test_checkpoint_from_tree_or_root_matches_checkpoint_from_entries(signing_key):
    entries = build_entries(30)
    tree = ledger.MerkleTree.from_entries(entries)
    at = BASE_TIME + timedelta(days=1)
    from_entries = ledger.sign_checkpoint(entries[:20], signing_key, at)
    from_tree = ledger.sign_checkpoint(tree, signing_key, at, tree_size=20)
    from_root = ledger.sign_checkpoint(tree.root(20).hex(), signing_key, at, tree_size=20)
    assert from_entries == from_tree == from_root  # Ed25519 signatures are deterministic
    with pytest.raises(ValueError):
        ledger.sign_checkpoint(tree.root(20).hex(), signing_key, at)


# ---- export ----------------------------------------------------------------------------


def test_export_places_each_checkpoint_after_the_entry_that_completes_it(signing_key):
    entries = build_entries(10)
    cps = [
        ledger.sign_checkpoint(entries[:size], signing_key, BASE_TIME + timedelta(hours=size))
        for size in (10, 0, 4)
    ]
    lines = list(ledger.export_lines(entries, cps))
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)
    objs = [json.loads(line) for line in lines]
    assert [o["type"] for o in objs] == ["checkpoint"] + ["entry"] * 4 + ["checkpoint"] + [
        "entry"
    ] * 6 + ["checkpoint"]
    assert [o["tree_size"] for o in objs if o["type"] == "checkpoint"] == [0, 4, 10]
    for line, obj in zip(lines, objs, strict=True):
        assert line[:-1] == ledger.canonical_json(obj).decode()
    assert [
        {k: v for k, v in o.items() if k != "type"} for o in objs if o["type"] == "entry"
    ] == entries
