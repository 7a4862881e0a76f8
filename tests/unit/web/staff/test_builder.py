"""The consultation builder on the in-process platform: each page, each form's refusals by field."""

from __future__ import annotations

import re

import pytest

from tests.unit.surveys.workbooks import xlsx


def _cid(location: str) -> str:
    return re.search(r"/consultations/(c_[0-9a-f]+)", location).group(1)


@pytest.fixture
def organiser(staff_browser):
    return staff_browser("organiser")


def _new_consultation(browser, languages=("en", "fr"), title="Housing after leaving") -> str:
    browser.get("/staff/consultations")
    answer = browser.post("/staff/consultations", {"title": title, "languages": list(languages)})
    assert answer.status_code == 303, answer.get_data(as_text=True)
    browser.platform.deliver()  # the consent service learns of the consultation from an event
    return _cid(answer.headers["Location"])


def _api(browser, method, path, expect=200, **kwargs):
    return browser.platform.call(method, path, browser.token, expect=expect, **kwargs).get_json()


def test_signing_in_leads_an_organiser_to_the_consultations(organiser):
    answer = organiser.get("/staff/")
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/staff/consultations")
    html = organiser.get("/staff/consultations").get_data(as_text=True)
    assert "Start a consultation" in html


def test_creating_a_consultation_refused_by_the_service_keeps_what_was_typed(organiser):
    organiser.get("/staff/consultations")
    answer = organiser.post("/staff/consultations", {"title": "x" * 300, "languages": ["en"]})
    html = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert 'id="f-title-error"' in html and "Length must be between 1 and 200" in html
    assert "x" * 300 in html
    cid = _new_consultation(organiser)
    listed = organiser.get("/staff/consultations").get_data(as_text=True)
    assert f"/staff/consultations/{cid}" in listed and "Draft" in listed


def test_settings_refusals_go_next_to_their_fields(organiser):
    cid = _new_consultation(organiser)
    organiser.get(f"/staff/consultations/{cid}/settings")
    answer = organiser.post(
        f"/staff/consultations/{cid}/settings",
        {
            "title": "Housing",
            "titles.en": "Housing",
            "titles.fr": "Logement",
            "languages": ["en", "fr"],
            "purposes": ["participate", "aggregate_reporting"],
            "min_cell_size": "3",
            "retention_days": "365",
            "epsilon_budget": "",
        },
    )
    html = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert 'id="f-min_cell_size-error"' in html
    assert 'value="Logement"' in html  # nothing typed is lost
    before = _api(organiser, "GET", f"/api/v1/consultations/{cid}")
    assert before["min_cell_size"] == 10 and before["titles"] == {"en": "Housing after leaving"}
    done = organiser.post(
        f"/staff/consultations/{cid}/settings",
        {
            "title": "Housing",
            "titles.en": "Housing",
            "titles.fr": "Logement",
            "languages": ["en", "fr"],
            "purposes": ["aggregate_reporting"],
            "min_cell_size": "12",
            "retention_days": "400",
            "epsilon_budget": "2.5",
        },
    )
    assert done.status_code == 303
    after = _api(organiser, "GET", f"/api/v1/consultations/{cid}")
    assert after["titles"] == {"en": "Housing", "fr": "Logement"}
    assert after["min_cell_size"] == 12 and after["epsilon_budget"] == 2.5
    assert after["purposes"] == ["participate", "aggregate_reporting"]


def _first_question(browser, cid: str) -> None:
    browser.get(f"/staff/consultations/{cid}/questions/new?section=new")
    answer = browser.post(
        f"/staff/consultations/{cid}/questions/new",
        {
            "placement": "new",
            "section_id": "home",
            "section_title.en": "Your home",
            "section_title.fr": "Votre logement",
            "has_warning": "on",
            "content_warning.en": "Questions about violence at home.",
            "content_warning.fr": "Questions sur la violence au foyer.",
            "id": "place",
            "type": "single_choice",
            "label.en": "Where do you stay?",
            "label.fr": "Où logez-vous ?",
            "options[0].code": "shelter",
            "options[0].label.en": "Shelter",
            "options[0].label.fr": "Foyer",
            "options[1].code": "friends",
            "options[1].label.en": "With friends",
            "options[1].label.fr": "Chez des amis",
            "options[2].code": "",
            "dimension": "on",
            "relevant": "",
        },
    )
    assert answer.status_code == 303, answer.get_data(as_text=True)


