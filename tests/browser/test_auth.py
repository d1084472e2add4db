"""A server with a clients file: the pages load without a token, the first API call asks for one
(a dialog), a caller's token is refused for want of the operator role, an operator's is kept in
the tab's sessionStorage and used on every page until forgotten or the tab is gone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import Server, Tab, new_tab, serious_violations, start

CALLER, OPERATOR = "caller-token-0123456789", "operator-token-0123456789"
TOKEN_KEY = "rules-engine.workbench.token"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    clients: Path = tmp_path_factory.mktemp("clients") / "clients"
    clients.write_text(f"{CALLER} caller case-system\n{OPERATOR} operator duty-team\n")
    yield from start("--clients-file", str(clients))


@pytest.fixture
def guarded_tab(browser: Browser, guarded: Server) -> Iterator[Tab]:
    yield from new_tab(browser, guarded)


def test_the_pages_ask_once_for_an_operator_token_and_keep_it_for_the_tab(guarded_tab: Tab) -> None:
    server = guarded_tab.server
    # The shell is served to anyone; the data are not.
    assert httpx.get(server.url + "catalogue.html").status_code == 200
    assert httpx.get(server.url + "api/rulesets").status_code == 401

    page = guarded_tab.open("catalogue.html", ready=False)
    dialog = page.get_by_role("dialog", name="Access token")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("This server asks for an access token.")
    token = page.get_by_label("Operator access token")
    expect(token).to_be_focused()
    assert page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") is None
    assert serious_violations(page) == []

    # A caller may evaluate through the API but not use the workbench.
    page.keyboard.type(CALLER)
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("does not have the operator role")

    page.keyboard.type(OPERATOR)
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    page.wait_for_selector("body[data-ready]", state="attached")
    expect(page.locator("article.rule").first).to_be_visible()
    assert page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") == OPERATOR
    expect(page.locator("#session")).to_contain_text("Signed in with a token")

    # Another page of the same tab does not ask again.
    guarded_tab.open("case.html")
    expect(page.get_by_role("dialog")).to_be_hidden()
    expect(page.get_by_label("Ruleset")).to_contain_text("safeguarding")

    # Forgotten: the next call asks again; cancelled, the page says what is missing.
    page.get_by_role("button", name="Forget token").click()
    assert page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") is None
    guarded_tab.open("catalogue.html", ready=False)
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.locator("#catalogue-error")).to_be_visible()
    expect(page.locator("#catalogue-error")).to_contain_text("token")


def test_another_tab_starts_without_the_token(guarded_tab: Tab) -> None:
    page = guarded_tab.open("impact.html", ready=False)
    page.get_by_label("Operator access token").fill(OPERATOR)
    page.get_by_role("button", name="Use this token").click()
    page.wait_for_selector("body[data-ready]", state="attached")
    # sessionStorage belongs to one tab: a second tab of the same browser asks for its own.
    other = page.context.new_page()
    other.goto(guarded_tab.server.url + "impact.html")
    expect(other.get_by_role("dialog", name="Access token")).to_be_visible()
    assert other.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") is None
