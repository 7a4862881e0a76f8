"""Staff accounts and API tokens (service layer: models, no Flask)."""
from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime, timedelta, timezone

from mongoengine.errors import NotUniqueError

from gateway.models import Account, ApiToken, Organisation
from shared.auth import Principal
from shared.errors import Conflict, NotFound, Unauthorized, ValidationFailed

TOKEN_PREFIX = "vt_"


def _hash(token: str) -> str:
    # API tokens carry 256 random bits, so a plain SHA-256 is enough; passwords use argon2.
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def create_organisation(name: str) -> Organisation:
    organisation = Organisation(organisation_id=f"o_{uuid.uuid4().hex[:16]}", name=name)
    try:
        organisation.save(force_insert=True)
    except NotUniqueError:
        raise Conflict(f"An organisation named {name!r} exists already.") from None
    return organisation


def create_account(email: str, role: str, organisation_id: str | None,
                   readable_organisations: list[str] | None = None) -> Account:
    """A staff account. Every role but admin belongs to an organisation. Raises ValidationFailed, Conflict."""
    if role != "admin":
        if not organisation_id:
            raise ValidationFailed("Staff other than admins belong to an organisation.",
                                   errors={"organisation_id": ["required for this role"]})
        if Organisation.objects(organisation_id=organisation_id).first() is None:
            raise ValidationFailed("No such organisation.", errors={"organisation_id": ["unknown organisation"]})
    account = Account(account_id=f"a_{uuid.uuid4().hex[:16]}", email=email.strip().lower(), role=role,
                      organisation_id=organisation_id, readable_organisations=readable_organisations or [])
    try:
        account.save(force_insert=True)
    except NotUniqueError:
        raise Conflict("An account with this email exists already.") from None
    return account


def issue_token(account: Account, label: str | None = None, ttl: timedelta = timedelta(days=90),
                token: str | None = None) -> tuple[ApiToken, str]:
    """A new API token for `account`; the token string is returned once and never stored."""
    token = token or TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = ApiToken(token_hash=_hash(token), token_id=f"t_{uuid.uuid4().hex[:16]}", account_id=account.account_id,
                      label=label, expires_at=datetime.now(timezone.utc) + ttl)
    record.save(force_insert=True)
    return record, token


def revoke_token(token_id: str, by: Principal) -> ApiToken:
    """Revoke one of the caller's tokens (admins may revoke any). Raises NotFound."""
    record = ApiToken.objects(token_id=token_id).first()
    if record is None or (by.role != "admin" and record.account_id != by.subject):
        raise NotFound("No such token.")
    ApiToken.objects(token_id=token_id).update_one(set__revoked=True)
    record.reload()
    return record


def authenticate_token(token: str, now: datetime | None = None) -> Principal:
    """The staff principal behind a bearer token. Raises Unauthorized for unknown, expired or revoked tokens."""
    now = now or datetime.now(timezone.utc)
    record = ApiToken.objects(token_hash=_hash(token)).first()
    if record is None:
        raise Unauthorized("The API token is not valid.")
    if record.revoked:
        raise Unauthorized("The API token was revoked.")
    if _aware(record.expires_at) <= now:
        raise Unauthorized("The API token has expired.")
    account = Account.objects(account_id=record.account_id).first()
    if account is None or account.disabled:
        raise Unauthorized("The account behind this token is disabled.")
    return principal_of(account)


def principal_of(account: Account) -> Principal:
    return Principal(kind="staff", subject=account.account_id, role=account.role,
                     organisation_id=account.organisation_id,
                     readable_organisations=tuple(account.readable_organisations))


def bootstrap_admin(token: str) -> None:
    """Make sure an admin account answers to `token` (first start of an installation)."""
    if ApiToken.objects(token_hash=_hash(token)).first() is not None:
        return
    admin = Account.objects(email="admin@localhost").first() or create_account("admin@localhost", "admin", None)
    issue_token(admin, label="bootstrap", ttl=timedelta(days=365), token=token)
