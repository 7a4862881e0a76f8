"""The erasure report from ledger entries alone: withdrawal.processed confirms a full withdrawal."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.consent import erasures, ledger, tokens, verify

from .conftest import BASE_TIME


class Ledger:
    """Entries built exactly as the service builds them (hash chain and per-kind field rules)."""

    def __init__(self) -> None:
        self.entries: list[dict] = []

    def add(self, kind: str, data: dict) -> int:
        at = BASE_TIME + timedelta(seconds=len(self.entries))
        prev = self.entries[-1] if self.entries else None
        self.entries.append(ledger.make_entry(prev, kind, data, at))
        return self.entries[-1]["seq"]

    def withdrawn(self, pseudonym: str, cid: str = "c_1", everything: bool = True) -> int:
        return self.add(
            "consent.withdrawn",
            {
                "grant_id": f"g_{pseudonym}",
                "pseudonym": pseudonym,
                "consultation_id": cid,
                "purposes": ["participate"] if everything else ["quote_anonymised"],
                "remaining": [] if everything else ["participate"],
                "all": everything,
                "withdrawn_at": "2025-03-01T09:00:00Z",
            },
        )

    def processed(
        self, pseudonym: str, erased: int, cid: str = "c_1", shredded: bool = True
    ) -> int:
        return self.add(
            "withdrawal.processed",
            {
                "consultation_id": cid,
                "pseudonym": pseudonym,
                "responses_erased": erased,
                "key_shredded": shredded,
                "processed_at": "2025-03-01T09:00:01Z",
            },
        )

    def erased(
        self, pseudonym: str, response_id: str, cid: str = "c_1", reason: str = "withdrawal"
    ) -> int:
        return self.add(
            "response.erased",
            {
                "response_id": response_id,
                "consultation_id": cid,
                "pseudonym": pseudonym,
                "reason": reason,
                "erased_at": "2025-03-01T09:00:01Z",
            },
        )

    def report(self, consultation_id: str | None = None) -> dict:
        return erasures.erasure_report(self.entries, consultation_id)


def by_pseudonym(report: dict) -> dict[str, dict]:
    return {w["pseudonym"]: w for w in report["withdrawals"]}


def test_a_withdrawal_with_nothing_stored_is_confirmed_by_withdrawal_processed():
    book = Ledger()
    book.withdrawn("p_1")
    assert by_pseudonym(book.report())["p_1"]["confirmed"] is False
    seq = book.processed("p_1", 0)
    report = book.report()
    [item] = report["withdrawals"]
    assert (report["confirmed"], report["unconfirmed"]) == (1, 0)
    assert (
        item["confirmed"],
        item["responses_erased"],
        item["key_shredded"],
        item["erasures"],
    ) == (True, 0, True, [])
    assert item["processing"] == [
        {
            "seq": seq,
            "responses_erased": 0,
            "key_shredded": True,
            "processed_at": "2025-03-01T09:00:01Z",
            "after_withdrawal": True,
        }
    ]


def test_the_report_states_how_many_responses_were_erased():
    book = Ledger()
    book.withdrawn("p_1")
    book.erased("p_1", "r_1")
    book.processed("p_1", 1)
    [item] = book.report()["withdrawals"]
    assert (
        item["confirmed"],
        item["responses_erased"],
        [e["response_id"] for e in item["erasures"]],
    ) == (True, 1, ["r_1"])


def test_a_confirmation_recorded_before_the_withdrawal_still_confirms_it():
    """The ledger reads the consent and responses topics independently."""
    book = Ledger()
    book.processed("p_1", 1)
    book.withdrawn("p_1")
    [item] = book.report()["withdrawals"]
    assert item["confirmed"] is True and [p["after_withdrawal"] for p in item["processing"]] == [
        False
    ]


def test_the_latest_confirmation_gives_the_count():
    """A response that arrived after the withdrawal was handled is erased and confirmed again."""
    book = Ledger()
    book.withdrawn("p_1")
    book.processed("p_1", 0)
    book.erased("p_1", "r_late")
    book.processed("p_1", 1)
    [item] = book.report()["withdrawals"]
    assert item["responses_erased"] == 1 and [
        p["responses_erased"] for p in item["processing"]
    ] == [0, 1]


def test_only_the_same_participant_in_the_same_consultation_confirms():
    book = Ledger()
    book.withdrawn("p_1", cid="c_1")
    book.processed("p_2", 0, cid="c_1")
    book.processed("p_1", 0, cid="c_2")
    book.withdrawn("p_3", everything=False)  # a partial withdrawal is not in the report
    book.processed("p_3", 0)
    report = book.report()
    assert [
        (w["pseudonym"], w["confirmed"], w["responses_erased"], w["key_shredded"])
        for w in report["withdrawals"]
    ] == [("p_1", False, 0, None)]
    assert book.report("c_2")["withdrawals"] == []


def test_ledgers_without_withdrawal_processed_are_confirmed_by_erasures():
    book = Ledger()
    book.erased("p_1", "r_0", reason="retention")  # earlier and for retention: confirms nothing
    book.withdrawn("p_1")
    assert by_pseudonym(book.report())["p_1"]["confirmed"] is False
    book.erased("p_1", "r_1")
    [item] = book.report()["withdrawals"]
    assert (
        item["confirmed"],
        item["responses_erased"],
        item["key_shredded"],
        item["processing"],
    ) == (True, 1, None, [])


def test_the_entry_holds_identifiers_and_counts_only():
    data = {
        "consultation_id": "c_1",
        "pseudonym": "p_1",
        "responses_erased": 0,
        "key_shredded": True,
        "processed_at": "2025-03-01T09:00:01Z",
    }
    with pytest.raises(ValueError, match="may not carry"):
        ledger.make_entry(None, "withdrawal.processed", {**data, "text": "my words"}, BASE_TIME)
    with pytest.raises(ValueError, match="lacks"):
        ledger.make_entry(
            None,
            "withdrawal.processed",
            {k: v for k, v in data.items() if k != "key_shredded"},
            BASE_TIME,
        )


def test_the_independent_verifier_accepts_the_new_kind():
    key = tokens.generate_signing_key()
    book = Ledger()
    book.withdrawn("p_1")
    book.processed("p_1", 0)
    checkpoint = ledger.sign_checkpoint(book.entries, key, BASE_TIME + timedelta(hours=1))
    lines = list(ledger.export_lines(book.entries, [checkpoint]))
    report = verify.verify_export(lines, verify.load_public_keys(tokens.public_key_to_pem(key)))
    assert report.ok, report.message()
