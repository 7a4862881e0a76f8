"""Browser tests: the participant pages in headless Chromium (Debian's package), driven by Playwright.

One stack (services and gateway as real processes on the run's Kafka and document store) with the demo consultation in six
languages serves every browser test in this folder. Every browser context refuses requests to
any origin but the app's; the neutral quick-exit site is answered locally, so no request ever
leaves the machine. Screenshots go to tests/browser/screenshots/ (git-ignored).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from deploy.demo import DemoLoader
from deploy.stack import Stack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
HERE = Path(__file__).resolve().parent
AXE_SOURCE = (HERE / "vendor" / "axe.min.js").read_text(encoding="utf-8")
SCREENSHOTS = HERE / "screenshots"
# The gateway's default quick-exit target; the browser never reaches it (see `guard_network`).
NEUTRAL_SITE = "https://www.bbc.co.uk/weather"
# Stands for whatever the participant had open before the invitation link.
EARLIER_PAGE = "https://earlier.example/"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
LANGUAGES = ("ar", "zh", "en", "fr", "ru", "es")


@dataclass
class WebStack:
    stack: Stack
    demo: dict

    @property
    def origin(self) -> str:
        return self.stack.gateway_url

    @property
    def invitation_url(self) -> str:
        return f"{self.origin}/i/{self.demo['invitation_code']}"


@pytest.fixture(scope="package")
def web_stack(servers, tmp_path_factory):
    admin = "vt_admin_" + secrets.token_urlsafe(16)
    # Every test shares the demo link and the anonymous rate bucket of each page.
    stack = Stack(
        kafka_bootstrap=servers.kafka_bootstrap,
        mongodb_uri=servers.mongodb_uri,
        namespace=servers.namespace(),
        log_dir=tmp_path_factory.mktemp("browser-logs"),
        extra_env={
            "VOICES_ADMIN_TOKEN": admin,
            "VOICES_RATE_ANONYMOUS": "100000/60",
            "VOICES_RATE_PARTICIPANT": "100000/60",
        },
    )
    stack.start(timeout=90)
    try:
        demo = DemoLoader(stack.gateway_url, admin).load()
        yield WebStack(stack, demo)
    finally:
        stack.stop()


@pytest.fixture(scope="package")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run `make browser-deps` (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


@dataclass
class NetworkLog:
    """Every request the browser tried, and those refused for going elsewhere than the app."""

    requests: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def guard_network(context, origin: str) -> NetworkLog:
    """Let the context reach only `origin`; answer the neutral site and the earlier page locally."""
    log = NetworkLog()
    context.on("request", lambda request: log.requests.append(request.url))

    def route(route):
        url = route.request.url
        if url == origin or url.startswith(origin + "/"):
            route.continue_()
        elif url.startswith(NEUTRAL_SITE):
            route.fulfill(
                status=200,
                content_type="text/html",
                body="<!doctype html><html lang=en><title>Weather</title><h1>Weather</h1></html>",
            )
        elif url.startswith(EARLIER_PAGE):
            route.fulfill(
                status=200,
                content_type="text/html",
                body="<!doctype html><html lang=en><title>Earlier</title><h1>Earlier page</h1></html>",
            )
        else:
            log.refused.append(url)
            route.abort()

    context.route("**/*", route)
    return log


@pytest.fixture
def new_context(browser, web_stack):
    """A factory of fresh browser contexts (own cookies) behind the network guard."""
    made = []

    def make(**options):
        options.setdefault("viewport", PHONE)
        context = browser.new_context(**options)
        context.network = guard_network(context, web_stack.origin)
        made.append(context)
        return context

    yield make
    for context in made:
        context.close()


def axe_violations(page) -> list[dict]:
    """axe-core's violations on the page as it is now (all rules axe runs by default)."""
    # Evaluated through the DevTools protocol, so the page's CSP (no inline scripts) stays on.
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE_SOURCE)
    result = page.evaluate(
        "async () => { const r = await axe.run(document); return r.violations.map("
        "v => ({id: v.id, impact: v.impact, help: v.help, "
        "nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))})); }"
    )
    return result


def assert_accessible(page, where: str) -> None:
    violations = axe_violations(page)
    assert violations == [], f"axe on {where} ({page.url}): {violations}"


def assert_reflows(page, where: str) -> None:
    """At 320 CSS pixels wide (WCAG 1.4.10), the page needs no sideways scrolling."""
    before = page.viewport_size
    page.set_viewport_size({"width": 320, "height": 640})
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    page.set_viewport_size(before)
    assert overflow <= 0, f"{where} scrolls sideways by {overflow}px at 320px wide"


def screenshot(page, name: str) -> None:
    """Full-page screenshots of the page at phone and desktop width, into tests/browser/screenshots/."""
    SCREENSHOTS.mkdir(exist_ok=True)
    before = page.viewport_size
    for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(size)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{label}.png"), full_page=True)
    page.set_viewport_size(before)


@pytest.fixture(scope="module")
def in_process(secrets_env):
    """The platform in this process behind a one-thread HTTP server on loopback: (platform, origin,
    invitation url). For what the stack of real processes cannot stage, such as a day passing."""
    import threading

    from werkzeug.serving import make_server

    from tests.unit.gateway.conftest import build_platform
    from tests.unit.web.conftest import open_demo_consultation

    platform = build_platform(secrets_env, QUICK_EXIT_URL=NEUTRAL_SITE)
    demo = open_demo_consultation(platform)
    server = make_server("127.0.0.1", 0, platform.gateway, threaded=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    origin = f"http://127.0.0.1:{server.server_port}"
    try:
        yield platform, origin, f"{origin}/i/{demo.code}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