def test_a_section_with_a_warning_a_dimension_and_skip_logic_chosen_from_a_list(organiser):
    cid = _new_consultation(organiser)
    _first_question(organiser, cid)
    page = organiser.get(f"/staff/consultations/{cid}/questions/new?section=home")
    html = page.get_data(as_text=True)
    # Skip logic is chosen from the earlier question and its options, never typed.
    assert 'value="chosen:place:shelter"' in html and 'value="answered:place"' in html
    answer = organiser.post(
        f"/staff/consultations/{cid}/questions/new",
        {
            "placement": "home",
            "id": "safe",
            "type": "rating",
            "label.en": "How safe is the shelter?",
            "label.fr": "",
            "min": "1",
            "max": "5",
            "sensitive": "on",
            "relevant": "chosen:place:shelter",
        },
    )
    assert answer.status_code == 303
    draft = _api(organiser, "GET", f"/api/v1/consultations/{cid}")["draft"]
    section = draft["sections"][0]
    assert section["content_warning"]["fr"] == "Questions sur la violence au foyer."
    place, safe = section["questions"]
    assert place["dimension"] is True and [o["code"] for o in place["options"]] == [
        "shelter",
        "friends",
    ]
    assert safe["relevant"] == {"question": "place", "op": "equals", "value": "shelter"}
    assert safe["sensitive"] is True and safe["label"] == {"en": "How safe is the shelter?"}
    # The overview marks the French text as missing, and the translations page highlights it.
    overview = organiser.get(f"/staff/consultations/{cid}").get_data(as_text=True)
    assert "missing texts: 1" in overview
    side = organiser.get(f"/staff/consultations/{cid}/translations/fr").get_data(as_text=True)
    assert side.count('class="translation-row missing"') == 2  # the title and the question


def test_a_question_refused_by_the_service_shows_each_message_at_its_field(organiser):
    cid = _new_consultation(organiser)
    _first_question(organiser, cid)
    organiser.get(f"/staff/consultations/{cid}/questions/new?section=home")
    answer = organiser.post(
        f"/staff/consultations/{cid}/questions/new",
        {
            "placement": "home",
            "id": "bad id!",
            "type": "multiple_choice",
            "label.en": "What helped?",
            "options[0].code": "a b",
            "options[0].label.en": "Advice",
            "options[1].code": "",
            "options[2].code": "c",
            "options[2].label.en": "Company",
        },
    )
    html = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert 'id="f-id-error"' in html
    # The first option row kept its index; the empty row in between shifted nothing.
    assert 'id="f-options-0--code-error"' in html
    assert 'id="f-options-2--code-error"' not in html
    assert 'value="Company"' in html and ">What helped?</textarea>" in html
    draft = _api(organiser, "GET", f"/api/v1/consultations/{cid}")["draft"]
    assert len(draft["sections"][0]["questions"]) == 1  # nothing stored


def test_reorder_and_a_move_the_service_refuses(organiser):
    cid = _new_consultation(organiser, languages=("en",))
    _first_question(organiser, cid)
    organiser.get(f"/staff/consultations/{cid}/questions/new")
    organiser.post(
        f"/staff/consultations/{cid}/questions/new",
        {
            "placement": "home",
            "id": "why",
            "type": "free_text",
            "label.en": "Why there?",
            "relevant": "answered:place",
        },
    )
    organiser.post(
        f"/staff/consultations/{cid}/questions/new",
        {"placement": "home", "id": "age", "type": "number", "label.en": "Age?", "integer": "on"},
    )
    organiser.get(f"/staff/consultations/{cid}")
    moved = organiser.post(f"/staff/consultations/{cid}/move", {"item": "age", "direction": "up"})
    assert moved.status_code == 303
    order = [
        q["id"]
        for q in _api(organiser, "GET", f"/api/v1/consultations/{cid}")["draft"]["sections"][0][
            "questions"
        ]
    ]
    assert order == ["place", "age", "why"]
    organiser.get(f"/staff/consultations/{cid}")
    assert (
        organiser.post(
            f"/staff/consultations/{cid}/move", {"item": "why", "direction": "up"}
        ).status_code
        == 303
    )
    organiser.get(f"/staff/consultations/{cid}")
    # Above the question its skip logic refers to: the surveys service refuses, nothing moves.
    refused = organiser.post(f"/staff/consultations/{cid}/move", {"item": "why", "direction": "up"})
    assert refused.status_code == 422
    assert "refers to" in refused.get_data(as_text=True)


