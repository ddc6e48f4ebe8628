"""The model zoo over HTTP: every case of tests/model/zoo.py (trained or imported -> bundle) served by a
real server, one per case (WORKERS=1), and every held-out row answered through `/predict` (by name and in
order), KServe V1 and V2 as the native model answers it, within convert.py's tolerances.

Each route gets the held-out rows in one batch. tests/server/test_byom.py goes deeper on a few shapes
(MLflow's `/invocations`, `/predict/proba`, single rows); this file covers the breadth of the zoo.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest

from tests.model.zoo import ZooCase, zoo_builders
from tests.server.zoo_http import check_kserve_v1, check_predict, check_v2, lists, records
from tests.support import RunningServer, start_server

BUILDERS = zoo_builders()


@pytest.fixture(scope="module", params=list(BUILDERS))
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ZooCase, RunningServer]]:
    with warnings.catch_warnings():
        if request.param == "imported-svc":
            # scikit-learn 1.9 deprecates SVC(probability=True) (the issue names it) and its probA_ that
            # skl2onnx reads: that case alone is built with FutureWarning ignored
            warnings.simplefilter("ignore", FutureWarning)
        case = BUILDERS[request.param](tmp_path_factory.mktemp(request.param))
    with start_server({"MODEL_BUNDLE": str(case.bundle.path), "WORKERS": "1"}) as running:
        yield case, running


def test_zoo_has_every_family_the_issue_names() -> None:
    assert len(BUILDERS) >= 14


def test_predict_answers_every_held_out_row_by_name_and_in_order(
    served: tuple[ZooCase, RunningServer],
) -> None:
    case, server = served
    by_name = check_predict(case, server, records(case))
    assert check_predict(case, server, lists(case)) == by_name


def test_kserve_v1_answers_every_held_out_row(served: tuple[ZooCase, RunningServer]) -> None:
    check_kserve_v1(*served)


def test_v2_answers_every_held_out_row(served: tuple[ZooCase, RunningServer]) -> None:
    check_v2(*served)
