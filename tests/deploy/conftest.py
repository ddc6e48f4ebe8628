"""Fixtures: every kustomize variant rendered once per session by the real `kubectl kustomize`."""

from __future__ import annotations

import pytest

from tests.deploy.rendered import VARIANTS, Rendered, render


@pytest.fixture(scope="session")
def renders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendered]:
    out_dir = tmp_path_factory.mktemp("rendered")
    return {variant: render(variant, out_dir) for variant in VARIANTS}


@pytest.fixture(params=VARIANTS)
def rendered(request: pytest.FixtureRequest, renders: dict[str, Rendered]) -> Rendered:
    variant: str = request.param
    return renders[variant]
