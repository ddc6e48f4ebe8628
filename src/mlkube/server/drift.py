"""Drift and input signals: feature values outside the training range, and recent predicted-class shares.

- `RangeWatch` compares every row the model scores with the training range of each feature (the bundle's
  `features`), once per model call on the micro-batcher's joined batch: one row in plain Python (two
  C-level `all(map(...))` passes, 0.5 µs), more rows with two numpy comparisons (9 µs for 1,000 rows);
  only when something lies outside are the values counted per feature and side. A columns model (one
  [rows, 1] graph input per feature, `server/features.py`) is watched by `FeedsRangeWatch`: its numeric
  inputs side by side, the same check, counted at their places in the schema (text is never outside; a
  missing number, NaN, is never outside either). The counts go to the worker's `Metrics`, which pushes
  them to `mlkube_feature_out_of_range_total` with its other counts.
- `SlidingCounts` keeps the predicted-class counts of the last WINDOW_SECONDS, fed from the counts the
  worker pushes anyway (no work per request), exported as `mlkube_recent_predictions`.
- `training_class_shares` derives the training class shares from what a bundle stores.
- `drift_signals` reads the merged values of every worker (as /metrics does) for `/model` and the page.

The bounds are compared in float32, the precision the rows reach the model in, so a training minimum or
maximum sent back to the server is inside the range, not one float32 rounding outside it.
"""

from __future__ import annotations

import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import gt, le, lt
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

from mlkube.api.page import ClassShare, DriftSignals, FeatureDrift
from mlkube.model.bundle import NUMBER, TENSOR_LAYOUT, Metadata

WINDOW_SECONDS = 300
WINDOW_SLOTS = 10
"""The window slides in steps of WINDOW_SECONDS / WINDOW_SLOTS (30 s): it covers the last 270 to 300 s."""
BELOW_MIN = "below_min"
ABOVE_MAX = "above_max"
OUT_OF_RANGE_REASONS = (BELOW_MIN, ABOVE_MAX)
"""The closed set of `reason` label values; categorical features will add `unknown_category`."""

ObserveOutside = Callable[[Sequence[int], Sequence[int]], None]
_LIVE_GAUGE_FILE = re.compile(r"^gauge_live\w*?_(\d+)\.db$")


class RangeWatch:
    """Counts, per feature, the values of scored rows below the training minimum and above the maximum."""

    __slots__ = ("_high", "_high_list", "_low", "_low_list", "_observe")

    def __init__(self, low: Sequence[float], high: Sequence[float], observe: ObserveOutside) -> None:
        self._low = np.asarray(low, dtype=np.float32)
        self._high = np.asarray(high, dtype=np.float32)
        self._low_list: list[float] = self._low.tolist()
        self._high_list: list[float] = self._high.tolist()
        self._observe = observe

    @classmethod
    def for_model(cls, metadata: Metadata, observe: ObserveOutside) -> RangeWatch | None:
        """A watch over the numeric features with a training range, in input order; None when none has one.

        A feature without a range (or a category: counted as `unknown_category` once the server takes
        categories) is never outside.
        """
        schema = metadata.input_schema()
        if schema.layout != TENSOR_LAYOUT:
            return None  # a columns model's batcher holds feeds: FeedsRangeWatch
        specs = schema.features
        low = [-np.inf if spec.kind != NUMBER or spec.min is None else spec.min for spec in specs]
        high = [np.inf if spec.kind != NUMBER or spec.max is None else spec.max for spec in specs]
        if all(np.isinf(low)) and all(np.isinf(high)):
            return None
        return cls(low, high, observe)

    def check(self, rows: NDArray[np.float32]) -> None:
        """Count the values of `rows` outside the training range (nothing to do when all are inside)."""
        if len(rows) == 1:  # a single row: plain Python beats numpy's per-call overhead
            row = rows[0].tolist()
            low, high = self._low_list, self._high_list
            if all(map(le, low, row)) and all(map(le, row, high)):
                return
            self._observe(list(map(lt, row, low)), list(map(gt, row, high)))  # bools count as 0 and 1
            return
        below = rows < self._low
        above = rows > self._high
        any_below, any_above = below.any(), above.any()
        if any_below or any_above:
            self._observe(self._per_feature(below, any_below), self._per_feature(above, any_above))

    def _per_feature(self, outside: NDArray[np.bool_], anything: np.bool_) -> list[int]:
        """The count of True per column: the columns of the (usually few) True values, counted."""
        width = len(self._low_list)
        if not anything:
            return [0] * width
        columns = np.flatnonzero(outside) % width  # row-major positions, whatever the memory layout
        return np.bincount(columns, minlength=width).tolist()  # type: ignore[no-any-return]


