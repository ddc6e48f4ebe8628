"""MLflow's scoring protocol: `POST /invocations`, so clients of `mlflow models serve` switch unchanged.

The bodies are MLflow's (`dataframe_split`, `dataframe_records`, `instances`, `inputs`; exactly one of
them, as mlflow's `scoring_server` requires), read through the data plane's `FeatureReader` like every
other route, and the answer is MLflow's `{"predictions": [...]}`: the label the model predicts per row
(its `classes_` values, as `model.predict` returns them) or a regressor's value. Every client error is a
400, as MLflow answers them (its BAD_REQUEST), in mlkube's `{"error": ...}` body. `text/csv` bodies are
taken too, as `mlflow models serve` takes them (pandas' `read_csv`: a header row, then one line per row);
they are read with the csv module (no pandas at serve time) under the same MAX_BODY_BYTES bound, and
their columns go by header name through the same checks as `dataframe_split`: an empty cell is a missing
value, a number column's cells must parse as numbers. Any other Content-Type that is not JSON is a 415.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from typing import Annotated, Any

import msgspec

from mlkube.api.mlflow import FORMATS, DataframeSplit, InvocationsPredictions, InvocationsRequest
from mlkube.api.simple import ErrorBody, Health
from mlkube.errors import RequestError
from mlkube.server.batching import Batch
from mlkube.server.dataplane import DataPlane
from mlkube.server.features import FeatureReader
from mlkube.server.http import Operation, Request, Response, Route, decode_json, is_csv
from mlkube.server.openapi import example_row, features_record_schema, instances_schema, value_schema

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(InvocationsRequest).decode
_HEALTHY = _encode(Health("healthy"))
REQUIRED_INPUT_FORMAT = (
    "The input must be a JSON dictionary with exactly one of the input fields "
    "{'dataframe_split', 'dataframe_records', 'instances', 'inputs'}"
)


class MlflowScoring:
    """`/invocations` and `/ping` on the data plane."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane

    def routes(self) -> list[Route]:
        return [
            Route(
                "/invocations",
                {"POST": self.invocations},
                protected=True,
                csv_body=True,
                summary="MLflow scoring (`mlflow models serve`): one prediction per row",
                operations={"POST": self._doc()},
            ),
            Route(
                "/ping",
                {"GET": self.ping},
                summary="MLflow's liveness check: the process answers",
                operations={"GET": Operation(responses={200: Health})},
            ),
        ]

    def ping(self, request: Request) -> Response:
        return Response(200, _HEALTHY)

    async def invocations(self, request: Request) -> Response:
        plane = self.plane
        plane.require_model()
        if is_csv(request.headers.get("content-type")):
            rows = read_csv_rows(request.body, plane.features)
        else:
            rows = read_rows(decode_json(_decode, request.body, RequestError), plane.features)
        predictions = plane.labels(await plane.submit_array(rows))
        return Response(200, _encode(InvocationsPredictions(predictions)))  # type: ignore[arg-type]

    def _doc(self) -> Operation:
        plane = self.plane
        max_rows = plane.settings.max_batch_size
        request = Annotated[
            InvocationsRequest, msgspec.Meta(extra_json_schema=request_schema(plane, max_rows))
        ]
        row = example_row(plane)
        return Operation(
            request=request,
            responses={200: InvocationsPredictions, 400: ErrorBody, 503: ErrorBody},
            description=(
                "Exactly one of `dataframe_split`, `dataframe_records`, `instances` and `inputs`, as MLflow "
                "takes them; answers MLflow's `{\"predictions\": [...]}`: each row's class label, or a "
                "regressor's value. Errors are 400, as MLflow answers them. `text/csv` is taken too: a "
                "header row naming the columns, then one line per row."
            ),
            example={"dataframe_split": {"columns": plane.features.names, "data": [row]}},
            csv_example=csv_example(plane.features.names, row),
        )


def read_rows(body: InvocationsRequest, reader: FeatureReader) -> Batch:
    """The model's input from whichever one of MLflow's four formats the body holds."""
    given = [name for name in FORMATS if getattr(body, name) is not None]
    if len(given) != 1:
        raise RequestError(f"{REQUIRED_INPUT_FORMAT}. Received {len(given)} of them: {given}")
    if body.dataframe_split is not None:
        return _split(body.dataframe_split, reader)
    if body.dataframe_records is not None:
        return reader.from_items(body.dataframe_records, RequestError)
    tensor = body.instances if body.instances is not None else body.inputs
    if isinstance(tensor, dict):
        return reader.from_columns(tensor, RequestError)
    return reader.from_items(tensor or [], RequestError)


