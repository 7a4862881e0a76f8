"""Consent receipts: what a participant (or their guardian) can keep and show later.

``build_receipt`` turns a grant and what happened to it afterwards into a
JSON receipt with the Kantara Consent Receipt v1.1 fields where they fit
(version "KI-CR-v1.1.0", piiPrincipalId = the pseudonym, services/purposes,
...) plus, in the spirit of ISO/IEC TS 27560, the list of consent events
(granted, withdrawn, answers erased) and the current state of each purpose.
``read_receipt`` recovers the grant and withdrawal payloads from a receipt,
and ``sign_receipt`` / ``verify_signed_receipt`` wrap it in an Ed25519 JWS
so the participant can prove what the service recorded.

Pure module: no storage, no Flask. The receipt holds no personal data
beyond the pseudonym: no name, no answers, never the receipt code.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import jwt

from services.consent.grants import current_purposes
from services.consent.tokens import (
    PrivateKeyLike,
    PublicKeyLike,
    as_private_key,
    as_public_key,
    key_id,
    public_key_to_pem,
)
from shared.errors import ValidationFailed

RECEIPT_VERSION = "KI-CR-v1.1.0"
# Fixed namespace so a grant always gets the same consentReceiptID.
RECEIPT_NAMESPACE = uuid.UUID("7f0c2b8e-5d54-4c36-9a3e-2f6f6b1c9e01")
TERMINATION = (
    "Until you withdraw (at any time, with your receipt code) or the consultation's "
    "retention period ends; then your answers are erased."
)

# Kantara v1.1 Appendix A purpose categories; pii categories in plain words.
DEFAULT_PURPOSES: dict[str, dict[str, Any]] = {
    "participate": {
        "purpose": "Take part: your answers are stored so that the organisers can read and count them.",
        "purposeCategory": ["Core Function"],
        "piiCategory": ["Survey answers"],
        "primaryPurpose": True,
        "thirdPartyDisclosure": False,
    },
    "aggregate_reporting": {
        "purpose": "Your answers are counted in anonymous statistics for policy teams; "
        "groups smaller than the consultation's minimum are never shown.",
        "purposeCategory": ["Core Function"],
        "piiCategory": ["Survey answers"],
        "primaryPurpose": False,
        "thirdPartyDisclosure": False,
    },
    "quote_anonymised": {
        "purpose": "Your written words may be quoted without anything that identifies you.",
        "purposeCategory": ["3rd Party Sharing for Core Function"],
        "piiCategory": ["Free-text answers"],
        "primaryPurpose": False,
        "thirdPartyDisclosure": True,
        "thirdPartyName": "Policy teams receiving released insights",
    },
    "follow_up_contact": {
        "purpose": "The organisers may contact you about this consultation, using contact details you gave.",
        "purposeCategory": ["Contact Requested"],
        "piiCategory": ["Contact"],
        "primaryPurpose": False,
        "thirdPartyDisclosure": False,
    },
    "share_with_partners": {
        "purpose": "Your answers, without your identity, may be shared with the consultation's named partners.",
        "purposeCategory": ["3rd Party Sharing for Core Function"],
        "piiCategory": ["Survey answers"],
        "primaryPurpose": False,
        "thirdPartyDisclosure": True,
    },
}
COLLECTION_METHOD_TEXT = {
    "self": "Online form completed by the participant",
    "guardian": "Online form completed with a parent, guardian or accountable adult, with the participant's assent",
    "facilitator": "Form completed by the participant with a facilitator's help",
}
DEFAULT_SPI_CATEGORIES = ["Experiences of abuse, violence or exploitation", "Health"]


def _epoch_seconds(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp())


def _purpose_entry(purpose: str, catalogue: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    details = {
        **DEFAULT_PURPOSES.get(
            purpose,
            {
                "purpose": purpose,
                "purposeCategory": ["Core Function"],
                "piiCategory": ["Survey answers"],
                "primaryPurpose": False,
                "thirdPartyDisclosure": False,
            },
        ),
        **catalogue.get(purpose, {}),
    }
    return {
        "purpose": details["purpose"],
        "purposeCategory": list(details["purposeCategory"]),
        "consentType": "EXPLICIT",
        "piiCategory": list(details["piiCategory"]),
        "primaryPurpose": bool(details["primaryPurpose"]),
        "termination": details.get("termination", TERMINATION),
        "thirdPartyDisclosure": bool(details["thirdPartyDisclosure"]),
        **({"thirdPartyName": details["thirdPartyName"]} if details.get("thirdPartyName") else {}),
        "purposeId": purpose,
    }


def build_receipt(
    grant: Mapping[str, Any],
    withdrawals: Sequence[Mapping[str, Any]] = (),
    erasures: Sequence[Mapping[str, Any]] = (),
    confirmations: Sequence[Mapping[str, Any]] = (),
    *,
    controller: Mapping[str, Any],
    policy_url: str,
    jurisdiction: str,
    service: str,
    purpose_catalogue: Mapping[str, Mapping[str, Any]] | None = None,
    public_key: PublicKeyLike | None = None,
    guardian_attestation: Mapping[str, Any] | None = None,
    spi_categories: Sequence[str] = DEFAULT_SPI_CATEGORIES,
) -> dict[str, Any]:
    """The receipt (a JSON-ready dict) for ``grant`` after ``withdrawals`` and ``erasures``.

    ``grant`` is the consent.granted payload, ``withdrawals`` the
    consent.withdrawn payloads of that grant, ``erasures`` response.erased
    payloads confirming answers were deleted, ``confirmations`` the
    withdrawal.processed payloads (the surveys service carried out a full
    withdrawal; each counts every response erased because of it so far):
    until one arrives a full withdrawal is "pending_confirmation", then
    "confirmed". ``controller`` is the
    organisation: {piiController, contact, email?, address?, phone?,
    piiControllerUrl?, onBehalf?}. ``purpose_catalogue`` overrides the
    wording per purpose (e.g. share_with_partners' thirdPartyName).
    Raises ValueError if a withdrawal or erasure belongs to another grant
    or participant.
    """
    catalogue = purpose_catalogue or {}
    for withdrawal in withdrawals:
        if withdrawal["grant_id"] != grant["grant_id"]:
            raise ValueError("a withdrawal of another grant was passed in")
    for erasure in erasures:
        if erasure["pseudonym"] != grant["pseudonym"]:
            raise ValueError("an erasure of another participant was passed in")
    ordered = sorted(withdrawals, key=lambda w: w["withdrawn_at"])
    still = current_purposes(grant, ordered)

    if not controller.get("piiController") or not controller.get("contact"):
        raise ValueError("controller needs piiController and contact")
    controller_entry = {
        k: controller[k]
        for k in (
            "piiController",
            "onBehalf",
            "contact",
            "address",
            "email",
            "phone",
            "piiControllerUrl",
        )
        if controller.get(k) is not None
    }

    by = {
        "self": "participant",
        "guardian": "guardian with participant assent",
        "facilitator": "participant with facilitator",
    }[grant["collection_method"]]
    events: list[dict[str, Any]] = [
        {
            "eventType": "granted",
            "eventTime": grant["granted_at"],
            "eventBy": by,
            "purposes": list(grant["purposes"]),
        }
    ]
    for withdrawal in ordered:
        event = {
            "eventType": "withdrawn",
            "eventTime": withdrawal["withdrawn_at"],
            "eventBy": "receipt holder",
            "purposes": list(withdrawal["purposes"]),
            "remaining": list(withdrawal["remaining"]),
            "all": bool(withdrawal["all"]),
        }
        if event["all"]:
            event["erasureStatus"] = "confirmed" if confirmations else "pending_confirmation"
        events.append(event)
    for erasure in sorted(erasures, key=lambda e: e["erased_at"]):
        events.append(
            {
                "eventType": "answers_erased",
                "eventTime": erasure["erased_at"],
                "eventBy": "service",
                "responseId": erasure["response_id"],
                "reason": erasure["reason"],
            }
        )
    for confirmation in sorted(confirmations, key=lambda c: c["processed_at"]):
        events.append(
            {
                "eventType": "erasure_confirmed",
                "eventTime": confirmation["processed_at"],
                "eventBy": "service",
                "responsesErased": confirmation["responses_erased"],
                "keyShredded": confirmation["key_shredded"],
            }
        )

    status = {p: ("given" if p in still else "withdrawn") for p in grant["purposes"]}
    receipt: dict[str, Any] = {
        "version": RECEIPT_VERSION,
        "jurisdiction": jurisdiction,
        "consentTimestamp": _epoch_seconds(grant["granted_at"]),
        "collectionMethod": COLLECTION_METHOD_TEXT[grant["collection_method"]],
        "consentReceiptID": str(uuid.uuid5(RECEIPT_NAMESPACE, grant["grant_id"])),
        "language": grant["language"],
        "piiPrincipalId": grant["pseudonym"],
        "piiControllers": [controller_entry],
        "policyUrl": policy_url,
        "services": [
            {
                "service": service,
                "purposes": [_purpose_entry(p, catalogue) for p in grant["purposes"]],
            }
        ],
        "sensitive": True,
        "spiCat": list(spi_categories),
        # Voices extensions: what a Kantara receipt has no field for.
        "grantId": grant["grant_id"],
        "consultationId": grant["consultation_id"],
        "collectionMethodCode": grant["collection_method"],
        "guardian": bool(grant["guardian"]),
        "consentText": {
            "version": grant["text_version"],
            "language": grant["language"],
            "sha256": grant["text_sha256"],
        },
        "events": events,
        "purposeStatus": status,
        "consentStatus": (
            "active"
            if len(still) == len(grant["purposes"])
            else "withdrawn"
            if not still
            else "partially_withdrawn"
        ),
    }
    if public_key is not None:
        receipt["publicKey"] = public_key_to_pem(as_public_key(public_key)).decode("ascii")
    if guardian_attestation is not None:
        receipt["guardianAttestation"] = {
            "relationship": guardian_attestation["relationship"],
            "participantAssent": bool(guardian_attestation["participant_assent"]),
        }
    return receipt


def read_receipt(receipt: Mapping[str, Any]) -> dict[str, Any]:
    """Recover {"grant", "withdrawals", "erasures"} payloads from a receipt built by ``build_receipt``.

    Raises ValidationFailed when the receipt is not one of ours (wrong version
    or missing fields).
    """
    try:
        if receipt["version"] != RECEIPT_VERSION:
            raise KeyError("version")
        granted = next(e for e in receipt["events"] if e["eventType"] == "granted")
        grant = {
            "grant_id": receipt["grantId"],
            "pseudonym": receipt["piiPrincipalId"],
            "consultation_id": receipt["consultationId"],
            "purposes": list(granted["purposes"]),
            "text_version": receipt["consentText"]["version"],
            "language": receipt["consentText"]["language"],
            "text_sha256": receipt["consentText"]["sha256"],
            "collection_method": receipt["collectionMethodCode"],
            "guardian": receipt["guardian"],
            "granted_at": granted["eventTime"],
        }
        withdrawals = [
            {
                "grant_id": receipt["grantId"],
                "pseudonym": receipt["piiPrincipalId"],
                "consultation_id": receipt["consultationId"],
                "purposes": list(e["purposes"]),
                "remaining": list(e["remaining"]),
                "all": e["all"],
                "withdrawn_at": e["eventTime"],
            }
            for e in receipt["events"]
            if e["eventType"] == "withdrawn"
        ]
        erasures = [
            {
                "response_id": e["responseId"],
                "consultation_id": receipt["consultationId"],
                "pseudonym": receipt["piiPrincipalId"],
                "reason": e["reason"],
                "erased_at": e["eventTime"],
            }
            for e in receipt["events"]
            if e["eventType"] == "answers_erased"
        ]
    except (KeyError, TypeError, StopIteration):
        raise ValidationFailed(
            "This is not a Voices consent receipt.",
            errors={"receipt": [f"Expected a {RECEIPT_VERSION} receipt from Voices."]},
        ) from None
    return {"grant": grant, "withdrawals": withdrawals, "erasures": erasures}


def sign_receipt(receipt: Mapping[str, Any], private_key: PrivateKeyLike) -> str:
    """The receipt as a compact Ed25519 JWS (the Kantara "signed receipt" form)."""
    signer = as_private_key(private_key)
    return jwt.encode(
        dict(receipt), signer, algorithm="EdDSA", headers={"kid": key_id(signer), "typ": "JWT"}
    )


def verify_signed_receipt(token: str, public_key: PublicKeyLike) -> dict[str, Any]:
    """The receipt inside a signed receipt; raises ValidationFailed if the signature or format is wrong."""
    try:
        receipt = jwt.decode(
            token,
            as_public_key(public_key),
            algorithms=["EdDSA"],
            options={"verify_aud": False, "verify_iat": False, "verify_exp": False},
        )
    except jwt.PyJWTError:
        raise ValidationFailed(
            "The receipt signature does not verify.",
            errors={"receipt": ["Not signed by the Voices consent service."]},
        ) from None
    if receipt.get("version") != RECEIPT_VERSION:
        raise ValidationFailed(
            "This is not a Voices consent receipt.",
            errors={"receipt": [f"Expected a {RECEIPT_VERSION} receipt."]},
        )
    return receipt
