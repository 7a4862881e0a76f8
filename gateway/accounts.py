"""Staff accounts, API tokens, passwords and sign-in sessions (service layer: models, no Flask).

Participants never have accounts (see gateway/participant_sessions.py).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from mongoengine.errors import NotUniqueError

from gateway.models import Account, ApiToken, Organisation, PasswordLink, StaffSession
from shared.auth import ORGANISATION_LESS_ROLES, ROLES, Principal
from shared.errors import Conflict, NotFound, ServiceUnavailable, Unauthorized, ValidationFailed

TOKEN_PREFIX = "vt_"  # noqa: S105 a prefix, not a secret
SESSION_PREFIX = "vs_"
SESSION_TTL = timedelta(hours=8)
SEEN_PRECISION = timedelta(minutes=1)  # how exactly a session's last use is recorded
DEVICE_TTL = timedelta(days=180)
PASSWORD_LINK_TTL = timedelta(days=3)
MIN_PASSWORD, MAX_PASSWORD = 12, 256
_hasher = PasswordHasher()  # argon2id with the library's defaults (RFC 9106 low-memory profile)
_measured: dict[str, float] = {}  # seconds one verification takes at the current cost
_measured_lock = threading.Lock()
# Password checks running at once per process, each pool apart: sign-ins from browsers no owner used
# ("new") can never take the CPU and memory that checks from known browsers and signed-in staff
# ("known") need. A check waits at most HASHING_WAIT_S for its turn.
HASHING_AT_ONCE = 2
HASHING_WAIT_S = 5.0
_hashing = {pool: threading.BoundedSemaphore(HASHING_AT_ONCE) for pool in ("new", "known")}


def configure_password_hashing(time_cost: int | None = None, memory_kib: int | None = None) -> None:
    """Set the argon2 cost for new hashes (VOICES_ARGON2_TIME_COST, VOICES_ARGON2_MEMORY_KIB).
    Existing hashes keep verifying; they are rehashed at the next sign-in."""
    global _hasher  # noqa: PLW0603 one hasher per process, set once at start from the settings
    defaults = PasswordHasher()
    _hasher = PasswordHasher(
        time_cost=time_cost or defaults.time_cost,
        memory_cost=memory_kib or defaults.memory_cost,
        parallelism=defaults.parallelism,
    )
    with _measured_lock:
        _measured.clear()


def _hash(token: str) -> str:
    # API tokens carry 256 random bits, so a plain SHA-256 is enough; passwords use argon2.
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def create_organisation(name: str) -> Organisation:
    organisation = Organisation(organisation_id=f"o_{uuid.uuid4().hex[:16]}", name=name)
    try:
        organisation.save(force_insert=True)
    except NotUniqueError:
        raise Conflict(f"An organisation named {name!r} exists already.") from None
    return organisation


def _known_organisations(ids: list[str], field: str) -> None:
    known = {o.organisation_id for o in Organisation.objects(organisation_id__in=list(ids))}
    unknown = sorted(set(ids) - known)
    if unknown:
        raise ValidationFailed(
            "No such organisation.", errors={field: [f"unknown organisation {i}" for i in unknown]}
        )


def _check_readable(role: str, readable_organisations: list[str]) -> None:
    # Read access to other organisations' releases is a policy analyst's grant only.
    if readable_organisations and role != "policy":
        raise ValidationFailed(
            "Only policy accounts read other organisations' releases.",
            errors={"readable_organisations": ["allowed for the policy role only"]},
        )
    _known_organisations(readable_organisations, "readable_organisations")


def create_account(
    email: str,
    role: str,
    organisation_id: str | None,
    readable_organisations: list[str] | None = None,
) -> Account:
    """A staff account. Every role but admin and platform auditor belongs to an organisation; those two
    belong to none. Raises ValidationFailed, Conflict."""
    if role not in ROLES:
        raise ValidationFailed("Unknown role.", errors={"role": [f"one of {', '.join(ROLES)}"]})
    if role == "platform_auditor" and organisation_id:
        raise ValidationFailed(
            "Platform auditors belong to no organisation.",
            errors={"organisation_id": ["must be empty for this role"]},
        )
    if role not in ORGANISATION_LESS_ROLES:
        if not organisation_id:
            raise ValidationFailed(
                "Staff other than admins and platform auditors belong to an organisation.",
                errors={"organisation_id": ["required for this role"]},
            )
        if Organisation.objects(organisation_id=organisation_id).first() is None:
            raise ValidationFailed(
                "No such organisation.", errors={"organisation_id": ["unknown organisation"]}
            )
    _check_readable(role, readable_organisations or [])
    account = Account(
        account_id=f"a_{uuid.uuid4().hex[:16]}",
        email=email.strip().lower(),
        role=role,
        organisation_id=organisation_id,
        readable_organisations=readable_organisations or [],
    )
    try:
        account.save(force_insert=True)
    except NotUniqueError:
        raise Conflict("An account with this email exists already.") from None
    return account


def issue_token(
    account: Account,
    label: str | None = None,
    ttl: timedelta = timedelta(days=90),
    token: str | None = None,
) -> tuple[ApiToken, str]:
    """A new API token for `account`; the token string is returned once and never stored."""
    token = token or TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = ApiToken(
        token_hash=_hash(token),
        token_id=f"t_{uuid.uuid4().hex[:16]}",
        account_id=account.account_id,
        label=label,
        expires_at=datetime.now(UTC) + ttl,
    )
    record.save(force_insert=True)
    return record, token


def update_account(account_id: str, changes: dict) -> Account:
    """Change an account's role, disabled flag or readable organisations (admins). Disabling or
    changing the role ends its sign-in sessions. Raises NotFound, ValidationFailed."""
    account = get_account(account_id)
    role = changes.get("role", account.role)
    organisation_id = account.organisation_id
    if role not in ORGANISATION_LESS_ROLES and not organisation_id:
        raise ValidationFailed(
            "Staff other than admins and platform auditors belong to an organisation.",
            errors={"role": ["this account has no organisation"]},
        )
    if role == "platform_auditor" and organisation_id:
        # A platform auditor reads every organisation's ledger: an account of one organisation never becomes one.
        raise ValidationFailed(
            "Platform auditors belong to no organisation.",
            errors={"role": ["create a new account without an organisation for this role"]},
        )
    readable = changes.get("readable_organisations", list(account.readable_organisations))
    if role != "policy" and "readable_organisations" not in changes:
        readable = []  # a grant that only made sense for the old role lapses with it
    _check_readable(role, readable)
    updates = {"set__role": role, "set__readable_organisations": readable}
    if "disabled" in changes:
        updates["set__disabled"] = bool(changes["disabled"])
    Account.objects(account_id=account_id).update_one(**updates)
    if changes.get("disabled") or role != account.role:
        end_sessions(account_id)
    account.reload()
    return account


def get_account(account_id: str) -> Account:
    """Raises NotFound."""
    account = Account.objects(account_id=account_id).first()
    if account is None:
        raise NotFound("No such account.")
    return account


def tokens_of(account_id: str) -> list[ApiToken]:
    return list(ApiToken.objects(account_id=account_id).order_by("-created_at"))


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
    now = now or datetime.now(UTC)
    record = ApiToken.objects(token_hash=_hash(token)).first()
    if record is None:
        raise Unauthorized("The API token is not valid.")
    if record.revoked:
        raise Unauthorized("The API token was revoked.")
    if _aware(record.expires_at) <= now:
        raise Unauthorized("The API token has expired.")
    return principal_of(_active_account(record.account_id))


def credential_key(secret: str) -> str:
    """A stable, non-secret name for a credential (rate-limit buckets are kept per credential)."""
    return _hash(secret)[:32]


def _active_account(account_id: str) -> Account:
    account = Account.objects(account_id=account_id).first()
    if account is None or account.disabled:
        raise Unauthorized("The account behind these credentials is disabled.")
    return account


# ---- passwords ------------------------------------------------------------------------------
def _check_password_rules(password: str) -> None:
    if not (MIN_PASSWORD <= len(password) <= MAX_PASSWORD):
        raise ValidationFailed(
            "The password does not meet the rules.",
            errors={"password": [f"between {MIN_PASSWORD} and {MAX_PASSWORD} characters"]},
        )


def set_password(account_id: str, password: str) -> Account:
    """Store the argon2 hash of a new password and end the account's sessions. Raises NotFound, ValidationFailed."""
    _check_password_rules(password)
    account = get_account(account_id)
    Account.objects(account_id=account_id).update_one(set__password_hash=_hasher.hash(password))
    end_sessions(account_id)
    account.reload()
    return account


