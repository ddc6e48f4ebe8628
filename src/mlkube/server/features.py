"""Feature values from a request to what the model is fed, as the bundle's input schema says.

Built once per worker from `metadata.input_schema()` (`FeatureReader`); every route that takes named
features or text goes through it: the simple API's `{"features": {...}}` and `{"instances": [{...}]}`,
KServe V1's rows, V2's one input per column and MLflow's `/invocations` bodies. A list row is in schema
order; a dict names its features. Numbers are finite floats (never booleans) within float32's range;
categories are strings among the values seen in training. Where the schema says a feature may be missing,
an absent value or null is fed as NaN (number) or "" (category), as the model imputes it. Anything else
is the client's error, naming the feature.

The answer is a `Batch`: a tensor model's float32 [rows, features] array (what `Predictor.predict`
takes, as today's Iris path builds it) or a columns model's feeds, one [rows, 1] array per graph input
(`Predictor.predict_feeds`). The Iris list path never comes here: it keeps `ModelService.rows_to_array`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mlkube.api.numbers import FLOAT32_MAX
from mlkube.errors import InvalidInput, RequestError
from mlkube.model.bundle import CATEGORY, TENSOR_LAYOUT, FeatureSpec, InputSchema
from mlkube.model.feeds import MISSING_CATEGORY, onnx_feeds
from mlkube.server.batching import Batch

_SHOWN_CATEGORIES = 20


@dataclass(frozen=True)
class Feature:
    """One feature as requests are checked against it (precomputed from its `FeatureSpec`)."""

    name: str
    category: bool
    categories: frozenset[str] | None  # None: any text (the schema lists none)
    missing: bool
    known: str  # the allowed categories, for messages


class FeatureReader:
    """Checks named or positional feature values and builds the model's `Batch`, for one input schema."""

    def __init__(self, schema: InputSchema, max_rows: int) -> None:
        self.schema = schema
        self.max_rows = max_rows
        self.tensor = schema.layout == TENSOR_LAYOUT
        self.features = [_feature(spec) for spec in schema.features]
        self.by_name = {feature.name: feature for feature in self.features}
        self.names = [feature.name for feature in self.features]
        self.by_column = not self.tensor
        """One graph input per feature: every request is read here (the list path feeds one tensor)."""
        self._named_markers = (
            ("got object", "got null") if any(f.missing for f in self.features) else ("got object",)
        )

    def takes_over(self, refusal: str) -> bool:
        """Whether a list-of-numbers decoder's refusal means the body is this reader's: a row by name (an
        object), or a null where the schema allows a missing value. Asked only on that error path."""
        return any(marker in refusal for marker in self._named_markers)

    # --- the three shapes requests come in --------------------------------------------------------

    def from_items(
        self, items: Sequence[Sequence[Any] | Mapping[str, Any]], invalid: type[RequestError] = InvalidInput
    ) -> Batch:
        """Rows, each a list in schema order or a dict by feature name (the two may mix)."""
        self._check_count(len(items), invalid)
        rows = [
            self._ordered(item, index, len(items), invalid) if isinstance(item, Mapping) else item
            for index, item in enumerate(items)
        ]
        width = len(self.features)
        for index, row in enumerate(rows):
            if len(row) != width:
                where = f"row {index}" if len(rows) > 1 else "features"
                raise invalid(f"{where} has {len(row)} values, expected {width}")
        return self._batch([list(column) for column in zip(*rows, strict=True)], len(rows), invalid)

    def from_columns(
        self, columns: Mapping[str, Sequence[Any]], invalid: type[RequestError] = InvalidInput
    ) -> Batch:
        """One list of values per feature name (V2's inputs, MLflow's columnar `inputs`)."""
        unknown = next((name for name in columns if name not in self.by_name), None)
        if unknown is not None:
            raise invalid(f"unknown feature {_short(unknown)}: {self._expected()}")
        lengths = {len(values) for values in columns.values()}
        if len(lengths) > 1:
            raise invalid(f"the features have different numbers of values: {sorted(lengths)}")
        count = lengths.pop() if lengths else 0
        self._check_count(count, invalid)
        ordered = []
        for feature in self.features:
            values = columns.get(feature.name)
            if values is None:
                if not feature.missing:
                    raise invalid(f"missing feature {feature.name!r}: {self._expected()}")
                values = [None] * count
            ordered.append(list(values))
        return self._batch(ordered, count, invalid)

    # --- checks -----------------------------------------------------------------------------------

    def _check_count(self, count: int, invalid: type[RequestError]) -> None:
        if count == 0:
            raise invalid("no rows to score: send at least one")
        if count > self.max_rows:
            raise invalid(f"{count} rows is more than MAX_BATCH_SIZE={self.max_rows}")

    def _ordered(
        self, record: Mapping[str, Any], index: int, count: int, invalid: type[RequestError]
    ) -> list[Any]:
        where = f" in row {index}" if count > 1 else ""
        unknown = next((name for name in record if name not in self.by_name), None)
        if unknown is not None:
            raise invalid(f"unknown feature {_short(unknown)}{where}: {self._expected()}")
        row = []
        for feature in self.features:
            value = record.get(feature.name)
            if value is None and not feature.missing:
                raise invalid(f"missing feature {feature.name!r}{where}: {self._expected()}")
            row.append(value)
        return row

    def _expected(self) -> str:
        shown = ", ".join(self.names[:_SHOWN_CATEGORIES])
        more = (
            f" and {len(self.names) - _SHOWN_CATEGORIES} more" if len(self.names) > _SHOWN_CATEGORIES else ""
        )
        return f"the model takes {shown}{more}"

    def _batch(self, columns: list[list[Any]], count: int, invalid: type[RequestError]) -> Batch:
        checked = {
            feature.name: (_texts if feature.category else _numbers)(feature, values, invalid)
            for feature, values in zip(self.features, columns, strict=True)
        }
        if self.tensor:
            return np.ascontiguousarray(np.stack(list(checked.values()), axis=1), dtype=np.float32)
        return onnx_feeds(self.schema, checked)


