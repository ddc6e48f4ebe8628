"""The model page in a real headless Chromium (Debian's `chromium`, driven by Playwright's Python package).

Playwright never downloads a browser here: it launches /usr/bin/chromium. Without it these tests skip
saying how to install it, or fail under CI=true (`make system-deps` installs it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from tests.support import KEY, RunningServer, png_size, start_server

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CLASSES = ["setosa", "versicolor", "virginica"]
BORDERLINE = ["6.0", "2.7", "5.1", "1.6"]  # versicolor 60 %, virginica 40 % with the default forest
TIMEOUT_MS = 10_000
DASH = "\u2013"  # the page's "no prediction" mark and range separator

pytestmark = pytest.mark.browser


@dataclass
class Tab:
    """One page plus what it logged: console messages and uncaught errors."""

    page: Page
    console: list[ConsoleMessage] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def console_errors(self) -> list[str]:
        return [m.text for m in self.console if m.type == "error"] + self.errors


@pytest.fixture
def tab(browser: Browser) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    opened = Tab(page)
    page.on("console", lambda message: opened.console.append(message))
    page.on("pageerror", lambda error: opened.errors.append(str(error)))
    yield opened
    context.close()


def open_page(tab: Tab, server: RunningServer) -> Page:
    """Open the page and wait for its first prediction (one bar per class)."""
    page = tab.page
    page.goto(server.url + "/")
    expect(page.locator("#bars li")).to_have_count(len(CLASSES))
    return page


def set_values(page: Page, values: list[str]) -> None:
    for index, text in enumerate(values):
        page.fill(f"#value-{index}", text)


def bar_values(page: Page) -> list[str]:
    return page.locator("#bars li .value").all_text_contents()


def test_page_loads_the_card_and_a_prediction_without_console_errors(tab: Tab, server: RunningServer) -> None:
    page = open_page(tab, server)
    expect(page.locator("#model-name")).to_have_text("iris")
    expect(page.locator("#model-version")).to_have_text("v1")
    expect(page.locator("#status")).to_have_text("ready")
    expect(page.locator("#classes li")).to_have_text(CLASSES)
    expect(page.locator("#features .feature")).to_have_count(4)
    expect(page.locator("#features .feature .range").first).to_have_text(f"4.3 {DASH} 7.9")
    expect(page.locator("#feature-table tbody tr").first).to_contain_text("sepal_length_cm")
    expect(page).to_have_title("iris v1 · mlkube")
    assert tab.console_errors() == []


def test_moving_a_slider_changes_the_prediction(tab: Tab, server: RunningServer) -> None:
    page = open_page(tab, server)
    page.click("#sample-0")
    expect(page.locator("#predicted-class")).to_have_text("setosa")
    before = bar_values(page)
    for slider in ("#slider-2", "#slider-3"):  # petal length and width to the top of their range
        page.focus(slider)
        page.keyboard.press("End")
    expect(page.locator("#value-2")).to_have_value("6.90")
    expect(page.locator("#predicted-class")).to_have_text("virginica")
    assert bar_values(page) != before
    assert tab.console_errors() == []


@pytest.mark.parametrize(("index", "name"), list(enumerate(CLASSES)))
def test_each_sample_row_shows_its_class(tab: Tab, server: RunningServer, index: int, name: str) -> None:
    page = open_page(tab, server)
    page.click(f"#sample-{index}")
    expect(page.locator("#predicted-class")).to_have_text(name)
    expect(page.locator("#bars li.top")).to_have_attribute("data-class", name)


def test_a_bad_value_shows_the_servers_message_next_to_the_field(tab: Tab, server: RunningServer) -> None:
    page = open_page(tab, server)
    page.fill("#value-1", "wide")
    hint = page.locator("#hint-1")
    expect(hint).to_have_text("Expected float, got str (HTTP 422)")
    expect(hint).to_have_class("hint error")
    expect(page.locator("#value-1")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#predicted-class")).to_have_text(DASH)
    page.fill("#value-1", "3.0")
    expect(hint).not_to_have_class("hint error")
    expect(page.locator("#predicted-class")).not_to_have_text(DASH)


def test_an_out_of_range_value_names_the_limit_next_to_the_field(tab: Tab, server: RunningServer) -> None:
    page = open_page(tab, server)
    page.fill("#value-2", "1e39")
    expect(page.locator("#hint-2")).to_contain_text("feature values must lie within")


def test_the_curl_command_returns_what_the_page_shows(tab: Tab, server: RunningServer) -> None:
    if shutil.which("curl") is None:
        pytest.fail("curl is needed to run the page's command (Debian package curl)")
    page = open_page(tab, server)
    set_values(page, BORDERLINE)
    expect(page.locator("#curl")).to_contain_text('"features":[6,2.7,5.1,1.6]')
    command = page.locator("#curl").inner_text()
    output = subprocess.run(["bash", "-c", command], check=True, capture_output=True, text=True).stdout
    answer = json.loads(output)
    expect(page.locator("#predicted-class")).to_have_text(answer["class_name"])
    expect(page.locator("#bars li .value")).to_have_text([f"{p * 100:.1f}%" for p in answer["probabilities"]])
    page.click("#route-predict")
    assert f"{server.url}/predict \\" in page.locator("#curl").inner_text()


def test_a_required_api_key_is_asked_for_and_kept_in_memory_only(
    tab: Tab, keyed_server: RunningServer
) -> None:
    page = tab.page
    page.goto(keyed_server.url + "/")
    expect(page.locator("#status")).to_have_text("API key needed")
    expect(page.locator("#key-message")).to_have_text("This server needs an API key: enter it here.")
    expect(page.locator("#main")).to_be_hidden()
    expect(page.locator("#locked")).to_be_visible()
    page.fill("#api-key", "a-wrong-key")
    expect(page.locator("#key-message")).to_have_text("Key refused: invalid API key.")
    page.fill("#api-key", KEY)
    expect(page.locator("#bars li")).to_have_count(3)
    expect(page.locator("#locked")).to_be_hidden()
    expect(page.locator("#status")).to_have_text("ready")
    page.click("#sample-2")
    expect(page.locator("#predicted-class")).to_have_text("virginica")
    curl = page.locator("#curl").inner_text()
    assert '-H "X-API-Key: $API_KEY"' in curl
    assert KEY not in curl
    stored = page.evaluate("() => [localStorage.length, sessionStorage.length, document.cookie]")
    assert stored == [0, 0, ""]


def test_the_page_fits_a_phone_screen(browser: Browser, server: RunningServer) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        page = context.new_page()
        page.goto(server.url + "/")
        expect(page.locator("#bars li")).to_have_count(3)
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0
    finally:
        context.close()


def test_screenshot_of_the_page(tab: Tab, server: RunningServer) -> None:
    """Saved as a test artifact; docs/model-page.png in the README is a copy of it."""
    page = open_page(tab, server)
    set_values(page, BORDERLINE)
    expect(page.locator("#predicted-class")).to_have_text("versicolor")
    expect(page.locator("#bars li .value")).to_have_text(["0.0%", "60.0%", "40.0%"])
    page.locator("#value-3").blur()
    page.wait_for_timeout(400)  # let the bars' width transition finish
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "model-page.png"
    page.screenshot(path=str(path), full_page=True)
    document = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
    )
    assert png_size(path.read_bytes()) == tuple(document)  # the whole page, at the viewport's width


# --- models that are not the Iris forest: text features, a regressor --------------------------------------


def mixed_server(tmp_path_factory: pytest.TempPathFactory, target: str, task: str) -> Iterator[RunningServer]:
    from mlkube.model.datasets import read_table
    from mlkube.model.tabular import train_table_bundle
    from mlkube.model.train import TrainParams
    from tests.model.zoo import write_mixed_csv

    folder = tmp_path_factory.mktemp(target)
    table = read_table(write_mixed_csv(folder, target), target, task)
    bundle = train_table_bundle(table, TrainParams(extra={"n_estimators": 5}), folder / "models", name=target)
    with start_server({"MODEL_BUNDLE": str(bundle.path), "WORKERS": "1"}) as running:
        yield running


@pytest.fixture(scope="module")
def text_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from mixed_server(tmp_path_factory, "kind", "classification")


@pytest.fixture(scope="module")
def value_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from mixed_server(tmp_path_factory, "price", "regression")


def test_a_text_feature_is_a_dropdown_of_its_categories(tab: Tab, text_server: RunningServer) -> None:
    page = tab.page
    page.goto(text_server.url + "/")
    expect(page.locator("#bars li")).to_have_count(2)
    colour = page.locator("select#value-2")
    expect(colour.locator("option")).to_have_text(["blue", "green", "red", "(missing)"])
    expect(page.locator("#feature-table tbody tr").nth(2)).to_contain_text("one of blue, green, red")
    colour.select_option("red")
    expect(page.locator("#curl")).to_contain_text('"red"')
    colour.select_option("")  # missing: the model imputes it
    expect(page.locator("#curl")).to_contain_text("null")
    expect(page.locator("#predicted-class")).not_to_have_text(DASH)
    assert tab.console_errors() == []


def test_a_regressor_shows_its_value_and_no_classes(tab: Tab, value_server: RunningServer) -> None:
    page = tab.page
    page.goto(value_server.url + "/")
    expect(page.locator("#confidence")).to_contain_text("predicted value")
    expect(page.locator("#predicted-class")).to_have_text(re.compile(r"^-?[\d.,]+$"))
    expect(page.locator("#bars li")).to_have_count(0)
    expect(page.locator("#classes li")).to_have_count(0)
    expect(page.locator(".samples")).to_be_hidden()
    expect(page.locator("#metrics .metric span").first).to_have_text("R²")
    before = page.locator("#predicted-class").text_content()
    page.fill("#value-0", "95")
    expect(page.locator("#predicted-class")).not_to_have_text(before or "")
    assert tab.console_errors() == []