def change_own_password(account_id: str, current: str, new: str) -> Account:
    """Raises Unauthorized when `current` is wrong, ValidationFailed for a weak new password."""
    account = get_account(account_id)
    if not _verify(account.password_hash, current, "known"):
        raise Unauthorized("The current password is not correct.")
    return set_password(account_id, new)


def _verification_seconds() -> float:
    """How long one password verification takes here (measured once per hashing cost)."""
    with _measured_lock:
        if "seconds" not in _measured:
            dummy = _hasher.hash(secrets.token_urlsafe(16))
            started = time.perf_counter()
            _verify_quietly(dummy, "not the password", "new")
            _measured["seconds"] = time.perf_counter() - started
        return _measured["seconds"]


def _verify_quietly(stored: str, password: str, pool: str) -> bool:
    """Whether `password` matches `stored`, checked in its turn in `pool` ("new" or "known").
    Raises ServiceUnavailable when no turn comes within HASHING_WAIT_S."""
    turn = _hashing[pool]
    if not turn.acquire(timeout=HASHING_WAIT_S):
        raise ServiceUnavailable("Signing in is busy. Please try again in a moment.", retry_after=5)
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    finally:
        turn.release()


def _verify(stored: str | None, password: str, pool: str) -> bool:
    if stored is None:
        # No account (or no password yet): wait as long as a verification takes, so timing tells
        # nothing about who exists, without doing the work: addresses made up by the thousand
        # cost neither CPU nor argon2's memory.
        time.sleep(_verification_seconds())
        return False
    return _verify_quietly(stored, password, pool)


