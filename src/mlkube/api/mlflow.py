"""MLflow's scoring protocol (`mlflow models serve`): `POST /invocations` bodies and its answer.

A body holds exactly one of `dataframe_split` (pandas' split orient: `columns` and `data` rows),
`dataframe_records` (one object per row), `instances` or `inputs` (TF Serving style: rows as lists or
objects, or one list per column by name), and optionally `params`; the answer is `{"predictions": [...]}`,
one value per row: the class label the model predicts (its `classes_` value) or a regressor's value.
"""

from __future__ import annotations

from typing import Any

import msgspec

FeatureValue = float | str | None
Row = list[FeatureValue] | dict[str, FeatureValue]
TensorInput = list[Row] | dict[str, list[FeatureValue]]
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


class DataframeSplit(msgspec.Struct, kw_only=True):
    columns: list[str] | None = None
    data: list[list[FeatureValue]]
    index: list[int | str] | None = None


class InvocationsRequest(msgspec.Struct, kw_only=True):
    dataframe_split: DataframeSplit | None = None
    dataframe_records: list[dict[str, FeatureValue]] | None = None
    instances: TensorInput | None = None
    inputs: TensorInput | None = None
    params: dict[str, Any] | None = None


class InvocationsPredictions(msgspec.Struct):
    """One prediction per row, in order: a class label (int or text) or a regressor's value."""

    predictions: list[int | float | str]
