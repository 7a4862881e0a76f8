"""The consent signing key is also a .pem download, the file the ledger verifier takes."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key


def test_the_public_key_downloads_as_a_pem_file(platform):
    download = platform.call("GET", "/api/v1/consent/public-key.pem", expect=200)
    assert download.mimetype == "application/x-pem-file"
    assert download.headers["Content-Disposition"] == 'attachment; filename="consent.pub.pem"'
    as_json = platform.call("GET", "/api/v1/consent/public-key", expect=200).get_json()
    assert download.get_data(True) == as_json["public_key_pem"]
    assert isinstance(load_pem_public_key(download.data), Ed25519PublicKey)
    assert (
        "/api/v1/consent/public-key.pem"
        in platform.call("GET", "/openapi.json", expect=200).get_json()["paths"]
    )