def create_password_link(
    account_id: str, ttl: timedelta = PASSWORD_LINK_TTL
) -> tuple[PasswordLink, str]:
    """A one-time set-password code for an account (earlier unused codes stop working).
    The code is returned once and never stored. Raises NotFound."""
    get_account(account_id)
    PasswordLink.objects(account_id=account_id, used=False).update(set__used=True)
    code = secrets.token_urlsafe(32)
    link = PasswordLink(
        code_hash=_hash(code), account_id=account_id, expires_at=datetime.now(UTC) + ttl
    )
    link.save(force_insert=True)
    return link, code


def redeem_password_link(code: str, password: str, now: datetime | None = None) -> Account:
    """Set the password with a one-time code. Raises Unauthorized (unknown, used or expired code),
    ValidationFailed (weak password; the code stays usable)."""
    now = now or datetime.now(UTC)
    _check_password_rules(password)
    link = PasswordLink.objects(code_hash=_hash(code)).first()
    if link is None or link.used or _aware(link.expires_at) <= now:
        raise Unauthorized(
            "This set-password link is not valid any more. Ask an admin for a new one."
        )
    # Compare-and-set: of two concurrent uses, exactly one flips `used`.
    if PasswordLink.objects(code_hash=link.code_hash, used=False).update_one(set__used=True) != 1:
        raise Unauthorized(
            "This set-password link is not valid any more. Ask an admin for a new one."
        )
    return set_password(link.account_id, password)


