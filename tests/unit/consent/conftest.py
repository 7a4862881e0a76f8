"""Fixtures shared by the consent domain tests: keys and realistic ledgers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.consent import ledger, tokens

BASE_TIME = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
PURPOSES = [
    "participate",
    "aggregate_reporting",
    "quote_anonymised",
    "follow_up_contact",
    "share_with_partners",
]


def ledger_data(i: int, at: str) -> tuple[str, dict]:
    """A plausible entry (kind, data) for position i: mostly grants, some of every other kind."""
    pseudonym, grant_id, consultation = f"p-{i // 3:06x}", f"g-{i // 3:06x}", f"c-{i % 7}"
    choice = i % 20
    if choice == 0:
        return "consent_text.published", {
            "consultation_id": consultation,
            "text_version": 1 + i % 4,
            "language": ["en", "fr", "cy"][i % 3],
            "text_sha256": f"{i:064x}",
        }
    if choice == 1:
        return "release.signed_off", {
            "release_id": f"r-{i}",
            "consultation_id": consultation,
            "snapshot": i,
            "signed_off_by": f"staff-{i % 5}",
            "digest": f"{i * 31:064x}",
        }
    if choice == 2:
        return "response.erased", {
            "response_id": f"resp-{i}",
            "consultation_id": consultation,
            "pseudonym": pseudonym,
            "reason": "withdrawal",
            "erased_at": at,
        }
    if choice in (3, 9, 15):
        return "consent.withdrawn", {
            "grant_id": grant_id,
            "pseudonym": pseudonym,
            "consultation_id": consultation,
            "purposes": ["quote_anonymised"],
            "remaining": ["participate"],
            "all": False,
            "withdrawn_at": at,
        }
    return "consent.granted", {
        "grant_id": grant_id,
        "pseudonym": pseudonym,
        "consultation_id": consultation,
        "purposes": PURPOSES[: 1 + i % 5],
        "text_version": 1 + i % 2,
        "language": ["en", "fr", "cy"][i % 3],
        "text_sha256": f"{i * 7:064x}",
        "collection_method": ["self", "guardian", "facilitator"][i % 3],
        "guardian": i % 3 == 1,
        "granted_at": at,
    }


def build_entries(n: int) -> list[dict]:
    entries, prev = [], None
    for i in range(n):
        at = BASE_TIME + timedelta(seconds=37 * i)
        kind, data = ledger_data(i, ledger.format_timestamp(at))
        prev = ledger.make_entry(prev, kind, data, at)
        entries.append(prev)
    return entries


@pytest.fixture(scope="session")
def signing_key():
    return tokens.generate_signing_key()


@pytest.fixture(scope="session")
def other_key():
    return tokens.generate_signing_key()


# ---------------------------------------------------------------- the consent service in process

ALL_PURPOSES = [
    "participate",
    "aggregate_reporting",
    "quote_anonymised",
    "follow_up_contact",
    "share_with_partners",
]
BODY = {
    "en": "We keep your answers safe. You may skip any question and withdraw at any time.",
    "fr": "Nous protégeons vos réponses. Vous pouvez passer une question et retirer votre accord à tout moment.",
    "ar": "نحافظ على سلامة إجاباتك. يمكنك تخطي أي سؤال والانسحاب في أي وقت.",
}


class ConsentService:
    """A test driver for the consent app: events in, staff and participant calls, the store and the ledger."""

    def __init__(self, app, bus, secrets_env: dict) -> None:
        from shared.runtime import current_runtime

        self.app = app
        self.bus = bus
        self.client = app.test_client()
        self.runtime = current_runtime(app)
        self.context = self.runtime.context
        self.topics = self.runtime.settings.topics
        self.secret = secrets_env["VOICES_INTERNAL_TOKEN"].encode()
        self._count = 0

    # -- HTTP ----------------------------------------------------------------
    def staff(
        self, role: str = "organiser", organisation_id: str | None = "org_a", subject: str = "u_1"
    ) -> dict:
        from shared.auth import Principal, encode_principal

        return encode_principal(
            Principal(kind="staff", role=role, organisation_id=organisation_id, subject=subject),
            self.secret,
        )

    def call(self, method: str, path: str, expect: int, headers: dict | None = None, **kwargs):
        """The JSON body of a call that must answer `expect`; every error must be problem+json."""
        from tests.conftest import call_json

        return call_json(self.client, method, path, expect, headers, **kwargs)

    def organiser(
        self, method: str, path: str, expect: int, organisation_id: str = "org_a", **kwargs
    ):
        return self.call(
            method, path, expect, headers=self.staff("organiser", organisation_id), **kwargs
        )

    def auditor(self, method: str, path: str, expect: int = 200, **kwargs):
        return self.call(method, path, expect, headers=self.staff("auditor", "org_audit"), **kwargs)

    # -- consultations arrive as events from the surveys service ---------------
    def consultation(
        self,
        languages=("en",),
        purposes=ALL_PURPOSES,
        min_age=None,
        organisation_id="org_a",
        publish: bool = True,
        cid: str | None = None,
    ) -> str:
        """A consultation as the surveys service announces it (pass `cid` to announce a change)."""
        from shared.events import Envelope, isoformat, utcnow

        self._count += 1
        cid = cid or f"c_{self._count:04d}"
        common = {
            "consultation_id": cid,
            "organisation_id": organisation_id,
            "languages": list(languages),
            "min_age": min_age,
            "purposes": list(purposes),
        }
        self.bus.publish(
            self.topics.surveys,
            Envelope(
                type="consultation.created",
                key=cid,
                producer="surveys",
                payload={**common, "created_at": isoformat(utcnow())},
            ),
        )
        if publish:
            self.bus.publish(
                self.topics.surveys,
                Envelope(
                    type="consultation.published",
                    key=cid,
                    producer="surveys",
                    payload={
                        **common,
                        "survey_version": 1,
                        "title": "After leaving",
                        "min_cell_size": 10,
                        "questions": [],
                        "published_at": isoformat(utcnow()),
                    },
                ),
            )
        self.bus.deliver()
        return cid

    def status(self, cid: str, status: str, organisation_id: str = "org_a") -> None:
        from shared.events import Envelope, isoformat, utcnow

        self.bus.publish(
            self.topics.surveys,
            Envelope(
                type="consultation.status_changed",
                key=cid,
                producer="surveys",
                payload={
                    "consultation_id": cid,
                    "organisation_id": organisation_id,
                    "status": status,
                    "changed_at": isoformat(utcnow()),
                },
            ),
        )
        self.bus.deliver()

    # -- texts -----------------------------------------------------------------
    def text(
        self,
        cid: str,
        language: str = "en",
        version: int | None = 1,
        expect: int = 201,
        purposes=ALL_PURPOSES,
        organisation_id: str = "org_a",
        **changes,
    ):
        body = {
            "language": language,
            "title": "Your consent",
            "body": BODY.get(language, BODY["en"]),
            "purposes": {p: f"Plain words about {p} ({language})." for p in purposes},
            **changes,
        }
        if version is not None:
            body["version"] = version
        return self.organiser(
            "POST", f"/api/v1/consent/consultations/{cid}/texts", expect, organisation_id, json=body
        )

    def publish_text(
        self, cid: str, version: int = 1, expect: int = 200, organisation_id: str = "org_a"
    ):
        return self.organiser(
            "POST",
            f"/api/v1/consent/consultations/{cid}/texts/{version}/publish",
            expect,
            organisation_id,
        )

    def open_consultation(self, languages=("en",), purposes=ALL_PURPOSES, min_age=None) -> str:
        """A published consultation with a published consent text version 1 in every language."""
        cid = self.consultation(languages, purposes, min_age)
        for language in languages:
            self.text(cid, language, purposes=purposes)
        self.publish_text(cid)
        return cid

    # -- participants ------------------------------------------------------------
    def grant(
        self,
        cid: str,
        pseudonym: str | None = None,
        purposes=("participate", "aggregate_reporting"),
        expect: int = 201,
        language: str = "en",
        text_version: int = 1,
        **extra,
    ):
        self._count += 1
        body = {
            "pseudonym": pseudonym or f"p_{self._count:06d}",
            "consultation_id": cid,
            "purposes": list(purposes),
            "language": language,
            "text_version": text_version,
            **extra,
        }
        return self.call("POST", "/api/v1/consent/grants", expect, json=body)

    def withdraw(self, code: str, purposes=None, expect: int = 200):
        body = {"receipt_code": code}
        if purposes is not None:
            body["purposes"] = list(purposes)
        return self.call("POST", "/api/v1/consent/withdrawals", expect, json=body)

    def lookup(self, code: str, expect: int = 200):
        return self.call(
            "POST", "/api/v1/consent/receipts/lookup", expect, json={"receipt_code": code}
        )

    def public_key_pem(self) -> str:
        return self.call("GET", "/api/v1/consent/public-key", 200)["public_key_pem"]

    # -- events and the ledger ---------------------------------------------------
    def settle(self) -> None:
        """Publish what the outbox holds and let the consumer handle everything (ledger appends)."""
        while self.runtime.relay.relay_once() or self.bus.deliver():
            pass

    def events(self, type_: str) -> list:
        self.runtime.relay.relay_once()
        return [e for e in self.bus.events(self.topics.consent) if e.type == type_]

    def ledger(self) -> list[dict]:
        return self.auditor("GET", "/api/v1/ledger/entries?limit=5000")["entries"]

    def erased(
        self, cid: str, pseudonym: str, response_id: str, reason: str = "withdrawal"
    ) -> None:
        """A response.erased event as the surveys service publishes it."""
        from shared.events import Envelope, isoformat, utcnow

        self.bus.publish(
            self.topics.responses,
            Envelope(
                type="response.erased",
                key=cid,
                producer="surveys",
                payload={
                    "response_id": response_id,
                    "consultation_id": cid,
                    "pseudonym": pseudonym,
                    "reason": reason,
                    "erased_at": isoformat(utcnow()),
                },
            ),
        )
        self.settle()

    # -- the store -----------------------------------------------------------------
    def snapshot(self) -> dict[str, list]:
        """Every stored document, to show that a refused request changed nothing."""
        db = self.runtime.db
        snapshot = {
            name: sorted(db[name].find(), key=lambda d: str(d["_id"]))
            for name in sorted(db.list_collection_names())
        }
        return {name: docs for name, docs in snapshot.items() if docs}


def consent_settings(secrets_env: dict, **extra: str):
    from tests.conftest import make_settings

    settings = make_settings("consent", secrets_env)
    return settings.with_(extra={**settings.extra, **extra})


@pytest.fixture
def consent(secrets_env) -> ConsentService:
    from services.consent.app import create_app
    from shared.in_process_bus import InProcessBus

    bus = InProcessBus()
    app = create_app(consent_settings(secrets_env, LEDGER_CHECKPOINT_EVERY="4"), bus=bus)
    return ConsentService(app, bus, secrets_env)


@pytest.fixture
def unchanged(consent):
    """Use as `with unchanged(): <refused request>`: asserts the store is exactly as before."""
    from tests.conftest import store_unchanged

    return lambda: store_unchanged(consent.snapshot)
