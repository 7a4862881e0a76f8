"""Pages call the services as the signed-in person under the API's table; refusals find their fields."""

from __future__ import annotations

import pytest

from gateway import accounts
from gateway.web.participant_api import ServiceRefused
from gateway.web.staff.forms import Form, field_id, flatten_errors
from tests.unit.web.staff.conftest import make_account


def _principal(account_id: str):
    return accounts.principal_of(accounts.get_account(account_id))


def test_a_page_calls_a_service_as_the_person_and_the_service_scopes_it(platform, organisation):
    api = platform.gateway.extensions["voices_staff_web"].api
    mine = make_account(platform, "organiser", organisation)
    theirs = make_account(platform, "organiser", platform.organisation())
    with platform.gateway.test_request_context("/staff/"):
        created = api.call(
            _principal(mine["account_id"]),
            "POST",
            "/api/v1/consultations",
            json={"title": "Housing after leaving", "languages": ["en"]},
        )
        cid = created["consultation_id"]
        listed = api.call(_principal(mine["account_id"]), "GET", "/api/v1/consultations")
        assert cid in {c["consultation_id"] for c in listed}
        # Another organisation's organiser: the surveys service itself says no.
        with pytest.raises(ServiceRefused) as refused:
            api.call(_principal(theirs["account_id"]), "GET", f"/api/v1/consultations/{cid}")
        assert refused.value.status in (403, 404)


def test_the_policy_table_refuses_a_role_before_any_service_is_called(platform, organisation):
    api = platform.gateway.extensions["voices_staff_web"].api
    analyst = make_account(platform, "policy", organisation)
    calls = []
    adapter = platform.adapters["surveys"]
    original = adapter.send
    adapter.send = lambda request, **kw: calls.append(request.url) or original(request, **kw)
    try:
        with (
            platform.gateway.test_request_context("/staff/"),
            pytest.raises(ServiceRefused) as refused,
        ):
            api.call(
                _principal(analyst["account_id"]),
                "POST",
                "/api/v1/consultations",
                json={"title": "x", "languages": ["en"]},
            )
    finally:
        adapter.send = original
    assert refused.value.status == 403 and calls == []
    with platform.gateway.test_request_context("/staff/"), pytest.raises(LookupError):
        api.call(_principal(analyst["account_id"]), "GET", "/api/v1/not-a-route")


def test_a_service_refusal_keeps_its_messages_and_shape(platform, organisation):
    api = platform.gateway.extensions["voices_staff_web"].api
    organiser = make_account(platform, "organiser", organisation)
    with (
        platform.gateway.test_request_context("/staff/"),
        pytest.raises(ServiceRefused) as refused,
    ):
        api.call(
            _principal(organiser["account_id"]),
            "POST",
            "/api/v1/consultations",
            json={"title": "", "languages": ["xx"]},
        )
    assert refused.value.status == 422
    form = Form.of({"title": "", "languages": ["xx"]})
    form.take_refusal(
        refused.value.body.get("detail"), refused.value.errors, {"languages": "languages"}
    )
    assert form.errors_for("languages")
    assert form.values_of("languages") == ["xx"]  # what was typed stays


def test_nested_errors_flatten_to_dotted_paths():
    errors = {
        "survey": {
            "sections": {"0": {"questions": {"1": {"label": ["Missing data for required field."]}}}}
        },
        "_schema": ["The survey is not publishable."],
        "titles": {"fr": ["missing"], "ar": ["missing", "too long"]},
    }
    assert flatten_errors(errors) == {
        "survey.sections.0.questions.1.label": ["Missing data for required field."],
        "": ["The survey is not publishable."],
        "titles.fr": ["missing"],
        "titles.ar": ["missing", "too long"],
    }
    assert flatten_errors(["one", "two"]) == {"": ["one", "two"]}


def test_a_refusal_goes_next_to_the_fields_the_page_knows_and_the_rest_on_top():
    form = Form.of({"title.fr": "Titre"})
    form.take_refusal(
        "The request is not valid.",
        {"titles": {"fr": ["too long"]}, "min_cell_size": ["at least 5"], "other": ["odd"]},
        fields={"min_cell_size": "k"},
        prefixes=[("titles", "title")],
    )
    assert form.errors_for("title.fr") == ["too long"]
    assert form.errors_for("k") == ["at least 5"]
    assert form.problems == ["other: odd"]
    nested = Form()
    nested.take_refusal(None, {"titles": {"fr": {"value": ["too long"]}}}, {"titles.fr": "title"})
    assert nested.errors_for("title") == ["too long"]
    assert (field_id("title.fr"), "too long") in form.summary()
    bare = Form()
    bare.take_refusal("The consultation is closed.", None)
    assert bare.problems == ["The consultation is closed."] and not bare.ok