# ---- sign-in sessions -------------------------------------------------------------------------
def sign_in(
    email: str, password: str, ttl: timedelta = SESSION_TTL, known_browser: bool = False
) -> tuple[StaffSession, str, Account]:
    """A new session for the account with this email and password; the cookie value is returned once.
    Raises Unauthorized with the same message for any wrong email, wrong password or disabled account."""
    account = Account.objects(email=email.strip().lower()).first()
    pool = "known" if known_browser else "new"
    if (
        not _verify(account.password_hash if account else None, password, pool)
        or account is None
        or account.disabled
    ):
        raise Unauthorized("The email or password is not correct.")
    if _hasher.check_needs_rehash(account.password_hash):
        Account.objects(account_id=account.account_id).update_one(
            set__password_hash=_hasher.hash(password)
        )
    value = SESSION_PREFIX + secrets.token_urlsafe(32)
    session = StaffSession(
        session_hash=_hash(value),
        session_id=f"s_{uuid.uuid4().hex[:16]}",
        account_id=account.account_id,
        expires_at=datetime.now(UTC) + ttl,
    )
    session.save(force_insert=True)
    return session, value, account


def _device_mac(email: str, nonce: str, secret: bytes) -> str:
    message = f"staff-device:{email.strip().lower()}:{nonce}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def device_cookie(email: str, secret: bytes) -> str:
    """A cookie value marking a browser its owner signed in from (or set a password from) for `email`."""
    nonce = secrets.token_urlsafe(16)
    return f"{nonce}.{_device_mac(email, nonce, secret)}"


def device_key(value: str | None, email: str, secret: bytes) -> str | None:
    """The rate-limit key of sign-in attempts for `email` from a browser marked by `device_cookie`,
    or None when the value is missing or not for this address. Attempts from such a browser have
    their own budget, so a flood of wrong passwords from elsewhere never locks its owner out."""
    nonce, _, mac = (value or "").partition(".")
    if not nonce or not hmac.compare_digest(
        mac.encode(), _device_mac(email, nonce, secret).encode()
    ):
        return None
    return "device:" + _hash(value or "")[:32]


def authenticate_session(
    value: str, now: datetime | None = None, idle: timedelta | None = None
) -> Principal:
    """The staff principal behind a session cookie. With `idle`, a session unused for that long
    ends here (and is marked used otherwise). Raises Unauthorized for unknown, ended, idle or
    expired sessions."""
    now = now or datetime.now(UTC)
    session = StaffSession.objects(session_hash=_hash(value)).first()
    if session is None or session.revoked or _aware(session.expires_at) <= now:
        raise Unauthorized("Your session has ended. Please sign in again.")
    if idle is not None:
        last_seen = _aware(session.last_seen_at or session.created_at)
        if last_seen + idle <= now:
            StaffSession.objects(session_hash=session.session_hash).update_one(set__revoked=True)
            raise IdleSessionEnded("Your session ended after a time without activity.")
        if now - last_seen >= SEEN_PRECISION:
            # One write a minute at most: every page view need not write the session.
            StaffSession.objects(session_hash=session.session_hash).update_one(
                set__last_seen_at=now
            )
    return principal_of(_active_account(session.account_id))


class IdleSessionEnded(Unauthorized):
    """A session ended because it was not used for its idle time."""


def sign_out(value: str) -> None:
    """End the session behind a cookie value; unknown values change nothing."""
    StaffSession.objects(session_hash=_hash(value)).update_one(set__revoked=True)


def end_sessions(account_id: str) -> int:
    """End every session of an account (password change, disabling); returns how many."""
    return StaffSession.objects(account_id=account_id, revoked=False).update(set__revoked=True)


def principal_of(account: Account) -> Principal:
    return Principal(
        kind="staff",
        subject=account.account_id,
        role=account.role,
        organisation_id=account.organisation_id,
        readable_organisations=tuple(account.readable_organisations),
    )


def bootstrap_admin(token: str) -> None:
    """Make sure an admin account answers to `token` (first start of an installation).

    Every gateway worker runs this at start, at the same moment: a worker that loses the race
    for the account or the token uses what the winner stored.
    """
    if ApiToken.objects(token_hash=_hash(token)).first() is not None:
        return
    admin = Account.objects(email="admin@localhost").first()
    if admin is None:
        try:
            admin = create_account("admin@localhost", "admin", None)
        except Conflict:
            admin = Account.objects(email="admin@localhost").get()
    try:
        issue_token(admin, label="bootstrap", ttl=timedelta(days=365), token=token)
    except NotUniqueError:
        pass  # another worker stored this token first