class FeedsRangeWatch:
    """RangeWatch for a columns model's feeds: its numeric inputs with a training range, side by side."""

    __slots__ = ("_inputs", "_observe", "_positions", "_watch", "_width")

    def __init__(
        self,
        inputs: Sequence[str],
        positions: Sequence[int],
        low: Sequence[float],
        high: Sequence[float],
        width: int,
        observe: ObserveOutside,
    ) -> None:
        self._inputs = list(inputs)
        self._positions = list(positions)
        self._watch = RangeWatch(low, high, self._scatter)
        self._width = width
        self._observe = observe

    @classmethod
    def for_model(cls, metadata: Metadata, observe: ObserveOutside) -> FeedsRangeWatch | None:
        """A watch over a columns model's numeric inputs that have a range; None for a tensor model or
        when no numeric feature has one."""
        schema = metadata.input_schema()
        if schema.layout == TENSOR_LAYOUT:
            return None
        watched = [
            (position, spec)
            for position, spec in enumerate(schema.features)
            if spec.kind == NUMBER and (spec.min is not None or spec.max is not None)
        ]
        if not watched:
            return None
        low = [-np.inf if spec.min is None else spec.min for _, spec in watched]
        high = [np.inf if spec.max is None else spec.max for _, spec in watched]
        inputs = [spec.onnx_input for _, spec in watched]
        positions = [position for position, _ in watched]
        return cls(inputs, positions, low, high, len(schema.features), observe)

    def check(self, feeds: Mapping[str, NDArray[Any]]) -> None:
        """Count the numeric inputs' values outside the training range (each input is [rows, 1])."""
        self._watch.check(np.hstack([feeds[name] for name in self._inputs]))

    def _scatter(self, below: Sequence[int], above: Sequence[int]) -> None:
        """The watched inputs' counts at their features' places in the schema (the series' order)."""
        all_below, all_above = [0] * self._width, [0] * self._width
        for index, position in enumerate(self._positions):
            all_below[position] = int(below[index])
            all_above[position] = int(above[index])
        self._observe(all_below, all_above)


