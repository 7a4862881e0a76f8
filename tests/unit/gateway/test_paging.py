"""Lists that grow with use are answered a page at a time: the body stays a list, X-Pagination says
where it is in the whole (flask-smorest's pagination), and no page is larger than 200."""

from __future__ import annotations

import json

import pytest

from shared.runtime import MAX_PAGE_SIZE, PAGE_SIZE


def pages(platform, path: str, token: str, page_size: int) -> tuple[list, dict]:
    """Every item, read page by page, and the first page's X-Pagination."""
    items, page, first = [], 1, None
    while True:
        response = platform.call(
            "GET", f"{path}?page={page}&page_size={page_size}", token, expect=200
        )
        meta = json.loads(response.headers["X-Pagination"])
        first = first or meta
        assert len(response.get_json()) <= page_size
        items += response.get_json()
        if "next_page" not in meta:
            return items, first
        page = meta["next_page"]


def test_consultations_come_a_page_at_a_time(platform):
    organiser = platform.staff("organiser", platform.organisation())["token"]
    made = [
        platform.call(
            "POST",
            "/api/v1/consultations",
            organiser,
            expect=201,
            json={"title": f"Paged {i}", "languages": ["en"], "purposes": ["participate"]},
        ).get_json()["consultation_id"]
        for i in range(5)
    ]
    listed, meta = pages(platform, "/api/v1/consultations", organiser, 2)
    assert [c["consultation_id"] for c in listed] == made[::-1]  # newest first, each once
    assert (meta["total"], meta["total_pages"]) == (5, 3)
    everything = platform.call("GET", "/api/v1/consultations", organiser, expect=200)
    assert (
        json.loads(everything.headers["X-Pagination"])["page"] == 1
        and len(everything.get_json()) == 5
    )


def test_accounts_come_a_page_at_a_time(platform):
    for _ in range(3):
        platform.staff("policy", platform.organisation())
    listed, meta = pages(platform, "/api/v1/accounts", platform.admin_token, 2)
    emails = [a["email"] for a in listed]
    assert emails == sorted(emails) and len(emails) == len(set(emails)) == meta["total"]


def test_without_paging_parameters_a_client_gets_the_first_page(platform):
    organiser = platform.staff("organiser", platform.organisation())["token"]
    for i in range(PAGE_SIZE + 1):
        platform.call(
            "POST",
            "/api/v1/consultations",
            organiser,
            expect=201,
            json={"title": f"Many {i}", "languages": ["en"], "purposes": ["participate"]},
        )
    first = platform.call("GET", "/api/v1/consultations", organiser, expect=200)
    assert len(first.get_json()) == PAGE_SIZE
    assert json.loads(first.headers["X-Pagination"])["next_page"] == 2


@pytest.mark.parametrize("path", ["/api/v1/consultations", "/api/v1/accounts"])
def test_no_page_is_larger_than_the_maximum(platform, path):
    too_big = platform.call("GET", f"{path}?page_size={MAX_PAGE_SIZE + 1}", platform.admin_token)
    assert too_big.status_code == 422 and too_big.mimetype == "application/problem+json"