def _feature(spec: FeatureSpec) -> Feature:
    category = spec.kind == CATEGORY
    categories = frozenset(spec.categories) if category and spec.categories else None
    shown = ", ".join(repr(value) for value in spec.categories[:_SHOWN_CATEGORIES])
    if len(spec.categories) > _SHOWN_CATEGORIES:
        shown += f" and {len(spec.categories) - _SHOWN_CATEGORIES} more"
    return Feature(spec.name, category, categories, spec.missing, shown)


def _numbers(feature: Feature, values: list[Any], invalid: type[RequestError]) -> NDArray[np.float32]:
    """Finite numbers within float32's range; None (missing) as NaN where the model imputes it."""
    column = np.empty(len(values), dtype=np.float64)
    for index, value in enumerate(values):
        kind = type(value)
        if kind is float or kind is int:
            try:
                column[index] = value
            except OverflowError:  # an integer beyond float64
                column[index] = math.inf
        elif value is None:
            if not feature.missing:
                raise invalid(f"missing feature {feature.name!r}: it has no default")
            column[index] = math.nan
        else:
            raise invalid(f"feature {feature.name!r} takes a number, got {_type_name(value)}")
    present = column[~np.isnan(column)] if feature.missing else column
    if not np.all(np.abs(present) <= FLOAT32_MAX):  # also false for NaN sent as a value
        raise invalid(f"feature {feature.name!r}: values must be finite and lie within ±{FLOAT32_MAX:.3e}")
    return column.astype(np.float32)


def _texts(feature: Feature, values: list[Any], invalid: type[RequestError]) -> NDArray[Any]:
    """Known categories as strings; None or "" (missing) as "" where the model imputes it."""
    allowed = feature.categories
    column: list[str] = []
    for value in values:
        if value is None or value == MISSING_CATEGORY:
            if not feature.missing:
                raise invalid(f"missing feature {feature.name!r}: it has no default")
            column.append(MISSING_CATEGORY)
        elif type(value) is not str:
            raise invalid(f"feature {feature.name!r} takes text ({feature.known}), got {_type_name(value)}")
        elif allowed is not None and value not in allowed:
            raise invalid(
                f"feature {feature.name!r}: unknown category {_short(value)} (known: {feature.known})"
            )
        else:
            column.append(value)
    return np.asarray(column, dtype=object)


def _type_name(value: object) -> str:
    names = {
        bool: "a boolean",
        str: "text",
        int: "a number",
        float: "a number",
        list: "a list",
        dict: "an object",
    }
    return names.get(type(value), "a value")


def _short(text: str, limit: int = 64) -> str:
    """A client's string in a message, cut: a megabyte key must not come back as a megabyte error."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."
