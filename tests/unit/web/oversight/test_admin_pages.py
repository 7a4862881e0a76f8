"""Administration pages: organisations, accounts, set-password links and API tokens."""

from __future__ import annotations

import re

from gateway.models import Account, ApiToken, Organisation


def test_admin_creates_an_organisation_and_an_organiser_and_hands_over_a_link(
    staff_browser, platform
):
    admin = staff_browser("admin")
    admin.get("/staff/admin/organisations")
    made = admin.post("/staff/admin/organisations", {"name": "Survivors North"})
    assert made.status_code == 303
    organisation = Organisation.objects(name="Survivors North").first()
    assert organisation is not None

    admin.get("/staff/admin/organisations")
    twice = admin.post("/staff/admin/organisations", {"name": "Survivors North"})
    assert twice.status_code == 400 and 'id="f-name-error"' in twice.get_data(as_text=True)
    assert Organisation.objects(name="Survivors North").count() == 1

    admin.get("/staff/admin/accounts")
    created = admin.post(
        "/staff/admin/accounts",
        {
            "email": "Amal@Example.org",
            "role": "organiser",
            "organisation_id": organisation.organisation_id,
        },
    )
    assert created.status_code == 303
    account = Account.objects(email="amal@example.org").first()
    assert account.role == "organiser" and account.organisation_id == organisation.organisation_id

    admin.get(f"/staff/admin/accounts/{account.account_id}")
    page = admin.post(f"/staff/admin/accounts/{account.account_id}/password-link", {})
    assert page.status_code == 200
    url = re.search(r'id="password-link-url">([^<]+)<', page.get_data(as_text=True)).group(1)
    code_path = url.split("://", 1)[1].split("/", 1)[1]
    holder = platform.gateway.test_client()
    form = holder.get("/" + code_path)
    assert form.status_code == 200
    # The link shows once: the account page does not show it again.
    again = admin.get(f"/staff/admin/accounts/{account.account_id}").get_data(as_text=True)
    assert url not in again


def test_bad_account_input_is_named_next_to_its_field_and_stores_nothing(staff_browser):
    admin = staff_browser("admin")
    before = Account.objects.count()
    admin.get("/staff/admin/accounts")
    bad = admin.post("/staff/admin/accounts", {"email": "not an email", "role": "organiser"})
    assert bad.status_code == 400
    html = bad.get_data(as_text=True)
    assert 'id="f-email-error"' in html
    no_org = admin.post("/staff/admin/accounts", {"email": "x@example.org", "role": "policy"})
    assert no_org.status_code == 400 and 'id="f-organisation_id-error"' in no_org.get_data(
        as_text=True
    )
    assert Account.objects.count() == before


def test_a_token_is_shown_once_and_can_be_revoked(staff_browser, platform, organisation):
    admin = staff_browser("admin")
    person = platform.staff("auditor", organisation)
    admin.get(f"/staff/admin/accounts/{person['account_id']}")
    page = admin.post(
        f"/staff/admin/accounts/{person['account_id']}/tokens",
        {"label": "nightly", "ttl_days": "30"},
    )
    token = re.search(r'id="new-token">([^<]+)<', page.get_data(as_text=True)).group(1)
    platform.call("GET", "/api/v1/me", token, expect=200)
    assert token not in admin.get(f"/staff/admin/accounts/{person['account_id']}").get_data(
        as_text=True
    )
    record = ApiToken.objects(account_id=person["account_id"], label="nightly").first()
    revoked = admin.post(
        f"/staff/admin/accounts/{person['account_id']}/tokens/{record.token_id}/revoke", {}
    )
    assert revoked.status_code == 303
    platform.call("GET", "/api/v1/me", token, expect=401)
    bad = admin.post(
        f"/staff/admin/accounts/{person['account_id']}/tokens", {"label": "x", "ttl_days": "999"}
    )
    assert bad.status_code == 400 and 'id="f-ttl_days-error"' in bad.get_data(as_text=True)


def test_only_admins(staff_browser):
    policy = staff_browser("policy")
    policy.get("/staff/")
    assert policy.get("/staff/admin/accounts").status_code == 403
    assert policy.post("/staff/admin/organisations", {"name": "Sneaky"}).status_code == 403
    assert Organisation.objects(name="Sneaky").first() is None


def test_admin_changes_a_role_and_disables_an_account(staff_browser, platform, organisation):
    admin = staff_browser("admin")
    person = platform.staff("organiser", organisation)
    page = f"/staff/admin/accounts/{person['account_id']}"
    admin.get(page)
    changed = admin.post(f"{page}/role", {"role": "policy"})
    assert changed.status_code == 303
    assert Account.objects(account_id=person["account_id"]).first().role == "policy"
    admin.get(page)
    refused = admin.post(f"{page}/role", {"role": "platform_auditor"})
    assert refused.status_code == 400 and 'id="f-role-error"' in refused.get_data(as_text=True)
    assert Account.objects(account_id=person["account_id"]).first().role == "policy"
    admin.get(page)
    admin.post(f"{page}/role", {"role": "policy", "disabled": "on"})
    assert Account.objects(account_id=person["account_id"]).first().disabled
    platform.call("GET", "/api/v1/me", person["token"], expect=401)
