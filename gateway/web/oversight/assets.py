"""The oversight pages' stylesheets (screen and print), served from this package."""

from __future__ import annotations

from flask import Blueprint

assets = Blueprint(
    "oversight_assets",
    __name__,
    static_folder="static",
    static_url_path="/staff/oversight/static",
)
