"""The verifier's command line: ``voices-verify-ledger`` and ``python -m services.consent.verify``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .export import verify_export
from .proofs import load_public_keys


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the exit status (0 ok, 1 bad export, 2 unusable input)."""
    parser = argparse.ArgumentParser(
        prog="voices-verify-ledger",
        description="Verify a Voices consent-ledger export with the public key only.",
    )
    parser.add_argument("export", help="the JSON-lines export")
    parser.add_argument("public_key", help="PEM file with the ledger's Ed25519 public key(s)")
    parser.add_argument(
        "--since",
        action="append",
        default=[],
        metavar="CHECKPOINT.json",
        help="a checkpoint you kept earlier; the export must extend it (repeatable)",
    )
    parser.add_argument(
        "--allow-unsigned-tail",
        action="store_true",
        help="accept entries after the last signed checkpoint (exports end in one, so by "
        "default they fail)",
    )
    parser.add_argument(
        "--strict", action="store_true", help="the default; kept so older scripts still run"
    )
    args = parser.parse_args(argv)
    try:
        with open(args.public_key, "rb") as handle:
            keys = load_public_keys(handle.read())
        trusted = []
        for path in args.since:
            with open(path, "rb") as handle:
                trusted.append(json.loads(handle.read().decode("utf-8")))
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not keys:
        print(f"error: no Ed25519 public key in {args.public_key}", file=sys.stderr)
        return 2
    try:
        with open(args.export, "rb") as handle:
            report = verify_export(
                handle, keys, trusted=trusted, strict=not args.allow_unsigned_tail
            )
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.message())
    return 0 if report.ok else 1