def test_translations_side_by_side_are_saved_for_one_language(organiser):
    cid = _new_consultation(organiser)
    _first_question(organiser, cid)
    organiser.get(f"/staff/consultations/{cid}/translations/fr")
    answer = organiser.post(
        f"/staff/consultations/{cid}/translations/fr",
        {
            "title": "Logement après le départ",
            "t:sections[0].title": "Votre logement",
            "t:sections[0].content_warning": "Questions sur la violence au foyer.",
            "t:sections[0].questions[0].label": "Où dormez-vous ?",
            "t:sections[0].questions[0].options[0].label": "Foyer",
            "t:sections[0].questions[0].options[1].label": "Chez des amis",
        },
    )
    assert answer.status_code == 303
    consultation = _api(organiser, "GET", f"/api/v1/consultations/{cid}")
    assert consultation["titles"]["fr"] == "Logement après le départ"
    assert consultation["draft"]["sections"][0]["questions"][0]["label"]["fr"] == "Où dormez-vous ?"
    assert (
        consultation["draft"]["sections"][0]["questions"][0]["label"]["en"] == "Where do you stay?"
    )


def test_preview_shows_any_language_and_stores_nothing(organiser):
    cid = _new_consultation(organiser)
    _first_question(organiser, cid)
    before = _api(organiser, "GET", f"/api/v1/consultations/{cid}")
    warning = organiser.get(f"/staff/consultations/{cid}/preview?in=fr").get_data(as_text=True)
    assert "Questions sur la violence au foyer." in warning and "Où logez-vous" not in warning
    questions = organiser.get(
        f"/staff/consultations/{cid}/preview?in=fr&section=0&warning=seen"
    ).get_data(as_text=True)
    assert "Où logez-vous ?" in questions and "Chez des amis" in questions
    assert "<form" not in questions.split('class="preview-frame"')[1].split("</main>")[0]
    assert _api(organiser, "GET", f"/api/v1/consultations/{cid}") == before


def _consent(browser, cid, lang, body="We keep your answers for a year."):
    browser.get(f"/staff/consultations/{cid}/consent?in={lang}")
    return browser.post(
        f"/staff/consultations/{cid}/consent?in={lang}",
        {
            "title": f"Consent ({lang})",
            "body": body,
            "purpose.participate": f"Keep my answers ({lang})",
            "purpose.aggregate_reporting": f"Count them ({lang})",
        },
    )


def test_publish_is_blocked_by_its_checklist_until_consent_and_translations_exist(
    platform, organiser
):
    cid = _new_consultation(organiser)
    _first_question(organiser, cid)
    checklist = organiser.get(f"/staff/consultations/{cid}/publish").get_data(as_text=True)
    assert f"/staff/consultations/{cid}/consent?in=fr" in checklist
    assert "no consent text is published yet" in checklist
    refused = organiser.post(f"/staff/consultations/{cid}/publish")
    assert refused.status_code == 422
    assert _api(organiser, "GET", f"/api/v1/consultations/{cid}")["status"] == "draft"
    # A consent text refused by the service: the message sits next to the field.
    organiser.get(f"/staff/consultations/{cid}/consent?in=en")
    bad = organiser.post(
        f"/staff/consultations/{cid}/consent?in=en",
        {"title": "", "body": "Text", "purpose.participate": "Keep"},
    )
    assert bad.status_code == 422
    html = bad.get_data(as_text=True)
    assert 'id="f-title-error"' in html or 'id="f-purposes-error"' in html
    assert _consent(organiser, cid, "en").status_code == 303
    # Publishing the consent version with French missing is refused with the service's words.
    organiser.get(f"/staff/consultations/{cid}/consent")
    early = organiser.post(f"/staff/consultations/{cid}/consent/publish", {"version": "1"})
    assert early.status_code == 422 and "missing: fr" in early.get_data(as_text=True)
    assert _consent(organiser, cid, "fr").status_code == 303
    preview = organiser.get(f"/staff/consultations/{cid}/consent/preview?version=1&in=fr")
    assert "Keep my answers (fr)" in preview.get_data(as_text=True)
    organiser.get(f"/staff/consultations/{cid}/consent")
    assert (
        organiser.post(f"/staff/consultations/{cid}/consent/publish", {"version": "1"}).status_code
        == 303
    )
    platform.deliver()
    # The title typed when creating it is the English one: the French one is asked for.
    checklist = organiser.get(f"/staff/consultations/{cid}/publish").get_data(as_text=True)
    assert "The title is missing in: Français." in checklist
    _api(
        organiser,
        "PATCH",
        f"/api/v1/consultations/{cid}",
        json={"titles": {"en": "Housing after leaving", "fr": "Le logement après le départ"}},
    )
    organiser.get(f"/staff/consultations/{cid}/publish")
    done = organiser.post(f"/staff/consultations/{cid}/publish")
    assert done.status_code == 303, done.get_data(as_text=True)
    assert _api(organiser, "GET", f"/api/v1/consultations/{cid}")["status"] == "open"
    overview = organiser.get(f"/staff/consultations/{cid}").get_data(as_text=True)
    assert "Version 1, published" in overview


