"""Micro-batching: requests that arrive together share one model call; each gets exactly its own answer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from mlkube.model.bundle import Bundle
from mlkube.model.runtime import OnnxPredictor, Scores
from mlkube.server.batching import MicroBatcher, feed_rows, join_feeds
from tests.support import RunningServer, metric_samples, metric_value, start_server, wait_for_metric

ROWS = np.array(
    [
        [5.1, 3.5, 1.4, 0.2],
        [6.7, 3.0, 5.2, 2.3],
        [5.9, 3.0, 4.2, 1.5],
        [4.6, 3.1, 1.5, 0.2],
        [6.3, 2.9, 5.6, 1.8],
    ],
    dtype=np.float32,
)


class RecordingModel:
    """The real ONNX predictor, with a note of every call's row count; `poison` rows make a call fail."""

    def __init__(self, bundle: Bundle, poison: float | None = None) -> None:
        self.predictor = OnnxPredictor(bundle)
        self.calls: list[int] = []
        self.poison = poison

    def score(self, rows: NDArray[np.float32]) -> Scores:
        self.calls.append(len(rows))
        if self.poison is not None and (rows == self.poison).any():
            raise ValueError("poisoned row")
        return self.predictor.predict(rows)


def score_together(
    batcher: MicroBatcher, requests: list[NDArray[np.float32]]
) -> list[Scores | BaseException]:
    """Hand every request to the batcher in one loop turn, as concurrent requests of a worker are."""

    async def all_at_once() -> list[Scores | BaseException]:
        batcher.attach(asyncio.get_running_loop())
        futures = [batcher.score(rows) for rows in requests]
        return await asyncio.gather(*futures, return_exceptions=True)

    return asyncio.run(all_at_once())


def alone(model: RecordingModel, rows: NDArray[np.float32]) -> Scores:
    return model.predictor.predict(rows)


def assert_same(got: Scores | BaseException, expected: Scores) -> None:
    assert isinstance(got, Scores)
    np.testing.assert_array_equal(got.classes, expected.classes)
    np.testing.assert_array_equal(got.probabilities, expected.probabilities)


def test_requests_of_one_loop_turn_share_one_call_and_get_their_own_rows(iris_bundle: Bundle) -> None:
    model = RecordingModel(iris_bundle)
    requests = [ROWS[0:1], ROWS[1:3], ROWS[3:4], ROWS[4:5]]
    answers = score_together(MicroBatcher(model.score, max_rows=64), requests)
    assert model.calls == [5]
    for got, rows in zip(answers, requests, strict=True):
        assert_same(got, alone(model, rows))


def test_a_call_never_holds_more_than_max_rows(iris_bundle: Bundle) -> None:
    model = RecordingModel(iris_bundle)
    requests = [ROWS[i : i + 1] for i in range(5)]
    answers = score_together(MicroBatcher(model.score, max_rows=2), requests)
    assert model.calls == [2, 2, 1]
    for got, rows in zip(answers, requests, strict=True):
        assert_same(got, alone(model, rows))


def test_a_request_of_max_rows_or_more_is_scored_on_its_own_at_once(iris_bundle: Bundle) -> None:
    model = RecordingModel(iris_bundle)
    big = np.repeat(ROWS, 2, axis=0)
    answers = score_together(MicroBatcher(model.score, max_rows=4), [ROWS[0:1], big, ROWS[1:2]])
    assert model.calls == [10, 2]  # the big one at once, the two single rows together at the end of the turn
    assert_same(answers[1], alone(model, big))


def test_max_rows_one_scores_every_request_alone(iris_bundle: Bundle) -> None:
    model = RecordingModel(iris_bundle)
    score_together(MicroBatcher(model.score, max_rows=1), [ROWS[i : i + 1] for i in range(3)])
    assert model.calls == [1, 1, 1]


