"""The workbench's pages as static.py serves them: content types, index.html, ETags and cache
headers, the Content-Security-Policy, and nothing outside the directory, however the path is
spelt (scopes are built by hand here: an HTTP client would tidy `..` away before sending)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from rules_engine.engine.engine import Engine
from rules_engine.workbench import Workbench
from tests.workbench.conftest import Client, make_workbench


@pytest.fixture
def pages(tmp_path: Path) -> Path:
    static = tmp_path / "site" / "static"
    (static / "js").mkdir(parents=True)
    (static / "vendor").mkdir()
    (static / "index.html").write_text("<!doctype html><title>index</title>")
    (static / "case.html").write_text("<!doctype html><title>case</title>")
    (static / "js" / "api.js").write_text("export const api = 1;\n")
    (static / "workbench.css").write_text("body { margin: 0 }\n")
    (static / "vendor" / "vega.min.js").write_text("/* vega */\n")
    (static / ".secret.html").write_text("hidden")
    (static / "notes.exe").write_text("not a page")
    (tmp_path / "site" / "outside.html").write_text("outside")
    (static / "escape.html").symlink_to(tmp_path / "site" / "outside.html")
    return static


@pytest.fixture
def site(engine: Engine, pages: Path) -> Workbench:
    return make_workbench(engine, static_dir=pages)


def raw(app: Workbench, path: str, method: str = "GET", headers: list[tuple[bytes, bytes]] | None = None) -> int:
    """The status the app answers a hand-built scope with (the path exactly as given)."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": headers or [], "query_string": b""}
    asyncio.run(app(scope, receive, send))
    return int(sent[0]["status"])


def test_pages_scripts_and_styles_have_their_content_types(site: Workbench) -> None:
    client = Client(site)
    index = client.get("/workbench/")
    assert index.status_code == 200 and index.text == "<!doctype html><title>index</title>"
    assert index.headers["content-type"] == "text/html; charset=utf-8"
    assert client.get("/workbench/case.html").text.endswith("<title>case</title>")
    script = client.get("/workbench/js/api.js")
    # Module scripts are refused by browsers unless served as JavaScript.
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert client.get("/workbench/workbench.css").headers["content-type"] == "text/css; charset=utf-8"


def test_every_answer_carries_the_policy_that_keeps_the_pages_to_this_server(site: Workbench) -> None:
    client = Client(site)
    for path in ("/workbench/", "/workbench/js/api.js", "/workbench/missing.html", "/workbench/api/samples"):
        policy = client.get(path).headers["content-security-policy"]
        assert "default-src 'self'" in policy and "script-src 'self';" in policy
        assert "http" not in policy and "unsafe-eval" not in policy
    assert client.get("/workbench/").headers["x-content-type-options"] == "nosniff"


def test_etags_revalidate_and_vendored_files_are_cached_for_a_day(site: Workbench) -> None:
    client = Client(site)
    first = client.get("/workbench/js/api.js")
    assert first.headers["cache-control"] == "no-cache"
    again = client.get("/workbench/js/api.js", headers={"if-none-match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert client.get("/workbench/vendor/vega.min.js").headers["cache-control"] == "public, max-age=86400"
    head = client.request("HEAD", "/workbench/case.html")
    assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) > 0
    assert client.post("/workbench/case.html").status_code == 405


@pytest.mark.parametrize(
    "path",
    [
        "/workbench/../site/outside.html",
        "/workbench/js/../../outside.html",
        "/workbench/..%2Foutside.html",
        "/workbench/js/..\\..\\outside.html",
        "/workbench//etc/passwd.html",
        "/workbench/.secret.html",
        "/workbench/escape.html",
        "/workbench/notes.exe",
        "/workbench/js",
        "/workbench/js/",
        "/workbench/index.html\x00.js",
    ],
)
def test_nothing_outside_the_directory_or_unlisted_is_served(site: Workbench, path: str) -> None:
    assert raw(site, path) == 404


def test_a_build_without_pages_says_so(engine: Engine, tmp_path: Path) -> None:
    answer = Client(make_workbench(engine, static_dir=tmp_path / "none")).get("/workbench/")
    assert answer.status_code == 404 and "not installed" in answer.text
