"""The model page's live signals in a real headless Chromium (Debian's `chromium`, driven by Playwright)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support import NOTES_ROW, RunningServer, start_server

CLASSES = ["setosa", "versicolor", "virginica"]
SEPAL_LENGTH_LOW = [1.0, 3.5, 1.4, 0.2]
REFRESH_TIMEOUT_MS = 15_000  # the page reads the signals again every 10 s

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def fresh_server(model_dir: Path) -> Iterator[RunningServer]:
    """A server of its own: the counts the page shows start at zero."""
    with start_server({"MODEL_DIR": str(model_dir), "WORKERS": "1"}) as running:
        yield running


@pytest.fixture(scope="module")
def page(fresh_server: RunningServer, browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(10_000)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    opened.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    yield opened
    assert errors == []
    context.close()


def predict(server: RunningServer, row: list[float]) -> None:
    assert httpx.post(f"{server.url}/predict", json={"features": row}).status_code == 200


def test_the_page_shows_the_signals_and_refreshes_them(fresh_server: RunningServer, page: Page) -> None:
    predict(fresh_server, SEPAL_LENGTH_LOW)
    predict(fresh_server, NOTES_ROW)
    page.goto(fresh_server.url + "/")
    expect(page.locator("#drift")).to_be_visible()
    features = page.locator("#drift-features tbody tr")
    expect(features).to_have_count(4)
    sepal = features.first
    expect(sepal.locator("th")).to_have_text("sepal_length_cm")
    expect(sepal.locator("td").nth(0)).to_have_text("1")  # below min
    expect(sepal.locator("td").nth(1)).to_have_text("0")  # above max
    expect(sepal).to_have_class("outside")
    classes = page.locator("#drift-classes tbody tr")
    expect(classes).to_have_count(3)
    for index, name in enumerate(CLASSES):
        expect(classes.nth(index).locator("th")).to_have_text(name)
        expect(classes.nth(index).locator("td").nth(2)).to_have_text("33.3%")
    expect(page.locator("#drift-summary")).to_contain_text("in the last 5 min")

    predict(fresh_server, SEPAL_LENGTH_LOW)
    expect(sepal.locator("td").nth(0)).to_have_text("2", timeout=REFRESH_TIMEOUT_MS)