def test_an_xlsform_upload_lists_the_rows_to_fix_and_then_replaces_the_draft(organiser):
    cid = _new_consultation(organiser, languages=("en",))
    organiser.get(f"/staff/consultations/{cid}")
    broken = xlsx(
        [
            ["type", "name", "label"],
            ["select_one missing", "q1", "Pick one"],
            ["text", "", "No name"],
        ]
    )
    answer = organiser.post(
        f"/staff/consultations/{cid}/xlsform",
        {"file": (__import__("io").BytesIO(broken), "form.xlsx")},
        content_type="multipart/form-data",
    )
    html = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert 'class="import-problems"' in html and "row 2" in html and "row 3" in html
    good = xlsx(
        [
            ["type", "name", "label"],
            ["begin_group", "g1", "About you"],
            ["select_one yn", "ok", "Are you safe now?"],
            ["end_group", "", ""],
        ],
        [["list_name", "name", "label"], ["yn", "yes", "Yes"], ["yn", "no", "No"]],
    )
    done = organiser.post(
        f"/staff/consultations/{cid}/xlsform",
        {"file": (__import__("io").BytesIO(good), "form.xlsx")},
        content_type="multipart/form-data",
    )
    assert done.status_code == 200, done.get_data(as_text=True)
    assert "Are you safe now?" in done.get_data(as_text=True)
    draft = _api(organiser, "GET", f"/api/v1/consultations/{cid}")["draft"]
    assert draft["sections"][0]["questions"][0]["id"] == "ok"


def test_the_builder_is_for_organisers_of_the_organisation_only(staff_browser, organiser):
    cid = _new_consultation(organiser)
    analyst = staff_browser("policy")
    assert analyst.get(f"/staff/consultations/{cid}").status_code == 403
    assert analyst.get("/staff/consultations").status_code == 403


def test_a_refused_translation_keeps_every_text_typed_and_stores_none(organiser):
    cid = _new_consultation(organiser)
    _first_question(organiser, cid)
    organiser.get(f"/staff/consultations/{cid}/translations/fr")
    answer = organiser.post(
        f"/staff/consultations/{cid}/translations/fr",
        {"title": "T" * 300, "t:sections[0].questions[0].label": "Où dormez-vous ?"},
    )
    html = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert 'id="f-title-error"' in html and "T" * 300 in html
    assert 'value="Où dormez-vous ?"' in html
    consultation = _api(organiser, "GET", f"/api/v1/consultations/{cid}")
    assert consultation["titles"] == {"en": "Housing after leaving"}  # French not stored
    assert consultation["draft"]["sections"][0]["questions"][0]["label"]["fr"] == "Où logez-vous ?"


def test_a_section_edit_changes_its_texts_and_can_drop_its_warning(organiser):
    cid = _new_consultation(organiser)
    _first_question(organiser, cid)
    page = organiser.get(f"/staff/consultations/{cid}/sections/home").get_data(as_text=True)
    assert "Questions sur la violence au foyer." in page
    answer = organiser.post(
        f"/staff/consultations/{cid}/sections/home",
        {"section_title.en": "Where you live", "section_title.fr": "Où vous vivez"},
    )
    assert answer.status_code == 303
    section = _api(organiser, "GET", f"/api/v1/consultations/{cid}")["draft"]["sections"][0]
    assert section["title"] == {"en": "Where you live", "fr": "Où vous vivez"}
    assert section["content_warning"] is None