class SlidingCounts:
    """Counts per key over the last `seconds`, kept in `slots` buckets of time (one worker's view)."""

    def __init__(
        self,
        n_keys: int,
        seconds: float = WINDOW_SECONDS,
        slots: int = WINDOW_SLOTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.n_keys = n_keys
        self.slot_seconds = seconds / slots
        self.slots = slots
        self._clock = clock
        self._buckets: deque[tuple[int, list[int]]] = deque()

    def add(self, key: int, count: int) -> None:
        self._current()[key] += count

    def totals(self) -> list[int]:
        """Each key's count in the window (older buckets dropped first)."""
        self._expire(self._slot())
        totals = [0] * self.n_keys
        for _, counts in self._buckets:
            for key, count in enumerate(counts):
                totals[key] += count
        return totals

    def __bool__(self) -> bool:
        self._expire(self._slot())
        return bool(self._buckets)

    def _slot(self) -> int:
        return int(self._clock() // self.slot_seconds)

    def _current(self) -> list[int]:
        slot = self._slot()
        self._expire(slot)
        if not self._buckets or self._buckets[-1][0] != slot:
            self._buckets.append((slot, [0] * self.n_keys))
        return self._buckets[-1][1]

    def _expire(self, slot: int) -> None:
        while self._buckets and self._buckets[0][0] <= slot - self.slots:
            self._buckets.popleft()


def watched_features(metadata: Metadata) -> list[str]:
    """The feature names of the drift series, in the order RangeWatch counts them (the model's inputs)."""
    return [spec.name for spec in metadata.input_schema().features]


def training_class_shares(metadata: Metadata) -> list[float] | None:
    """Each class's share of the held-out rows, which a stratified split keeps at the training shares.

    Bundles store no per-class training counts; they store the held-out rows' class counts twice: the
    per-class report's `support` and the confusion matrix's row sums (true class by predicted class).
    """
    counts = _supports(metadata.metrics.get("per_class"), metadata.class_names)
    if counts is None:
        counts = _row_sums(metadata.metrics.get("confusion_matrix"), metadata.n_classes)
    if counts is None or sum(counts) <= 0:
        return None
    total = sum(counts)
    return [count / total for count in counts]


def _supports(value: object, class_names: list[str]) -> list[int] | None:
    if not isinstance(value, Mapping):
        return None
    counts = []
    for name in class_names:
        scores = value.get(name)
        support = scores.get("support") if isinstance(scores, Mapping) else None
        if not isinstance(support, int) or support < 0:
            return None
        counts.append(support)
    return counts


def _row_sums(value: object, n_classes: int) -> list[int] | None:
    if not isinstance(value, list) or len(value) != n_classes:
        return None
    sums = []
    for row in value:
        if not isinstance(row, list) or not all(isinstance(count, int) and count >= 0 for count in row):
            return None
        sums.append(sum(row))
    return sums


def forget_dead_workers(directory: str | None = None) -> None:
    """Remove the live gauges of worker processes that are gone (prometheus_client's `mark_process_dead`).

    A worker replaced after a crash leaves its gauge files behind; without this its last window of
    predictions would be summed into the shares for good. Run by each worker as it starts.
    """
    directory = directory or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return
    for path in Path(directory).iterdir():
        match = _LIVE_GAUGE_FILE.match(path.name)
        if match and not _process_exists(int(match.group(1))):
            try:
                multiprocess.mark_process_dead(int(match.group(1)), directory)  # type: ignore[no-untyped-call]
            except FileNotFoundError:
                continue  # another starting worker removed it first


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- the merged view for /model --------------------------------------------------------------------

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def merged_samples(model_name: str, model_version: str) -> Samples:
    """Every worker's samples of this model (the multiprocess files when there are several workers)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, directory)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    found: Samples = {}
    for family in registry.collect():
        for sample in family.samples:
            labels = sample.labels
            if labels.get("model_name") == model_name and labels.get("model_version") == model_version:
                others = tuple(sorted((k, v) for k, v in labels.items() if not k.startswith("model_")))
                found[(sample.name, others)] = sample.value
    return found


def drift_signals(
    samples: Samples,
    feature_names: Iterable[str],
    class_names: Sequence[str],
    training_shares: Sequence[float] | None,
) -> DriftSignals:
    """Out-of-range shares since the workers started, and recent predicted-class shares beside the training
    shares, from merged samples."""
    rows = int(samples.get(("mlkube_model_call_rows_sum", ()), 0))
    features = []
    for name in feature_names:
        below = int(samples.get(("mlkube_feature_out_of_range_total", _labels(name, BELOW_MIN)), 0))
        above = int(samples.get(("mlkube_feature_out_of_range_total", _labels(name, ABOVE_MAX)), 0))
        features.append(FeatureDrift(name, below, above, _share(below + above, rows)))
    recent = [
        int(samples.get(("mlkube_recent_predictions", (("class_name", name),)), 0)) for name in class_names
    ]
    total = sum(recent)
    classes = [
        ClassShare(
            name,
            count,
            _share(count, total),
            None if training_shares is None else round(training_shares[index], 6),
        )
        for index, (name, count) in enumerate(zip(class_names, recent, strict=True))
    ]
    return DriftSignals(rows, features, WINDOW_SECONDS, total, classes)


def _labels(feature: str, reason: str) -> tuple[tuple[str, str], ...]:
    return (("feature", feature), ("reason", reason))


def _share(count: int, total: int) -> float | None:
    return round(count / total, 6) if total else None
