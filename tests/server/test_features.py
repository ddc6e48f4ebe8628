"""The input schema's checks (`server/features.py`), on schemas written out here: what each row becomes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlkube.errors import InferenceError, InvalidInput
from mlkube.model.bundle import COLUMNS_LAYOUT, FeatureSpec, InputSchema
from mlkube.server.features import FeatureReader

NUMBERS = InputSchema(features=[FeatureSpec(name="a"), FeatureSpec(name="b", missing=True)])
MIXED = InputSchema(
    layout=COLUMNS_LAYOUT,
    features=[
        FeatureSpec(name="size", missing=True, onnx_input="size_in"),
        FeatureSpec(name="colour", kind="category", categories=["blue", "red"], onnx_input="colour_in"),
    ],
)


def test_a_tensor_model_gets_one_float32_array_whatever_the_row_shape() -> None:
    reader = FeatureReader(NUMBERS, max_rows=10)
    array = reader.from_items([[1.0, 2.0], {"b": 4.0, "a": 3.0}, {"a": 5}])
    assert isinstance(array, np.ndarray)
    assert array.dtype == np.float32
    assert array.shape == (3, 2)
    assert array[:2].tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert array[2, 0] == 5.0
    assert math.isnan(array[2, 1])  # b may be missing: fed as NaN
    by_column = reader.from_columns({"a": [1.0, 3.0], "b": [2.0, 4.0]})
    assert isinstance(by_column, np.ndarray)
    assert np.array_equal(by_column, array[:2])


def test_a_columns_model_gets_one_input_per_feature() -> None:
    feeds = FeatureReader(MIXED, max_rows=10).from_items([{"colour": "red"}, [2.5, "blue"]])
    assert isinstance(feeds, dict)
    assert set(feeds) == {"size_in", "colour_in"}
    assert feeds["size_in"].dtype == np.float32
    assert feeds["size_in"].shape == (2, 1)
    assert math.isnan(feeds["size_in"][0, 0])
    assert feeds["colour_in"].dtype == object
    assert feeds["colour_in"].ravel().tolist() == ["red", "blue"]


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([{"a": 1.0, "c": 2.0}], "unknown feature 'c': the model takes a, b"),
        ([{"b": 1.0}], "missing feature 'a'"),
        ([[None, 1.0]], "missing feature 'a'"),
        ([[True, 1.0]], "feature 'a' takes a number, got a boolean"),
        ([["1", 1.0]], "feature 'a' takes a number, got text"),
        ([[10**400, 1.0]], "feature 'a': values must be finite"),
        ([[1.0]], "features has 1 values, expected 2"),
        ([], "no rows to score"),
        ([[1.0, 2.0]] * 11, "11 rows is more than MAX_BATCH_SIZE=10"),
    ],
)
def test_what_cannot_be_scored_is_refused_naming_it(items: list[object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        FeatureReader(NUMBERS, max_rows=10).from_items(items)  # type: ignore[arg-type]


def test_categories_are_text_the_model_knows_and_errors_take_the_protocols_class() -> None:
    reader = FeatureReader(MIXED, max_rows=10)
    with pytest.raises(
        InferenceError, match="feature 'colour': unknown category 'green' \\(known: 'blue', 'red'\\)"
    ):
        reader.from_columns({"colour": ["green"]}, InferenceError)
    with pytest.raises(InvalidInput, match="missing feature 'colour'"):
        reader.from_items([{"size": 1.0, "colour": ""}])  # "" is the missing marker, and colour needs a value
    with pytest.raises(InvalidInput, match="feature 'colour' takes text \\('blue', 'red'\\), got a number"):
        reader.from_items([[1.0, 3]])
    with pytest.raises(InvalidInput, match="different numbers of values"):
        reader.from_columns({"size": [1.0, 2.0], "colour": ["red"]})
    long_name = "k" * 10_000
    with pytest.raises(InvalidInput) as refused:
        reader.from_items([{long_name: 1.0}])
    assert len(str(refused.value)) < 200