def _second_section(browser, cid: str) -> None:
    browser.get(f"/staff/consultations/{cid}/questions/new?section=new")
    answer = browser.post(
        f"/staff/consultations/{cid}/questions/new",
        {
            "placement": "new",
            "section_id": "safety",
            "section_title.en": "Safety",
            "section_title.fr": "Sécurité",
            "id": "safe",
            "type": "free_text",
            "label.en": "What would help?",
            "label.fr": "Qu’est-ce qui aiderait ?",
            "relevant": "",
        },
    )
    assert answer.status_code == 303, answer.get_data(as_text=True)


def test_a_section_is_shown_only_when_an_earlier_answer_is_chosen_from_a_list(organiser):
    cid = _new_consultation(organiser)
    _first_question(organiser, cid)
    _second_section(organiser, cid)
    first = organiser.get(f"/staff/consultations/{cid}/sections/home").get_data(as_text=True)
    assert 'name="relevant"' in first and "chosen:place:" not in first  # nothing comes before it
    page = organiser.get(f"/staff/consultations/{cid}/sections/safety").get_data(as_text=True)
    assert (
        'value="chosen:place:shelter"' in page and "When “Where do you stay?” is “Shelter”" in page
    )
    texts = {"section_title.en": "Safety", "section_title.fr": "Sécurité"}
    # A value naming no earlier question (a tampered or outdated form) is refused at the field.
    bad = organiser.post(
        f"/staff/consultations/{cid}/sections/safety", {**texts, "relevant": "answered:safe"}
    )
    html = bad.get_data(as_text=True)
    assert bad.status_code == 422 and 'id="f-relevant-error"' in html
    assert "Choose a question from an earlier section." in html
    assert (
        _api(organiser, "GET", f"/api/v1/consultations/{cid}")["draft"]["sections"][1]["relevant"]
        is None
    )
    answer = organiser.post(
        f"/staff/consultations/{cid}/sections/safety", {**texts, "relevant": "chosen:place:shelter"}
    )
    assert answer.status_code == 303
    section = _api(organiser, "GET", f"/api/v1/consultations/{cid}")["draft"]["sections"][1]
    assert section["relevant"] == {"question": "place", "op": "equals", "value": "shelter"}
    again = organiser.get(f"/staff/consultations/{cid}/sections/safety").get_data(as_text=True)
    assert 'value="chosen:place:shelter" selected' in again
    overview = organiser.get(f"/staff/consultations/{cid}").get_data(as_text=True)
    assert "This section is shown only when a condition holds." in overview
    # Moving the section first makes its condition point forward: the service refuses it.
    moved = organiser.post(
        f"/staff/consultations/{cid}/move", {"item": "safety", "direction": "up"}
    )
    shown = moved.get_data(as_text=True)
    assert moved.status_code == 422 and "Section “safety”, when it is shown:" in shown
    assert "sections[0]" not in shown
    assert (
        _api(organiser, "GET", f"/api/v1/consultations/{cid}")["draft"]["sections"][0]["id"]
        == "home"
    )


def test_the_description_is_written_per_language_and_checked_before_publishing(organiser):
    cid = _new_consultation(organiser)
    _first_question(organiser, cid)
    organiser.get(f"/staff/consultations/{cid}/settings")
    settings = {
        "title": "Housing",
        "titles.en": "Housing",
        "titles.fr": "Logement",
        "languages": ["en", "fr"],
        "purposes": ["participate"],
        "min_cell_size": "5",
        "retention_days": "365",
        "description": "About housing.",
        "descriptions.en": "About housing after leaving.",
    }
    answer = organiser.post(f"/staff/consultations/{cid}/settings", settings)
    assert answer.status_code == 303, answer.get_data(as_text=True)
    stored = _api(organiser, "GET", f"/api/v1/consultations/{cid}")
    assert stored["descriptions"] == {"en": "About housing after leaving."}
    assert stored["description"] == "About housing."
    form = organiser.get(f"/staff/consultations/{cid}/settings").get_data(as_text=True)
    assert "About housing after leaving." in form
    checklist = organiser.get(f"/staff/consultations/{cid}/publish").get_data(as_text=True)
    assert "The description is missing in: Français." in checklist
    assert f"/staff/consultations/{cid}/settings#f-descriptions" in checklist
    side = organiser.get(f"/staff/consultations/{cid}/translations/fr").get_data(as_text=True)
    assert "Consultation description" in side and "About housing after leaving." in side
    # Too long a description is refused next to it, keeping the other texts typed.
    long = organiser.post(
        f"/staff/consultations/{cid}/translations/fr",
        {"title": "Logement", "description": "x" * 20000, "t:sections[0].title": "Chez vous"},
    )
    html = long.get_data(as_text=True)
    assert long.status_code == 422 and 'id="f-description-error"' in html
    assert "Chez vous" in html
    saved = organiser.post(
        f"/staff/consultations/{cid}/translations/fr",
        {"title": "Logement", "description": "Sur le logement après le départ."},
    )
    assert saved.status_code == 303
    stored = _api(organiser, "GET", f"/api/v1/consultations/{cid}")
    assert stored["descriptions"]["fr"] == "Sur le logement après le départ."
    checklist = organiser.get(f"/staff/consultations/{cid}/publish").get_data(as_text=True)
    assert "The description is in every language." in checklist


