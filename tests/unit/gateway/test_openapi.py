"""The merged OpenAPI document and the docs page."""

from __future__ import annotations

import re

import pytest

from gateway.openapi import documented_routes, merge_documents
from gateway.participant_sessions import OPENING_ROUTE
from gateway.policy import POLICY, RoutePolicy, find, route_shape


@pytest.fixture(scope="module")
def document(platform):
    return platform.call("GET", "/openapi.json", expect=200).get_json()


def test_the_document_has_exactly_the_operations_of_the_policy_table(document):
    assert documented_routes(document) == {(row.method, route_shape(row.path)) for row in POLICY}
    assert "x-voices-incomplete" not in document["info"]


def test_each_operation_says_who_may_call_it(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            row = find(method, path)
            assert operation["x-voices-roles"] == sorted(row.allowed)
            if row.public:
                assert {} in operation["security"]
            else:
                assert operation["security"] == [{"apiToken": []}, {"staffSession": []}]
                assert {"401", "403"} <= set(operation["responses"])
            assert "429" in operation["responses"] and "default" in operation["responses"]


def test_every_error_is_documented_as_problem_json(document):
    responses = document["components"]["responses"]
    for name, response in responses.items():
        if "content" in response:
            assert list(response["content"]) == ["application/problem+json"], name
    assert set(document["components"]["securitySchemes"]) == {
        "apiToken",
        "staffSession",
        "participantSession",
    }


def test_every_reference_resolves(document):
    text = str(document)
    for kind, name in set(re.findall(r"#/components/(\w+)/(\w+)", text)):
        assert name in document["components"][kind], f"{kind}/{name}"


def test_an_opened_invitation_documents_the_participant_session(document):
    method, path = OPENING_ROUTE
    operation = next(
        item[method.lower()]
        for p, item in document["paths"].items()
        if route_shape(p) == route_shape(path)
    )
    ref = operation["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    # One object with the service's fields and the gateway's: a response carries both at once.
    assert {"pseudonym", "survey", "participant_session", "participant_session_expires_in"} <= set(
        schema["properties"]
    )


def test_the_upload_route_documents_multipart_only(document):
    row = next(r for r in POLICY if "multipart/form-data" in r.accepts)
    item = next(i for p, i in document["paths"].items() if route_shape(p) == route_shape(row.path))
    assert list(item[row.method.lower()]["requestBody"]["content"]) == ["multipart/form-data"]


def test_operations_outside_the_table_or_of_another_owner_are_left_out():
    own = {
        "paths": {
            "/api/v1/me": {"get": {"responses": {}}},
            "/api/v1/secret": {"get": {"responses": {}}},
        }
    }
    surveys = {
        "paths": {
            "/api/v1/me": {"get": {"responses": {}}},  # not the surveys service's route
            "/api/v1/consultations": {"get": {"responses": {}}, "delete": {"responses": {}}},
        }
    }
    merged = merge_documents(own, {"surveys": surveys, "consent": None})
    assert documented_routes(merged) == {("GET", "/api/v1/me"), ("GET", "/api/v1/consultations")}
    assert merged["info"]["x-voices-incomplete"] == ["consent"]


def test_colliding_component_names_are_kept_apart():
    own = {
        "paths": {
            "/api/v1/me": {"get": {"responses": {"200": {"$ref": "#/components/schemas/Item"}}}}
        },
        "components": {"schemas": {"Item": {"type": "string"}}},
    }
    surveys = {
        "paths": {
            "/api/v1/consultations": {
                "get": {"responses": {"200": {"$ref": "#/components/schemas/Item"}}}
            }
        },
        "components": {"schemas": {"Item": {"type": "integer"}}},
    }
    policy = (
        RoutePolicy("GET", "/api/v1/me", frozenset({"admin"}), None),
        RoutePolicy("GET", "/api/v1/consultations", frozenset({"admin"}), "surveys"),
    )
    merged = merge_documents(own, {"surveys": surveys}, policy)
    assert merged["components"]["schemas"] == {
        "Item": {"type": "string"},
        "SurveysItem": {"type": "integer"},
    }
    ref = merged["paths"]["/api/v1/consultations"]["get"]["responses"]["200"]["$ref"]
    assert ref == "#/components/schemas/SurveysItem"


def test_the_docs_page_loads_nothing_from_other_origins(platform):
    page = platform.call("GET", "/docs", expect=200)
    html = page.get_data(True)
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(s.startswith("/") for s in sources), sources
    assert "<script>" not in html  # no inline script: the CSP allows none
    for source in sources:
        platform.call("GET", source, expect=200)
    assert "validatorUrl: null" in platform.call("GET", "/docs/init.js", expect=200).get_data(True)
    platform.call("GET", "/docs/assets/../../app.py", expect=404)


def test_the_survey_format_is_in_the_merged_document(document):
    from tests.unit.surveys.test_survey_format import validator

    schemas = document["components"]["schemas"]
    validator(schemas).validate(schemas["SurveyDefinition"]["example"])
    assert {
        "SingleChoiceQuestion",
        "MultipleChoiceQuestion",
        "RatingQuestion",
        "NumberQuestion",
        "DateQuestion",
        "FreeTextQuestion",
    } <= set(schemas)