def _split(frame: DataframeSplit, reader: FeatureReader) -> Batch:
    """pandas' split orient; JSON Schema cannot tie a row's length to `columns`: those errors say so."""
    try:
        if frame.columns is None:
            return reader.from_items(frame.data, RequestError)
        return reader.from_columns(_by_column(frame.columns, frame.data), RequestError)
    except RequestError as error:
        raise RequestError(f"dataframe_split: {error}") from None


def _by_column(columns: list[str], data: Sequence[Sequence[Any]]) -> dict[str, list[Any]]:
    if len(set(columns)) != len(columns):
        raise RequestError("a column is named twice")
    for index, row in enumerate(data):
        if len(row) != len(columns):
            raise RequestError(f"row {index} has {len(row)} values for {len(columns)} columns")
    return {name: [row[position] for row in data] for position, name in enumerate(columns)}


def read_csv_rows(body: bytes, reader: FeatureReader) -> Batch:
    """A `text/csv` body: a header row naming the columns, then the rows (blank lines skipped, as pandas
    does). Every error is a 400 starting `text/csv:`, as JSON Schema cannot describe a table in a string."""
    try:
        lines = csv.reader(io.StringIO(body.decode("utf-8-sig"), newline=""), strict=True)
        header = next(lines, None)
        if not header:
            raise RequestError("no header row: the first line names the columns")
        if len(set(header)) != len(header):
            raise RequestError("a column is named twice")
        columns: dict[str, list[Any]] = {name: [] for name in header}
        for index, row in enumerate(_data_rows(lines, reader.max_rows)):
            if len(row) != len(header):
                raise RequestError(f"row {index} has {len(row)} values for {len(header)} columns")
            for name, cell in zip(header, row, strict=True):
                columns[name].append(_cell(name, cell, reader, index))
        return reader.from_columns(columns, RequestError)
    except UnicodeDecodeError:
        raise RequestError("text/csv: the body is not UTF-8") from None
    except csv.Error as error:
        raise RequestError(f"text/csv: not CSV ({error})") from None
    except RequestError as error:
        raise RequestError(f"text/csv: {error}") from None


def csv_example(names: list[str], row: Sequence[Any]) -> str:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(names)
    writer.writerow(["" if value is None else value for value in row])
    return text.getvalue()


def _data_rows(lines: Iterator[list[str]], max_rows: int) -> Iterator[list[str]]:
    """The non-blank rows, stopping as soon as there are more than MAX_BATCH_SIZE of them."""
    count = 0
    for row in lines:
        if not row:
            continue
        count += 1
        if count > max_rows:
            raise RequestError(f"more than MAX_BATCH_SIZE={max_rows} rows")
        yield row


def _cell(name: str, cell: str, reader: FeatureReader, index: int) -> Any:
    """An empty cell is missing; a number column's cell is parsed (an unknown column's is left as text)."""
    if cell == "":
        return None
    feature = reader.by_name.get(name)
    if feature is None or feature.category:
        return cell
    try:
        return float(cell)
    except ValueError:
        raise RequestError(
            f"feature {name!r} takes a number, got {_short_text(cell)} in row {index}"
        ) from None


def _short_text(cell: str) -> str:
    return repr(cell if len(cell) <= 40 else cell[:40] + "...")


def request_schema(plane: DataPlane, max_rows: int) -> dict[str, Any]:
    """What /openapi.json says of the body: exactly one format, each row or column as the model takes it."""
    specs = plane.features.schema.features
    names = [spec.name for spec in specs]
    value = {"anyOf": [{"type": "number"}, {"type": "string"}, {"type": "null"}]}
    split = {
        "type": "object",
        "required": ["data"],
        "properties": {
            "columns": {"type": "array", "items": {"enum": names}, "uniqueItems": True},
            "data": {"type": "array", "items": {"type": "array", "items": value}, "minItems": 1},
        },
    }
    records = {"type": "array", "items": features_record_schema(plane), "minItems": 1, "maxItems": max_rows}
    columns = {
        "type": "object",
        "properties": {
            spec.name: {"type": "array", "items": value_schema(spec), "minItems": 1, "maxItems": max_rows}
            for spec in specs
        },
        "required": [spec.name for spec in specs if not spec.missing],
        "additionalProperties": False,
    }
    tensor = {"anyOf": [instances_schema(plane, max_rows), columns]}
    return {
        "oneOf": [{"required": [name]} for name in FORMATS],
        "properties": {
            "dataframe_split": split,
            "dataframe_records": records,
            "instances": tensor,
            "inputs": tensor,
            "params": {"type": "object"},
        },
    }