def test_the_home_lists_every_consultation_a_page_at_a_time(organiser, monkeypatch):
    from gateway.web.staff.builder import consultation as home

    monkeypatch.setattr(home, "HOME_PAGE_SIZE", 2)
    made = [_new_consultation(organiser, title=f"Consultation {n}") for n in range(3)]
    total = len(_api(organiser, "GET", "/api/v1/consultations", query_string={"page_size": 200}))
    last = (total + 1) // 2
    first = organiser.get("/staff/consultations").get_data(as_text=True)
    assert f"Page 1 of {last} ({total} consultations)" in first
    assert made[2] in first and made[1] in first and made[0] not in first  # newest first
    assert 'href="/staff/consultations?page=2" rel="next"' in first and 'rel="prev"' not in first
    second = organiser.get("/staff/consultations?page=2").get_data(as_text=True)
    assert made[0] in second and made[2] not in second
    assert 'href="/staff/consultations?page=1" rel="prev"' in second
    beyond = organiser.get(f"/staff/consultations?page={last + 1}")
    assert beyond.status_code == 200
    assert f"There is no page {last + 1}." in beyond.get_data(as_text=True)
    odd = organiser.get("/staff/consultations?page=x").get_data(as_text=True)
    assert "Page 1 of" in odd


def test_refusals_say_what_to_fill_in_where(organiser):
    organiser.get("/staff/consultations")
    empty = organiser.post("/staff/consultations", {"title": "", "languages": ["en"]})
    html = empty.get_data(as_text=True)
    assert empty.status_code == 422 and 'id="f-title-error"' in html
    assert "Fill this in (at most 200 characters)." in html and "Length must be" not in html
    cid = _new_consultation(organiser)
    organiser.get(f"/staff/consultations/{cid}/questions/new?section=new")
    one = organiser.post(
        f"/staff/consultations/{cid}/questions/new",
        {
            "placement": "new",
            "section_id": "home",
            "id": "place",
            "type": "single_choice",
            "label.en": "Where do you stay?",
            "options[0].code": "shelter",
            "options[0].label.en": "Shelter",
        },
    )
    html = one.get_data(as_text=True)
    assert (
        one.status_code == 422
        and "single_choice" not in html.split("<main")[1].split('name="type"')[0]
    )
    assert "“One choice from a list” needs at least 2 answer options" in html
    assert 'value="Shelter"' in html


def test_the_title_typed_at_creation_counts_in_the_page_language(organiser):
    organiser.get("/staff/consultations?lang=fr")
    answer = organiser.post(
        "/staff/consultations", {"title": "Logement", "languages": ["en", "fr"]}
    )
    assert answer.status_code == 303
    stored = _api(organiser, "GET", f"/api/v1/consultations/{_cid(answer.headers['Location'])}")
    assert stored["titles"] == {"fr": "Logement"}
    organiser.get("/staff/consultations?lang=ar")  # not offered: the first language it offers
    answer = organiser.post("/staff/consultations", {"title": "Housing", "languages": ["en", "fr"]})
    stored = _api(organiser, "GET", f"/api/v1/consultations/{_cid(answer.headers['Location'])}")
    assert stored["titles"] == {"en": "Housing"}
