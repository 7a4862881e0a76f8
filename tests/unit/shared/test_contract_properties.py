"""Whatever passes an event contract, its handlers either take or refuse on purpose.

Hypothesis builds payloads from the marshmallow contracts themselves (every field, its
validators, optional and nullable parts), checks each one validates, and hands sequences of them
to every service's handlers: the only exceptions allowed are the domain's declared rejections
(`DomainError`), which the consumer dead-letters. Anything else would be retried and then
dead-lettered as a handler error, so it is a bug in a contract or a handler.
"""

from __future__ import annotations

import functools
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import Schema, fields, validate

from shared.errors import DomainError
from shared.events import CONTRACTS, Envelope
from shared.in_process_bus import InProcessBus
from tests.conftest import make_settings

# Small pools for the ids events share, so that generated events meet each other's state
# (a response for a consultation that was published, a withdrawal of a pseudonym that answered).
POOLS = {
    "consultation_id": ["c_1", "c_2"],
    "pseudonym": ["p_AAAAAAAAAAAAAAAAAAAAAA", "p_BBBBBBBBBBBBBBBBBBBBBB", "p3"],
    "question_id": ["q1", "q2"],
    "response_id": ["r_1", "r_2"],
    "quote_id": ["quote_1"],
    "grant_id": ["g_1"],
    "release_id": ["rel_1"],
}
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
JSON_VALUES = st.one_of(JSON_SCALARS, st.lists(st.text(max_size=8), max_size=3))


def _validators(field: fields.Field, kind: type) -> list:
    return [v for v in field.validators if isinstance(v, kind)]


def _string(name: str, field: fields.String) -> st.SearchStrategy:
    for one_of in _validators(field, validate.OneOf):
        return st.sampled_from(list(one_of.choices))
    for regexp in _validators(field, validate.Regexp):
        generated = st.from_regex(regexp.regex, fullmatch=True)
        pool = POOLS.get(name)
        return st.one_of(st.sampled_from(pool), generated) if pool else generated
    lengths = _validators(field, validate.Length)
    low = lengths[0].min if lengths and lengths[0].min is not None else 0
    high = lengths[0].max if lengths and lengths[0].max is not None else 40
    return st.text(min_size=low, max_size=min(high, 40))


def _number(field: fields.Field, integer: bool) -> st.SearchStrategy:
    ranges = _validators(field, validate.Range)
    low = ranges[0].min if ranges else None
    high = ranges[0].max if ranges else None
    if integer:
        return st.integers(
            min_value=-(2**31) if low is None else low, max_value=2**31 if high is None else high
        )
    return st.floats(
        min_value=low,
        max_value=high,
        exclude_min=bool(ranges and low is not None and not ranges[0].min_inclusive),
        exclude_max=bool(ranges and high is not None and not ranges[0].max_inclusive),
        allow_nan=False,
        allow_infinity=False,
    )


def field_strategy(name: str, field: fields.Field) -> st.SearchStrategy:
    if isinstance(field, fields.Nested):
        nested = field.nested
        schema = nested() if isinstance(nested, type) else nested
        strategy = schema_strategy(schema)
    elif isinstance(field, fields.List):
        strategy = st.lists(field_strategy(name, field.inner), max_size=4)
    elif isinstance(field, fields.Dict):
        keys = field.key_field if field.key_field is not None else fields.String()
        values = (
            JSON_VALUES if field.value_field is None else field_strategy(name, field.value_field)
        )
        key_name = "question_id" if name == "answers" else f"{name}_key"  # answers: by question
        strategy = st.dictionaries(field_strategy(key_name, keys), values, max_size=4)
    elif isinstance(field, fields.Boolean):
        strategy = st.booleans()
    elif isinstance(field, fields.Integer):
        strategy = _number(field, integer=True)
    elif isinstance(field, fields.Float):
        strategy = _number(field, integer=False)
    elif isinstance(field, fields.String):
        strategy = _string(name, field)
    else:
        raise AssertionError(f"no strategy for {type(field).__name__} ({name})")
    return st.one_of(st.none(), strategy) if field.allow_none else strategy


def schema_strategy(schema: Schema) -> st.SearchStrategy:
    required = {n: field_strategy(n, f) for n, f in schema.fields.items() if f.required}
    optional = {n: field_strategy(n, f) for n, f in schema.fields.items() if not f.required}
    return st.fixed_dictionaries(required, optional=optional)


def event_strategy() -> st.SearchStrategy:
    return st.sampled_from(sorted(CONTRACTS)).flatmap(
        lambda kind: schema_strategy(CONTRACTS[kind]()).map(
            lambda payload: Envelope(
                type=kind[0],
                version=kind[1],
                key=str(payload.get("consultation_id") or payload.get("pseudonym") or "k"),
                producer="property-test",
                payload=payload,
            )
        )
    )


@pytest.fixture
def services(secrets_env):
    """Each service's app (mongomock, in-process bus); their dispatchers are the handlers."""
    from services.aggregation.app import create_app as aggregation
    from services.consent.app import create_app as consent
    from services.surveys.app import create_app as surveys

    apps = []
    for name, create in (("surveys", surveys), ("consent", consent), ("aggregation", aggregation)):
        apps.append(create(make_settings(name, secrets_env), bus=InProcessBus()))
    return [app.extensions["voices_runtime"] for app in apps]


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(events=st.lists(event_strategy(), min_size=1, max_size=6))
def test_handlers_raise_nothing_but_declared_rejections_for_valid_events(services, events):
    for event in events:
        parsed = Envelope.parse(event.to_dict())  # the generator only makes contract-valid events
        assert parsed.payload == event.payload
        for runtime in services:
            try:
                runtime.dispatcher(parsed)
            except DomainError:
                pass  # a declared rejection: dead-lettered with its reason


@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_the_generator_makes_only_contract_valid_payloads_for_every_contract(data):
    for contract in CONTRACTS.values():
        payload = data.draw(schema_strategy(contract()))
        assert contract().validate(payload) == {}, payload
        assert not any(isinstance(v, float) and math.isnan(v) for v in payload.values())


IDENTIFIER_FIELDS = sorted(
    (kind, name)
    for kind, contract in CONTRACTS.items()
    for name, field in contract().fields.items()
    if name.endswith(("_id", "_by")) or name == "pseudonym"
)


@pytest.mark.parametrize("kind,name", IDENTIFIER_FIELDS)
@pytest.mark.parametrize("bad", ["", " ", "c 1", "x\n", "é" * 3, "a" * 201])
def test_every_identifier_in_every_contract_is_refused_empty_or_malformed(kind, name, bad):
    payload = dict(_a_valid_payload(kind))
    payload[name] = bad
    assert name in CONTRACTS[kind]().validate(payload)


@functools.cache
def _a_valid_payload(kind) -> dict:
    @settings(max_examples=1, deadline=None, database=None)
    @given(schema_strategy(CONTRACTS[kind]()))
    def keep(payload):
        found.append(payload)

    found: list[dict] = []
    keep()
    return found[0]
