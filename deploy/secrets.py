"""Keys and secrets: print a fresh set for .env (docker-compose) or a Kubernetes Secret.

`make run` keeps one set in its data folder (see deploy/run.py); the tests make one per run.
"""

from __future__ import annotations

import base64
import os


def generate_secrets() -> dict[str, str]:
    """A fresh set: consent signing key, data-key wrapping key, code pepper, internal token, session secret."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "VOICES_CONSENT_SIGNING_KEY": base64.b64encode(private_pem).decode(),
        "VOICES_CONSENT_PUBLIC_KEY": base64.b64encode(public_pem).decode(),
        "VOICES_DATA_KEY_WRAPPING_KEY": base64.b64encode(os.urandom(32)).decode(),
        "VOICES_CODE_PEPPER": base64.b64encode(os.urandom(32)).decode(),
        "VOICES_INTERNAL_TOKEN": base64.urlsafe_b64encode(os.urandom(24)).decode(),
        "VOICES_SESSION_SECRET": base64.urlsafe_b64encode(os.urandom(32)).decode(),
    }


if __name__ == "__main__":
    for name, value in generate_secrets().items():
        print(f"{name}={value}")
