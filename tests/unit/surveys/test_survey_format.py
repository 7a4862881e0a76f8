"""The survey format in the OpenAPI document: the real structure, and an example that validates."""

from __future__ import annotations

import copy

import jsonschema_rs
import pytest

from services.surveys import questionnaire
from services.surveys.survey_format import EXAMPLE_SURVEY, SURVEY_DEFINITION, component_schemas
from shared.errors import ValidationFailed
from shared.questionnaire import definition
from tests.every_question_type import EVERY_TYPE_SURVEY


def json_schema(node):
    """An OpenAPI 3.0 schema as JSON Schema: `nullable` becomes "or null" (as schemathesis reads it)."""
    if isinstance(node, list):
        return [json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: json_schema(value) for key, value in node.items() if key != "nullable"}
    return {"anyOf": [converted, {"type": "null"}]} if node.get("nullable") else converted


def validator(components: dict):
    # The components as one JSON Schema document, with the references resolved within it.
    return jsonschema_rs.validator_for(
        {
            "$ref": f"#/components/schemas/{SURVEY_DEFINITION}",
            "components": {"schemas": json_schema(components)},
        }
    )


def test_the_example_has_every_question_type_and_is_publishable():
    types = {q["type"] for _, _, _, q in definition.iter_questions(EXAMPLE_SURVEY)}
    assert types == set(definition.QUESTION_TYPES)
    questionnaire.publishable(questionnaire.validate_definition(copy.deepcopy(EXAMPLE_SURVEY)))


@pytest.mark.parametrize(
    "survey", [EXAMPLE_SURVEY, EVERY_TYPE_SURVEY], ids=["example", "every type, six languages"]
)
def test_valid_surveys_match_the_documented_schema_as_sent_and_as_stored(survey):
    validator(component_schemas()).validate(survey)
    # What the API answers (versions, an opened invitation): normalised, absent parts spelled out as null.
    stored = questionnaire.publishable(questionnaire.validate_definition(copy.deepcopy(survey)))
    validator(component_schemas()).validate(stored)


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s["sections"][0]["questions"][0].update(
            required=True
        ),  # no "required": everything can be skipped
        lambda s: s["sections"][0]["questions"][1].update(type="slider"),
        lambda s: s["sections"][0]["questions"][2].update(options=[]),  # a rating has no options
        lambda s: s["sections"][1]["questions"][2]["relevant"].update(op="matches"),
        lambda s: s.update(languages=["de"]),
        lambda s: s["sections"].append(
            {"id": "empty", "title": {"en": "E", "ar": "ف"}, "questions": []}
        ),
    ],
)
def test_what_the_survey_checks_refuse_the_schema_refuses_too(change):
    survey = copy.deepcopy(EXAMPLE_SURVEY)
    change(survey)
    with pytest.raises(ValidationFailed):
        questionnaire.publishable(questionnaire.validate_definition(copy.deepcopy(survey)))
    assert not validator(component_schemas()).is_valid(survey)


def test_the_served_document_describes_the_survey_with_its_example(surveys):
    document = surveys.call("GET", "/openapi.json", 200)
    schemas = document["components"]["schemas"]
    validator(schemas).validate(schemas[SURVEY_DEFINITION]["example"])
    survey_ref = {"$ref": f"#/components/schemas/{SURVEY_DEFINITION}"}
    assert schemas["SurveyDraft"]["properties"]["survey"]["allOf"] == [survey_ref]
    assert (
        survey_ref in schemas["ConsultationCreate"]["properties"]["survey"]["anyOf"]
    )  # or null: write it later
    for name in ("ConsultationCreate", "SurveyDraft"):  # what the docs page offers to send
        validator(schemas).validate(schemas[name]["properties"]["survey"]["example"])
