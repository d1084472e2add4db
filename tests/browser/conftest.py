"""The workbench in a real browser: Debian's Chromium (/usr/bin/chromium, headless) driven by
Playwright against a real `rules-engine serve` on free ports.

One server and one browser serve every test in this folder; each test gets a fresh browser
context (its own sessionStorage) and a tab that records console errors and uncaught page errors.
They are package-scoped, not session-scoped: Playwright's sync API keeps its event loop marked
as running in this thread while it is started, and the test folders that run after this one call
asyncio.run(), which refuses to start inside a running loop; so the browser stops when the last
test here has run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe  # type: ignore[import-untyped]
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, ViewportSize, sync_playwright

from tests.redis_server import free_port
from tests.serve_process import ROOT, serve

CHROMIUM = Path("/usr/bin/chromium")
VENDOR = ROOT / "rules_engine" / "workbench" / "static" / "vendor"
EXAMPLE = json.loads((ROOT / "examples" / "evaluate-request.json").read_text())
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}
CONNECT = "/rules_engine.v1.RulesEngineService"
SERIOUS = {"serious", "critical"}


@dataclass
class Server:
    """A running `rules-engine serve` with its HTTP door; `url` is the workbench's address."""

    http_port: int
    grpc_port: int

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def url(self) -> str:
        return f"{self.origin}/workbench/"

    def connect(self, method: str, body: dict[str, Any], token: str | None = None) -> dict[str, Any]:
        """A Connect JSON call to the service itself (the door the case systems use)."""
        headers = {"authorization": f"Bearer {token}"} if token else {}
        answer = httpx.post(f"{self.origin}{CONNECT}/{method}", json=body, headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result


@dataclass
class Tab:
    """A page in its own browser context, with what its console said."""

    page: Page
    server: Server
    errors: list[str] = field(default_factory=list)

    def open(self, path: str = "", ready: bool = True) -> Page:
        """Open a workbench page and wait until its script has loaded what it needs."""
        self.page.goto(self.server.url + path)
        if ready:
            self.page.wait_for_selector("body[data-ready]", state="attached", timeout=30_000)
        return self.page


def wait_for_http(origin: str, timeout: float = 60) -> None:
    """The HTTP door listens a moment after the gRPC port reports SERVING."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{origin}/workbench/", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the workbench did not start"
        time.sleep(0.1)


def start(*args: str) -> Generator[Server, None, None]:
    grpc_port, http_port = free_port(), free_port()
    options = (
        "--http-port", str(http_port), "--metrics-port", "0",
        "--rulesets", str(ROOT / "rulesets"), "--default-ruleset", "safeguarding", *args,
    )  # fmt: skip
    with serve(grpc_port, *options):
        server = Server(http_port, grpc_port)
        wait_for_http(server.origin)
        yield server


@pytest.fixture(scope="package")
def server() -> Iterator[Server]:
    yield from start()


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (.ci/ensure-tools installs it)")
    assert (VENDOR / "vega-embed.min.js").exists(), "the workbench's charting files are missing: run `make setup`"
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    # Playwright cannot download its own browser here; Debian's Chromium is driven instead.
    launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
    yield launched
    launched.close()


def new_tab(browser: Browser, server: Server) -> Iterator[Tab]:
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    context.set_default_timeout(30_000)
    page = context.new_page()
    tab = Tab(page, server)

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            tab.errors.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda error: tab.errors.append(f"uncaught: {error}"))
    try:
        yield tab
    finally:
        context.close()


@pytest.fixture
def tab(browser: Browser, server: Server) -> Iterator[Tab]:
    yield from new_tab(browser, server)


def example_case() -> str:
    """examples/evaluate-request.json as a user would paste it: the whole request."""
    return json.dumps(EXAMPLE, indent=2)


# Ethnicity: (cases flagged, cases not flagged) by `starter`; Indian is a group too small to show.
EQUALITY_GROUPS = {"WBRI": (12, 28), "BAFR": (20, 10), "AIND": (2, 1), "CHNE": (10, 10)}


def count_equality_cases(server: Server) -> None:
    """Evaluate cases whose child records an ethnicity, so the service counts them for equality
    monitoring (a case evaluated again is counted once: any test may call this)."""
    for ethnicity, (flagged, plain) in EQUALITY_GROUPS.items():
        for i in range(flagged + plain):
            concerns = [
                {"id": f"c{n}", "date": f"2025-01-{n + 2:02d}", "agency": "POLICE"}
                for n in range(8 if i < flagged else 0)
            ]
            child = {"birthDate": "2015-01-01", "ethnicity": ethnicity, "sex": "1" if i % 2 else "2"}
            case = {"caseId": f"equality-{ethnicity}-{i}", "child": child, "concerns": concerns}
            server.connect("Evaluate", {"case": case, "ruleset": "starter", "asOf": "2025-06-30"})


def serious_violations(page: Page) -> list[str]:
    """axe-core's serious and critical violations on the page as it stands, one line each."""
    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} -> {[n['target'] for n in v['nodes']][:5]}"
        for v in results.response["violations"]
        if v["impact"] in SERIOUS
    ]
