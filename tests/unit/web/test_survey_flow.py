"""The survey as pages: reading a section's form, skip logic, problems, progress."""

from __future__ import annotations

from werkzeug.datastructures import MultiDict

from deploy.demo import SURVEY
from gateway.web import survey_flow as flow

MIXED = {
    "languages": ["en", "fr"],
    "sections": [
        {
            "id": "s1",
            "title": {"en": "One"},
            "questions": [
                {
                    "id": "count",
                    "type": "number",
                    "integer": True,
                    "min": 0,
                    "max": 20,
                    "label": {"en": "How many?"},
                },
                {"id": "when", "type": "date", "label": {"en": "When?", "fr": "Quand ?"}},
                {
                    "id": "which",
                    "type": "multiple_choice",
                    "label": {"en": "Which?"},
                    "options": [
                        {"code": "a", "label": {"en": "A"}},
                        {"code": "b", "label": {"en": "B"}},
                    ],
                },
                {"id": "words", "type": "free_text", "max_length": 10, "label": {"en": "Say more"}},
            ],
        }
    ],
}


def test_blank_means_skipped_and_the_decline_choice_means_declined():
    form = MultiDict(
        [
            ("q_count", " "),
            ("q_when", "2024-02-29"),
            ("q_which", "b"),
            ("q_which", "a"),
            ("q_words__decline", "1"),
        ]
    )
    given = flow.read_section_form(MIXED, ["count", "when", "which", "words"], form)
    assert given.answers == {"when": "2024-02-29", "which": ["b", "a"]}
    assert given.declined == {"words"} and given.clashes == set()
    radio = flow.read_section_form(SURVEY, ["region"], MultiDict([("q_region", flow.DECLINE)]))
    assert radio.answers == {} and radio.declined == {"region"}


def test_an_answer_with_prefer_not_to_say_is_a_clash():
    given = flow.read_section_form(
        MIXED, ["words"], MultiDict([("q_words", "hi"), ("q_words__decline", "1")])
    )
    assert given.clashes == {"words"} and given.answers == {} and given.raw == {"words": "hi"}


def test_only_the_questions_the_page_showed_are_read():
    given = flow.read_section_form(
        MIXED, ["count"], MultiDict([("q_count", "3"), ("q_words", "sneaky")])
    )
    assert given.answers == {"count": "3"}


def test_check_normalises_or_explains_each_problem():
    answers, declined, problems = flow.check(MIXED, {"count": "4", "which": ["b", "a"]}, ["words"])
    assert answers == {"count": 4, "which": ["a", "b"]} and declined == ["words"] and problems == {}
    _, _, problems = flow.check(
        MIXED, {"count": "4.5", "when": "2023-02-30", "words": "x" * 11}, []
    )
    assert problems["count"].message == "Please write a whole number."
    assert problems["count"].more == "It must be from %(low)s to %(high)s."
    assert problems["count"].values == {"low": 0, "high": 20}
    assert problems["when"].message.startswith("Please give a real date")
    assert problems["words"].values == {"limit": 10}


def test_changing_an_answer_forgets_the_follow_up_it_hid():
    answers = {"region": "north", "got_help": "yes", "help_rating": 4}
    given = flow.read_section_form(
        SURVEY,
        ["got_help", "help_rating"],
        MultiDict([("q_got_help", "no"), ("q_help_rating", "4")]),
    )
    merged, declined = flow.merge_section(SURVEY, answers, [], ["got_help", "help_rating"], given)
    assert merged == {"region": "north", "got_help": "no"} and declined == []


def test_sections_progress_and_skipping_a_section():
    assert flow.first_section(SURVEY, {}) == "about"
    assert flow.next_section(SURVEY, {}, "about") == "support"
    assert flow.next_section(SURVEY, {}, "support") is None
    assert flow.previous_section(SURVEY, {}, "support") == "about"
    assert flow.previous_section(SURVEY, {}, "about") is None
    assert flow.progress(SURVEY, {}, "support") == (2, 2)
    assert flow.visible_in_section(SURVEY, {}, "support") == ["got_help", "what_would_help"]
    assert flow.visible_in_section(SURVEY, {"got_help": "yes"}, "support") == [
        "got_help",
        "help_rating",
        "what_would_help",
    ]
    answers, declined = flow.forget_section(
        SURVEY,
        {"region": "north", "got_help": "yes", "help_rating": 2},
        ["what_would_help"],
        "support",
    )
    assert answers == {"region": "north"} and declined == []
    assert flow.tally(SURVEY, {"region": "north"}, ["age_band"]) == {
        "answered": 1,
        "declined": 1,
        "skipped": 2,
    }


def test_texts_fall_back_to_another_language_and_say_which():
    assert flow.localise({"en": "When?", "fr": "Quand ?"}, "fr", ["en"]) == flow.Localised(
        "Quand ?", "fr"
    )
    assert flow.localise({"en": "When?", "fr": "Quand ?"}, "ar", ["en", "fr"]) == flow.Localised(
        "When?", "en"
    )
    assert flow.localise({"ru": "Когда?"}, "ar", ["en"]) == flow.Localised("Когда?", "ru")
    assert flow.localise(None, "en", []) is None
