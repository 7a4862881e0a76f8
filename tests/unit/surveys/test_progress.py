"""Progress of a consultation in counts only: over time, per section, and its API route."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.surveys import tallies
from services.surveys.models import Consultation, ProgressTally, Response
from services.surveys.progress import (
    MAX_BUCKETS,
    SectionCounter,
    StoredResponse,
    choose_unit,
    negated,
    nested,
    report,
    response_tally,
    responses_over_time,
    tally_of,
)
from tests.unit.surveys.conftest import FULL_ANSWERS, SURVEY

NOW = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)


def stored(answers: dict, declined=(), at: datetime = NOW, free_text=()) -> StoredResponse:
    return StoredResponse(
        submitted_at=at,
        answers=answers,
        free_text_questions=frozenset(free_text),
        declined=frozenset(declined),
    )


def by_section(responses) -> dict[str, dict]:
    tally = tally_of({1: SURVEY}, [(1, r) for r in responses])
    return {row["section_id"]: row for row in report(SURVEY, tally, NOW).sections}


def test_a_section_skip_logic_hides_is_not_shown_and_not_counted_as_drop_off():
    feels_safe = stored({"safe": "yes", "needs": ["food"], "support": 4, "age": 30})
    rows = by_section([feels_safe])
    about = rows["about"]
    assert (about["shown"], about["answered"], about["completed"]) == (1, 1, 0)
    assert rows["story_section"]["shown"] == 0
    assert about["stopped_here"] == 0  # nothing after it was shown


def test_completion_counts_declines_and_sealed_free_text_as_given():
    structured = {k: v for k, v in FULL_ANSWERS.items() if k not in ("story", "health_detail")}
    complete = stored({**structured, "support": 4}, declined=["health_detail"], free_text=["story"])
    rows = by_section([complete])
    assert rows["about"]["completed"] == 1
    assert rows["story_section"]["shown"] == 1
    assert rows["story_section"]["answered"] == 1
    assert rows["story_section"]["completed"] == 1


def test_a_response_that_answers_nothing_after_a_section_stopped_there():
    rows = by_section([stored({"safe": "no", "needs": ["health"]})])
    assert rows["about"]["stopped_here"] == 1
    assert rows["story_section"]["shown"] == 1 and rows["story_section"]["answered"] == 0
    assert rows["story_section"]["stopped_here"] == 0


def many_responses() -> list[StoredResponse]:
    responses = []
    for i in range(60):
        safe = "no" if i % 3 == 0 else "yes"
        answers = {"safe": safe, "needs": ["health"] if i % 2 else ["food"]}
        free = ["story"] if safe == "no" and i % 4 == 0 else []
        at = NOW - timedelta(hours=i * 7)
        responses.append(
            stored(answers, declined=["age"] if i % 5 == 0 else [], free_text=free, at=at)
        )
    return responses


def test_section_counts_agree_with_a_count_by_hand_over_many_responses():
    rows = by_section(many_responses())
    assert rows["about"]["shown"] == 60 and rows["about"]["answered"] == 60
    assert rows["story_section"]["shown"] == sum(1 for i in range(60) if i % 3 == 0)
    assert rows["story_section"]["answered"] == sum(
        1 for i in range(60) if i % 3 == 0 and i % 4 == 0
    )
    # "about" is never completed: support, age (unless declined) and left_on stay blank.
    assert rows["about"]["completed"] == 0
    assert rows["about"]["stopped_here"] == sum(1 for i in range(60) if i % 3 == 0 and i % 4 != 0)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.booleans(), min_size=60, max_size=60))
def test_a_running_tally_with_erasures_equals_the_tally_counted_from_scratch(erased):
    # What intake adds and erasure takes away, in any mix, leaves what a recount finds.
    counter = SectionCounter(SURVEY)
    running: dict[str, int] = {}
    for response, gone in zip(many_responses(), erased, strict=True):
        added = response_tally(counter, response)
        for changes in [added, negated(added)] if gone else [added]:
            for path, amount in changes.items():
                running[path] = running.get(path, 0) + amount
    kept = [(1, r) for r, gone in zip(many_responses(), erased, strict=True) if not gone]
    recounted = tally_of({1: SURVEY}, kept)
    assert report(SURVEY, nested(running), NOW) == report(SURVEY, recounted, NOW)
    assert nested(running).get("submitted", 0) == len(kept)


def test_over_time_is_hourly_for_a_young_consultation_with_empty_hours_kept():
    times = [
        NOW - timedelta(hours=3, minutes=5),
        NOW - timedelta(hours=3),
        NOW - timedelta(hours=1),
    ]
    unit, points = responses_over_time([(t, 1) for t in times], NOW)
    assert unit == "hour"
    assert [p["submitted"] for p in points] == [2, 0, 1, 0]
    assert [p["total"] for p in points] == [2, 2, 3, 3]
    assert points[0]["start"] == datetime(2026, 3, 10, 12, tzinfo=UTC)


def test_nothing_sent_gives_no_points():
    assert responses_over_time([], NOW) == ("hour", [])
    assert report(None, {}, NOW).sections == []


def test_the_unit_widens_so_the_series_stays_short():
    assert choose_unit(NOW - timedelta(days=5), NOW)[0] == "hour"
    assert choose_unit(NOW - timedelta(days=10), NOW)[0] == "day"
    assert choose_unit(NOW - timedelta(days=400), NOW)[0] == "week"
    _, points = responses_over_time([(NOW - timedelta(days=400), 1)], NOW)
    assert len(points) <= MAX_BUCKETS


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.integers(min_value=0, max_value=60 * 24 * 300), min_size=1, max_size=80
    )  # minutes before NOW
)
def test_over_time_from_the_hourly_tally_matches_pandas_resampling(minutes_before):
    times = [NOW - timedelta(minutes=m) for m in minutes_before]
    tally = tally_of({1: SURVEY}, [(1, stored({}, at=t)) for t in times])
    result = report(SURVEY, tally, NOW)
    frequency = {"hour": "h", "day": "D", "week": "W-MON"}[result.unit]
    series = pd.Series(1, index=pd.DatetimeIndex(times)).sort_index()
    if result.unit == "week":
        expected = series.resample(frequency, label="left", closed="left").sum()
    else:
        expected = series.resample(frequency).sum()
    got = {p["start"]: p["submitted"] for p in result.over_time if p["submitted"]}
    assert got == {ts.to_pydatetime(): int(n) for ts, n in expected.items() if n}
    assert result.over_time[-1]["total"] == len(times)


# ---- the API route ------------------------------------------------------------------------


def test_progress_route_counts_responses_and_sections_never_answers(surveys):
    cid = surveys.open_consultation()
    pseudonyms = []
    for answers in (
        {"safe": "no", "needs": ["food"], "story": "It was hard."},
        {"safe": "yes", "needs": ["food"]},
        {"safe": "yes"},
    ):
        pseudonyms.append(surveys.participant(cid))
        surveys.submit(surveys.token(pseudonyms[-1], cid), answers)
    surveys.participant(cid)  # opened, never sent
    surveys.withdraw(pseudonyms[2], cid)  # erased
    body = surveys.organiser("GET", f"/api/v1/consultations/{cid}/progress", 200)
    assert (body["opened"], body["submitted"], body["erased"]) == (4, 2, 1)
    # The latest response stored, even if it was erased since (it is the last activity).
    with surveys.app.app_context():
        kept = [r.submitted_at.replace(tzinfo=UTC) for r in Response.objects(consultation_id=cid)]
    assert datetime.fromisoformat(body["last_submitted_at"]) >= max(kept)
    assert body["unit"] == "hour" and body["over_time"][-1]["total"] == 2
    sections = {s["section_id"]: s for s in body["sections"]}
    assert sections["about"]["shown"] == 2 and sections["story_section"]["shown"] == 1
    assert sections["story_section"]["title"]["en"] == "Your story"
    assert "It was hard." not in str(body) and "food" not in str(body)
    # The running tally is what counting every stored response again finds.
    with surveys.app.app_context():
        consultation = Consultation.objects(consultation_id=cid).first()
        stored = ProgressTally._get_collection().find_one({"_id": cid})
        recounted = tallies.recount(consultation)
    assert {k: stored[k] for k in recounted} == recounted


def test_a_consultation_without_a_tally_is_counted_from_its_responses(surveys):
    cid = surveys.open_consultation()
    for answers in ({"safe": "no"}, {"safe": "yes", "needs": ["food"]}):
        surveys.submit(surveys.token(surveys.participant(cid), cid), answers)
    before = surveys.organiser("GET", f"/api/v1/consultations/{cid}/progress", 200)
    with surveys.app.app_context():
        ProgressTally.objects(consultation_id=cid).delete()  # as stored before tallies existed
    after = surveys.organiser("GET", f"/api/v1/consultations/{cid}/progress", 200)
    assert {**after, "as_of": None} == {**before, "as_of": None}
    assert after["last_submitted_at"] is not None


def test_progress_of_another_organisation_looks_missing(surveys, unchanged):
    cid = surveys.open_consultation()
    with unchanged():
        other = surveys.organiser(
            "GET", f"/api/v1/consultations/{cid}/progress", 404, organisation_id="org_b"
        )
    missing = surveys.organiser("GET", "/api/v1/consultations/c_missing/progress", 404)
    assert other["detail"] == missing["detail"]


def test_progress_of_a_draft_has_no_sections(surveys):
    cid = surveys.create()["consultation_id"]
    body = surveys.organiser("GET", f"/api/v1/consultations/{cid}/progress", 200)
    assert body["sections"] == [] and body["over_time"] == [] and body["survey_version"] is None


# ---- invitations in bulk ------------------------------------------------------------------


def test_a_batch_of_single_use_codes_each_with_its_own_code(surveys):
    cid = surveys.open_consultation()
    body = surveys.organiser(
        "POST",
        f"/api/v1/consultations/{cid}/invitations/batch",
        201,
        json={"kind": "single", "count": 25, "label": "Tuesday group"},
    )
    codes = [i["code"] for i in body["invitations"]]
    assert len(set(codes)) == 25
    listed = surveys.organiser("GET", f"/api/v1/consultations/{cid}/invitations", 200)
    assert len(listed) == 25 and all(i["label"] == "Tuesday group" for i in listed)
    assert all("code" not in i for i in listed)
    opened = surveys.call("POST", f"/api/v1/invitations/{codes[3]}/open", 201)
    assert opened["consultation_id"] == cid


@pytest.mark.parametrize("count", [0, 501, "many"])
def test_a_batch_out_of_bounds_is_refused_and_stores_nothing(surveys, unchanged, count):
    cid = surveys.open_consultation()
    with unchanged():
        body = surveys.organiser(
            "POST",
            f"/api/v1/consultations/{cid}/invitations/batch",
            422,
            json={"kind": "single", "count": count},
        )
    assert "count" in str(body)


def test_a_batch_for_a_closed_consultation_is_refused(surveys, unchanged):
    cid = surveys.open_consultation()
    surveys.organiser("POST", f"/api/v1/consultations/{cid}/status", 200, json={"status": "closed"})
    with unchanged():
        body = surveys.organiser(
            "POST",
            f"/api/v1/consultations/{cid}/invitations/batch",
            409,
            json={"kind": "link", "count": 2},
        )
    assert "closed" in body["detail"]


# ---- a crash between storing a response and counting it -----------------------------------


class ProcessDied(Exception):
    """Stands for the worker dying at that point: nothing after it runs."""


def _progress(surveys, cid: str) -> tuple[int, int]:
    body = surveys.organiser("GET", f"/api/v1/consultations/{cid}/progress", 200)
    return body["submitted"], body["erased"]


def _without_zeros(counts):
    """Counts as a reader sees them: a figure taken back to 0 is the same as one never added."""
    if not isinstance(counts, dict):
        return counts
    kept = {key: _without_zeros(value) for key, value in counts.items()}
    return {key: value for key, value in kept.items() if value not in (0, {})}


def _tally_matches_a_recount(surveys, cid: str) -> None:
    with surveys.app.app_context():
        consultation = Consultation.objects(consultation_id=cid).first()
        stored = ProgressTally._get_collection().find_one({"_id": cid})
        recounted = tallies.recount(consultation)
    assert _without_zeros({k: stored.get(k, 0) for k in recounted}) == _without_zeros(recounted)
    assert not stored.get("pending") and not stored.get("erasing")


def _dies(monkeypatch, target, name: str) -> None:
    def died(*args, **kwargs):
        raise ProcessDied(name)

    monkeypatch.setattr(target, name, died)


def test_a_response_stored_by_a_request_that_died_before_counting_it_is_counted_once(
    surveys, monkeypatch
):
    cid = surveys.open_consultation()
    surveys.submit(surveys.token(surveys.participant(cid), cid), {"safe": "yes"})
    with monkeypatch.context() as dying:
        _dies(dying, tallies, "count_response")
        surveys.submit(
            surveys.token(surveys.participant(cid), cid), {"safe": "no"}, expect=500
        )  # the worker died there
    with surveys.app.app_context():
        assert Response.objects(consultation_id=cid).count() == 2
    # Its request might still be running: not counted yet, and not guessed at.
    assert _progress(surveys, cid) == (1, 0)
    monkeypatch.setattr(tallies, "PENDING_GRACE_S", 0.0)
    assert _progress(surveys, cid) == (2, 0)
    assert _progress(surveys, cid) == (2, 0)  # settled once, never again
    _tally_matches_a_recount(surveys, cid)


def test_a_response_the_store_never_took_is_not_counted(surveys, monkeypatch):
    cid = surveys.open_consultation()
    with monkeypatch.context() as dying:
        _dies(dying, Response, "save")
        surveys.submit(
            surveys.token(surveys.participant(cid), cid), {"safe": "no"}, expect=500
        )  # the worker died there
    monkeypatch.setattr(tallies, "PENDING_GRACE_S", 0.0)
    assert _progress(surveys, cid) == (0, 0)
    _tally_matches_a_recount(surveys, cid)


def test_a_pending_response_erased_before_it_was_counted_counts_only_as_erased(
    surveys, monkeypatch
):
    cid = surveys.open_consultation()
    pseudonym = surveys.participant(cid)
    with monkeypatch.context() as dying:
        _dies(dying, tallies, "count_response")
        surveys.submit(
            surveys.token(pseudonym, cid), {"safe": "no"}, expect=500
        )  # the worker died there
    surveys.withdraw(pseudonym, cid)
    monkeypatch.setattr(tallies, "PENDING_GRACE_S", 0.0)
    assert _progress(surveys, cid) == (0, 1)
    _tally_matches_a_recount(surveys, cid)


def test_a_response_deleted_by_an_erasure_that_died_before_taking_it_off_is_taken_off_once(
    surveys, monkeypatch
):
    cid = surveys.open_consultation()
    leaving = surveys.participant(cid)
    surveys.submit(surveys.token(leaving, cid), {"safe": "no"})
    surveys.submit(surveys.token(surveys.participant(cid), cid), {"safe": "yes"})
    with monkeypatch.context() as dying:
        _dies(dying, tallies, "uncount_response")
        surveys.withdraw(leaving, cid)  # the redelivery finds no response left to take off
    with surveys.app.app_context():
        assert Response.objects(consultation_id=cid).count() == 1
    monkeypatch.setattr(tallies, "PENDING_GRACE_S", 0.0)
    assert _progress(surveys, cid) == (1, 1)
    assert _progress(surveys, cid) == (1, 1)
    _tally_matches_a_recount(surveys, cid)


def test_an_erasure_that_died_before_deleting_leaves_the_count_as_it_was(surveys, monkeypatch):
    cid = surveys.open_consultation()
    leaving = surveys.participant(cid)
    surveys.submit(surveys.token(leaving, cid), {"safe": "no"})
    with monkeypatch.context() as dying:
        _dies(dying, Response, "delete")
        try:
            surveys.withdraw(leaving, cid)
        except ProcessDied:
            pass  # however the bus gives up on the handler, the response is still stored
    monkeypatch.setattr(tallies, "PENDING_GRACE_S", 0.0)
    assert _progress(surveys, cid) == (1, 0)  # its Erasure record waits for the redelivery
    surveys.withdraw(leaving, cid)  # delivered again: erased now, and counted once
    assert _progress(surveys, cid) == (0, 1)
    _tally_matches_a_recount(surveys, cid)