def test_a_failing_request_does_not_fail_its_neighbours(iris_bundle: Bundle) -> None:
    poison = np.float32(9.25)
    model = RecordingModel(iris_bundle, poison=float(poison))
    bad = np.array([[poison, 1.0, 1.0, 1.0]], dtype=np.float32)
    requests = [ROWS[0:1], bad, ROWS[1:2]]
    answers = score_together(MicroBatcher(model.score, max_rows=64), requests)
    assert model.calls == [3, 1, 1, 1]  # the joint call failed; each was then scored on its own
    assert_same(answers[0], alone(model, ROWS[0:1]))
    assert isinstance(answers[1], ValueError)
    assert_same(answers[2], alone(model, ROWS[1:2]))


def test_a_cancelled_request_leaves_the_others_answered(iris_bundle: Bundle) -> None:
    model = RecordingModel(iris_bundle)
    batcher = MicroBatcher(model.score, max_rows=64)

    async def one_gives_up() -> list[Scores]:
        first, second = batcher.score(ROWS[0:1]), batcher.score(ROWS[1:2])
        first.cancel()
        return [await second]

    [answer] = asyncio.run(one_gives_up())
    assert_same(answer, alone(model, ROWS[1:2]))


JOIN_ROUNDS = 5


@pytest.fixture(scope="module")
def one_worker(model_dir: Path) -> Iterator[RunningServer]:
    with start_server({"MODEL_DIR": str(model_dir), "WORKERS": "1"}) as running:
        yield running


def test_concurrent_http_requests_are_joined_and_each_answer_is_its_own(one_worker: RunningServer) -> None:
    distinct = [[float(v) + step for v in row] for row in ROWS.tolist() for step in (0.0, 0.1, 0.2, 0.3)]
    alone_answers = [one_worker.client.post("/predict", json={"features": row}).json() for row in distinct]
    assert len({answer["prediction"] for answer in alone_answers}) == 3  # a mixed-up slice would show

    def ask(index: int) -> tuple[int, dict[str, object]]:
        answer = one_worker.client.post("/predict", json={"features": distinct[index % len(distinct)]})
        assert answer.status_code == 200
        return index, answer.json()

    # Joining needs requests that arrive in the same event-loop turn; on a machine busy with other work a
    # round may see none, so up to ROUNDS rounds are sent (each checked whole) until one shows joined calls.
    for _ in range(JOIN_ROUNDS):
        before = metric_samples(one_worker)
        with ThreadPoolExecutor(max_workers=32) as pool:
            answers = list(pool.map(ask, range(400)))
        for index, answer in answers:
            assert answer == alone_answers[index % len(distinct)]
        rows_before = metric_value(before, "mlkube_model_call_rows_sum")
        after = wait_for_metric(one_worker, "mlkube_model_call_rows_sum", rows_before + 400)
        calls_before = metric_value(before, "mlkube_model_call_rows_count")
        calls = metric_value(after, "mlkube_model_call_rows_count") - calls_before
        rows = metric_value(after, "mlkube_model_call_rows_sum") - rows_before
        assert rows == 400  # every row scored exactly once
        if calls < rows:
            break
    assert calls < rows  # and some calls held the rows of several requests


def test_feeds_of_one_turn_are_joined_input_by_input_and_values_sliced_per_request() -> None:
    """A columns model's feeds (a scorer that sums them, standing in for a regressor's graph)."""
    calls: list[dict[str, NDArray[np.float32]]] = []

    def regressor(feeds: dict[str, NDArray[np.float32]]) -> Scores:
        calls.append(feeds)
        return Scores.regression(feeds["a"][:, 0] + 10 * feeds["b"][:, 0])

    def feeds(*rows: tuple[float, float]) -> dict[str, NDArray[np.float32]]:
        return {
            name: np.array([[row[index]] for row in rows], dtype=np.float32)
            for index, name in enumerate("ab")
        }

    batcher = MicroBatcher(regressor, max_rows=64, rows=feed_rows, join=join_feeds)
    answers = score_together(batcher, [feeds((1, 2)), feeds((3, 4), (5, 6))])  # type: ignore[list-item]
    assert len(calls) == 1
    assert calls[0]["a"].shape == (3, 1)
    values = [
        answer.values.tolist()
        for answer in answers
        if isinstance(answer, Scores) and answer.values is not None
    ]
    assert values == [[21.0], [43.0, 65.0]]
