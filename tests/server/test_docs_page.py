"""/docs: Swagger UI served entirely by mlkube, and working in a real headless Chromium with no internet."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from importlib import resources
from typing import Any

import pytest

from mlkube.server.docs import ASSETS
from tests.support import RunningServer


def test_page_is_html_with_a_same_origin_policy(server: RunningServer) -> None:
    response = server.client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "script-src 'self'" in policy
    assert "connect-src 'self'" in policy
    references = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert sorted(references) == sorted(
        f"docs/{name}" for name in ("swagger-ui.css", "favicon-32x32.png", "swagger-ui-bundle.js", "docs.js")
    )


@pytest.mark.parametrize("name", list(ASSETS))
def test_every_asset_is_served_from_the_package(server: RunningServer, name: str) -> None:
    path, content_type = ASSETS[name]
    response = server.client.get(f"/docs/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.content == (resources.files("mlkube.server") / "static" / path).read_bytes()


def test_unknown_asset_is_json_404(server: RunningServer) -> None:
    response = server.client.get("/docs/..%2Fkserve.py")
    assert response.status_code == 404
    assert "error" in response.json()


def test_swagger_ui_licence_ships_with_it_and_the_readme_names_the_vendored_version() -> None:
    folder = resources.files("mlkube.server") / "static" / "swagger-ui"
    assert "Apache License" in (folder / "LICENSE").read_text()
    vendored = re.search(r'PACKAGE_VERSION:"([0-9.]+)"', (folder / "swagger-ui-bundle.js").read_text())
    assert vendored is not None, "the bundle no longer states its version"
    assert f"swagger-ui-dist` {vendored.group(1)}" in (folder / "README.md").read_text()


def test_vendored_files_match_the_hashes_the_readme_lists() -> None:
    folder = resources.files("mlkube.server") / "static" / "swagger-ui"
    listed = re.findall(r"^\| (\S+) \| ([0-9a-f]{64}) \|$", (folder / "README.md").read_text(), re.MULTILINE)
    assert listed, "the README lists no file hashes"
    for name, digest in listed:
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name


class PageRecord:
    """Everything a page asked for or complained about."""

    def __init__(self, page: Any) -> None:
        self.urls: list[str] = []
        self.failures: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda request: self.urls.append(request.url))
        page.on("requestfailed", lambda request: self.failures.append(request.url))
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def assert_stayed_local(self, server: RunningServer) -> None:
        outside = [url for url in self.urls if not url.startswith(server.url + "/")]
        assert not outside, f"requests left the server: {outside}"
        assert not self.failures, self.failures
        assert not self.errors, self.errors


@pytest.fixture
def docs_page(browser: Any, server: RunningServer) -> Iterator[tuple[Any, PageRecord]]:
    """A page of each test's own (Swagger UI takes seconds to start on a shared 2-core machine)."""
    page = browser.new_page()
    record = PageRecord(page)
    page.goto(f"{server.url}/docs")
    page.wait_for_selector(".opblock", timeout=20_000)
    yield page, record
    page.close()


@pytest.mark.browser
def test_docs_page_lists_every_route(docs_page: tuple[Any, PageRecord], server: RunningServer) -> None:
    document = server.client.get("/openapi.json").json()
    expected = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    page, record = docs_page
    listed = {
        (
            block.locator(".opblock-summary-method").inner_text(),
            block.locator(".opblock-summary-path").get_attribute("data-path"),
        )
        for block in page.locator(".opblock").all()
    }
    assert listed == expected
    record.assert_stayed_local(server)


@pytest.mark.browser
def test_try_it_out_on_predict_returns_a_prediction(
    docs_page: tuple[Any, PageRecord], server: RunningServer
) -> None:
    page, record = docs_page
    operation = page.locator("#operations-mlkube-post_predict")
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("button.execute").click()
    response = operation.locator(".live-responses-table .response")
    response.wait_for(timeout=10_000)
    status = response.locator(".response-col_status").inner_text().strip()
    body = json.loads(response.locator(".response-col_description pre").first.inner_text())
    assert status == "200"
    assert set(body) == {"prediction", "class_name", "confidence", "version"}
    assert body["class_name"] in {"setosa", "versicolor", "virginica"}
    assert f"{server.url}/predict" in record.urls
    record.assert_stayed_local(server)
