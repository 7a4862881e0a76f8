"""Oversight pages of the staff area: released results for policy teams (charts and tables), the
consent ledger for auditors, and administration (organisations, accounts, tokens).

Each module is a staff blueprint (gateway/web/staff/README.md); `BLUEPRINTS` lists them for
`init_staff`. Their strings are the `oversight` catalog.
"""

from __future__ import annotations

from flask import Blueprint


def blueprints() -> tuple[Blueprint, ...]:
    from gateway.web.oversight.admin import admin
    from gateway.web.oversight.assets import assets
    from gateway.web.oversight.insights import insights
    from gateway.web.oversight.ledger import ledger

    return (assets, insights, ledger, admin)
