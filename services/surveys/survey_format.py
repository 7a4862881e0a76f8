"""The survey definition format as OpenAPI schema objects, with an example of every question type.

`questionnaire` is what checks a definition (every problem at once, by path); these schemas only
describe it for the OpenAPI document, built from the same constants so the two cannot drift apart.
Rules across fields (a condition refers to an earlier question, every text in every language
before publishing, at most three dimensions) are in the descriptions, not in the schemas.
"""

from __future__ import annotations

from typing import Any

from shared.questionnaire.definition import (
    CHOICE_TYPES,
    CODE_PATTERN,
    CONDITION_OPS,
    DATE,
    DEFAULT_MAX_LENGTH,
    DEFAULT_RATING_MAX,
    DEFAULT_RATING_MIN,
    FREE_TEXT,
    ID_PATTERN,
    MAX_FREE_TEXT_LENGTH,
    MULTIPLE_CHOICE,
    NUMBER,
    QUESTION_TYPES,
    RATING,
    SINGLE_CHOICE,
    UN_LANGUAGES,
)

SURVEY_DEFINITION = "SurveyDefinition"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` or null (OpenAPI 3.0): stored definitions spell out absent optional parts as null."""
    return (
        {"allOf": [schema], "nullable": True} if "$ref" in schema else {**schema, "nullable": True}
    )


def _object(properties: dict[str, Any], required: list[str], description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _question_schema(question_type: str) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "id": {
            "type": "string",
            "pattern": ID_PATTERN.pattern,
            "description": "unique in the survey",
        },
        "type": {"type": "string", "enum": [question_type]},
        "label": ref("SurveyText"),
        "hint": nullable(ref("SurveyText")),
        "relevant": nullable(ref("SurveyCondition")),
        "sensitive": {"type": "boolean"},
        "dimension": {
            "type": "boolean",
            "description": "a breakdown for cross-tabs: choice questions only, at most 3",
        },
    }
    required = ["id", "type", "label"]
    if question_type in CHOICE_TYPES:
        properties["options"] = {
            "type": "array",
            "items": ref("SurveyOption"),
            "minItems": 2 if question_type == SINGLE_CHOICE else 1,
        }
        required.append("options")
    elif question_type == RATING:
        properties["min"] = {"type": "integer", "default": DEFAULT_RATING_MIN}
        properties["max"] = {
            "type": "integer",
            "default": DEFAULT_RATING_MAX,
            "description": "at most 11 points from min to max",
        }
    elif question_type == NUMBER:
        properties.update(
            min=nullable({"type": "number"}),
            max=nullable({"type": "number"}),
            integer={"type": "boolean"},
        )
    elif question_type == FREE_TEXT:
        properties["max_length"] = {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_FREE_TEXT_LENGTH,
            "default": DEFAULT_MAX_LENGTH,
        }
    return _object(
        properties, required, f"a {question_type} question; it can always be skipped or declined"
    )


def _schema_name(question_type: str) -> str:
    return "".join(part.capitalize() for part in question_type.split("_")) + "Question"


def component_schemas() -> dict[str, dict[str, Any]]:
    """The schema objects to register in an OpenAPI document, by name; `SurveyDefinition` is the survey."""
    condition = ref("SurveyCondition")
    schemas: dict[str, dict[str, Any]] = {
        "SurveyText": {
            "type": "object",
            "minProperties": 1,
            "description": "one text per language code; publishing needs every language of the survey",
            "additionalProperties": {"type": "string", "minLength": 1},
        },
        "SurveyCondition": {
            "description": "skip logic: shown only when true. A comparison with an unanswered question is false. "
            "It may refer only to earlier questions.",
            "oneOf": [
                _object(
                    {
                        "question": {"type": "string"},
                        "op": {"type": "string", "enum": list(CONDITION_OPS)},
                        "value": {"description": "an option code, a number or a YYYY-MM-DD date"},
                    },
                    ["question", "op"],
                    "compare one earlier answer ('answered' takes no value)",
                ),
                _object(
                    {"all": {"type": "array", "items": condition, "minItems": 1}},
                    ["all"],
                    "every one",
                ),
                _object(
                    {"any": {"type": "array", "items": condition, "minItems": 1}},
                    ["any"],
                    "at least one",
                ),
                _object({"not": condition}, ["not"], "the opposite"),
            ],
        },
        "SurveyOption": _object(
            {
                "code": {"type": "string", "pattern": CODE_PATTERN.pattern},
                "label": ref("SurveyText"),
            },
            ["code", "label"],
            "a choice",
        ),
    }
    for question_type in QUESTION_TYPES:
        schemas[_schema_name(question_type)] = _question_schema(question_type)
    schemas["SurveyQuestion"] = {
        "oneOf": [ref(_schema_name(t)) for t in QUESTION_TYPES],
        "discriminator": {
            "propertyName": "type",
            "mapping": {t: ref(_schema_name(t))["$ref"] for t in QUESTION_TYPES},
        },
    }
    schemas["SurveySection"] = _object(
        {
            "id": {"type": "string", "pattern": ID_PATTERN.pattern},
            "title": ref("SurveyText"),
            "content_warning": nullable(ref("SurveyText")),
            "relevant": nullable(condition),
            "questions": {"type": "array", "items": ref("SurveyQuestion"), "minItems": 1},
        },
        ["id", "title", "questions"],
        "one page of questions; a content warning comes first, with 'skip this part'",
    )
    schemas[SURVEY_DEFINITION] = _object(
        {
            "languages": {
                "type": "array",
                "items": {"type": "string", "enum": list(UN_LANGUAGES)},
                "minItems": 1,
                "uniqueItems": True,
            },
            "sections": {"type": "array", "items": ref("SurveySection"), "minItems": 1},
        },
        ["languages", "sections"],
        "a survey version: sections of questions, every text in every language",
    )
    schemas[SURVEY_DEFINITION]["example"] = EXAMPLE_SURVEY
    return schemas


def _t(en: str, ar: str) -> dict[str, str]:
    return {"en": en, "ar": ar}


# Publishable as it is, with one question of each type, skip logic and a content warning.
EXAMPLE_SURVEY: dict[str, Any] = {
    "languages": ["en", "ar"],
    "sections": [
        {
            "id": "about",
            "title": _t("About you", "عنك"),
            "questions": [
                {
                    "id": "region",
                    "type": SINGLE_CHOICE,
                    "dimension": True,
                    "label": _t("Where do you live?", "أين تعيش؟"),
                    "options": [
                        {"code": "north", "label": _t("North", "الشمال")},
                        {"code": "south", "label": _t("South", "الجنوب")},
                    ],
                },
                {
                    "id": "needs",
                    "type": MULTIPLE_CHOICE,
                    "label": _t("What did you need?", "ماذا احتجت؟"),
                    "hint": _t("Choose all that apply.", "اختر كل ما ينطبق."),
                    "options": [
                        {"code": "housing", "label": _t("Housing", "سكن")},
                        {"code": "work", "label": _t("Work", "عمل")},
                    ],
                },
                {
                    "id": "safety",
                    "type": RATING,
                    "min": 1,
                    "max": 5,
                    "label": _t(
                        "How safe do you feel? (1 to 5)", "ما مدى شعورك بالأمان؟ (1 إلى 5)"
                    ),
                },
            ],
        },
        {
            "id": "since_leaving",
            "title": _t("Since you left", "منذ مغادرتك"),
            "content_warning": _t(
                "These questions are about the time after you left.",
                "هذه الأسئلة عن الفترة بعد مغادرتك.",
            ),
            "questions": [
                {"id": "left_on", "type": DATE, "label": _t("When did you leave?", "متى غادرت؟")},
                {
                    "id": "moves",
                    "type": NUMBER,
                    "min": 0,
                    "max": 50,
                    "integer": True,
                    "label": _t("How many times did you move?", "كم مرة انتقلت؟"),
                },
                {
                    "id": "story",
                    "type": FREE_TEXT,
                    "max_length": 1000,
                    "sensitive": True,
                    "relevant": {"question": "needs", "op": "includes", "value": "housing"},
                    "label": _t(
                        "What would have helped with housing?", "ما الذي كان سيساعد في السكن؟"
                    ),
                },
            ],
        },
    ],
}
