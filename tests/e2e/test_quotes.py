"""Quotes through the real processes: a consented answer, an organiser's excerpt, the policy user's insights,
and the participant's withdrawal taking the quote away again."""

from __future__ import annotations

from tests.e2e.conftest import eventually, open_consultation, participate
from tests.e2e.test_aggregation_withdrawal import progress

STORY_SURVEY = {
    "languages": ["en"],
    "sections": [
        {
            "id": "s1",
            "title": {"en": "Support"},
            "questions": [
                {
                    "id": "got_help",
                    "type": "single_choice",
                    "label": {"en": "Did you get help when you needed it?"},
                    "options": [
                        {"code": "yes", "label": {"en": "Yes"}},
                        {"code": "no", "label": {"en": "No"}},
                    ],
                },
                {
                    "id": "what_helped",
                    "type": "free_text",
                    "label": {"en": "What would have helped?"},
                },
            ],
        }
    ],
}
PURPOSES = ("participate", "aggregate_reporting", "quote_anonymised")
STORY = "At the clinic on Harbour Street, a nurse who spoke my language explained everything twice."
EXCERPT = "a nurse who spoke my language explained everything twice."


def insight_quotes(api, token, cid) -> list[str]:
    return [
        q["text"]
        for q in api.call("GET", f"/api/v1/insights/consultations/{cid}/quotes", token)["quotes"]
    ]


def test_an_approved_excerpt_reaches_policy_users_and_leaves_with_the_consent(
    api, organiser, policy
):
    token = organiser["token"]
    cid, code = open_consultation(api, token, survey=STORY_SURVEY, purposes=PURPOSES)
    quoting = participate(api, code, {"got_help": "no", "what_helped": STORY}, purposes=PURPOSES)
    participate(
        api, code, {"got_help": "yes", "what_helped": "My cousin in Leeds."}
    )  # no quote consent

    page = api.call("GET", f"/api/v1/consultations/{cid}/quotable-answers", token)
    assert page["total"] == 1
    [item] = page["items"]
    assert item["response_id"] == quoting["response"]["response_id"]
    assert item["answers"] == [{"question_id": "what_helped", "text": STORY}]

    body = {"response_id": item["response_id"], "question_id": "what_helped"}
    rewritten = api.call(
        "POST",
        f"/api/v1/consultations/{cid}/quotes",
        token,
        expect=422,
        json={**body, "excerpt": "A nurse spoke my language."},
    )
    assert "contiguous" in rewritten["detail"]
    approval = {**body, "excerpt": EXCERPT}
    quote = api.call(
        "POST", f"/api/v1/consultations/{cid}/quotes", token, expect=201, json=approval
    )
    again = api.call(
        "POST", f"/api/v1/consultations/{cid}/quotes", token, expect=200, json=approval
    )
    assert again["quote_id"] == quote["quote_id"]

    # Aggregation learns of the consultation and the answers from events: release once both are counted.
    assert eventually(lambda: progress(api, token, cid) == 2, timeout=60)
    before = api.call(
        "GET", f"/api/v1/insights/consultations/{cid}/quotes", policy, expect=409
    )  # nothing before release, and why
    assert before["detail"].startswith("not released yet")
    api.call("POST", "/api/v1/releases", token, expect=201, json={"consultation_id": cid})
    assert eventually(lambda: insight_quotes(api, policy, cid) == [EXCERPT], timeout=60)
    assert "Harbour Street" not in str(
        api.call("GET", f"/api/v1/insights/consultations/{cid}/quotes", policy)
    )

    withdrawn = api.call(
        "POST",
        "/api/v1/consent/withdrawals",
        json={"receipt_code": quoting["grant"]["receipt_code"], "purposes": ["quote_anonymised"]},
    )
    assert withdrawn["all"] is False
    assert eventually(lambda: insight_quotes(api, policy, cid) == [], timeout=60)
    # Aggregation drops it on the withdrawal itself; the surveys service revokes it on its own time.

    def revoked():
        listed = api.call("GET", f"/api/v1/consultations/{cid}/quotes", token)
        return [(q["quote_id"], q["revoked"], q["text"]) for q in listed] == [
            (quote["quote_id"], True, None)
        ]

    assert eventually(revoked, timeout=60)
    assert api.call("GET", f"/api/v1/consultations/{cid}/quotable-answers", token)["total"] == 0
    # The next release shows nothing of it either.
    api.call("POST", "/api/v1/releases", token, expect=201, json={"consultation_id": cid})
    assert insight_quotes(api, policy, cid) == []
