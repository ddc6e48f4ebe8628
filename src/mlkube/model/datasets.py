"""Training data: the notes' Iris, a strict numeric CSV, and a pandas table of mixed columns.

Pure readers: they return arrays or a frame and the facts training needs, and never touch a bundle.
`report.py` and `train.py` both import from here, so neither imports the other.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
from numpy.typing import NDArray

from mlkube.errors import MlkubeError

if TYPE_CHECKING:
    import pandas as pd

CLASSIFICATION = "classification"
REGRESSION = "regression"
TASKS = (CLASSIFICATION, REGRESSION)
MAX_CATEGORIES = 200
"""A text column with more distinct values than this is refused: one-hot encoding would explode it."""


class TrainingError(MlkubeError):
    """The data or the parameters cannot give a servable model."""


@dataclass(frozen=True)
class Dataset:
    """Features as float64, targets as class indexes 0..k-1 into `class_names`."""

    features: NDArray[np.float64]
    targets: NDArray[np.int64]
    feature_names: list[str]
    class_names: list[str]
    description: str

    @property
    def fingerprint(self) -> str:
        """sha256 of the values and names, independent of where they were read from."""
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(self.features, dtype="<f8").tobytes())
        digest.update(np.ascontiguousarray(self.targets, dtype="<i8").tobytes())
        digest.update(msgspec.json.encode([self.feature_names, self.class_names]))
        return digest.hexdigest()


@dataclass(frozen=True)
class Table:
    """A CSV's features as a frame (numbers as float64 with NaN, text as str with "" for missing).

    `targets` are class indexes into `class_names` for classification, float64 values for regression.
    """

    frame: pd.DataFrame
    targets: NDArray[Any]
    numeric: list[str]
    categorical: list[str]
    class_names: list[str]
    task: str
    description: str

    @property
    def feature_names(self) -> list[str]:
        return [str(name) for name in self.frame.columns]

    @property
    def has_missing(self) -> bool:
        numbers = self.frame[self.numeric].isna().to_numpy().any() if self.numeric else False
        texts = (self.frame[self.categorical] == "").to_numpy().any() if self.categorical else False
        return bool(numbers or texts)

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for name in self.frame.columns:
            column = self.frame[name]
            values = column.to_numpy(dtype="<f8") if name in self.numeric else column.to_numpy(dtype=str)
            digest.update(msgspec.json.encode([str(name), values.tolist()]))
        digest.update(np.ascontiguousarray(self.targets).tobytes())
        digest.update(msgspec.json.encode(self.class_names))
        return digest.hexdigest()


def load_iris_dataset() -> Dataset:
    """The notes' data set; scikit-learn ships it, nothing is downloaded."""
    from sklearn.datasets import load_iris

    iris = load_iris()
    return Dataset(
        features=np.asarray(iris.data, dtype=np.float64),
        targets=np.asarray(iris.target, dtype=np.int64),
        feature_names=[_clean_feature_name(name) for name in iris.feature_names],
        class_names=[str(name) for name in iris.target_names],
        description="Iris (scikit-learn's bundled copy of Fisher's data, 150 rows)",
    )


def _clean_feature_name(name: str) -> str:
    return name.replace(" (cm)", "_cm").replace(" ", "_")


def read_csv_dataset(path: Path, target: str) -> Dataset:
    """A CSV with a header row: numeric feature columns plus a `target` column of class labels."""
    try:
        with path.open(newline="", encoding="utf-8") as stream:
            rows = list(csv.reader(stream))
    except OSError as error:
        raise TrainingError(f"{path}: cannot be read ({error.strerror})") from None
    if len(rows) < 2:
        raise TrainingError(f"{path}: needs a header row and at least one data row")
    header = [name.strip() for name in rows[0]]
    if target not in header:
        raise TrainingError(f"{path}: no column {target!r} (columns: {', '.join(header)})")
    target_index = header.index(target)
    feature_names = [name for i, name in enumerate(header) if i != target_index]
    features, labels = _parse_rows(path, rows[1:], target_index, len(header))
    class_names = sorted(set(labels))
    if len(class_names) < 2:
        raise TrainingError(f"{path}: column {target!r} needs at least two classes")
    index = {name: i for i, name in enumerate(class_names)}
    return Dataset(
        features=np.asarray(features, dtype=np.float64),
        targets=np.asarray([index[label] for label in labels], dtype=np.int64),
        feature_names=feature_names,
        class_names=class_names,
        description=f"{path.name} ({len(labels)} rows, target column {target!r})",
    )


def _parse_rows(
    path: Path, rows: list[list[str]], target_index: int, width: int
) -> tuple[list[list[float]], list[str]]:
    features: list[list[float]] = []
    labels: list[str] = []
    for line_number, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != width:
            raise TrainingError(f"{path}:{line_number}: {len(row)} values, the header has {width}")
        values = [cell.strip() for i, cell in enumerate(row) if i != target_index]
        try:
            parsed = [float(value) for value in values]
        except ValueError:
            raise TrainingError(f"{path}:{line_number}: feature values must be numbers: {values}") from None
        if not np.all(np.isfinite(parsed)):
            raise TrainingError(f"{path}:{line_number}: feature values must be finite: {values}")
        features.append(parsed)
        labels.append(row[target_index].strip())
    return features, labels


def read_csv_frame(path: Path) -> pd.DataFrame:
    """A CSV as pandas reads it (header row; empty cells are missing); errors name the file."""
    import pandas as pd

    try:
        frame = pd.read_csv(path, skipinitialspace=True)
    except FileNotFoundError:
        raise TrainingError(f"{path}: no such file") from None
    except OSError as error:
        raise TrainingError(f"{path}: cannot be read ({error.strerror})") from None
    except (ValueError, pd.errors.ParserError) as error:
        raise TrainingError(f"{path}: not a readable CSV ({error})") from None
    frame.columns = [str(name).strip() for name in frame.columns]
    if frame.empty:
        raise TrainingError(f"{path}: needs a header row and at least one data row")
    return frame


def split_columns(frame: pd.DataFrame, path: Path) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Numbers as float64 (NaN when missing), every other column as text ("" when missing)."""
    import pandas as pd

    numeric: list[str] = []
    categorical: list[str] = []
    columns: dict[str, Any] = {}
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
            text = column.astype(object).where(column.notna(), "").map(str).map(str.strip)
            if text.nunique() > MAX_CATEGORIES:
                raise TrainingError(
                    f"{path}: column {name!r} has {text.nunique()} distinct text values (at most "
                    f"{MAX_CATEGORIES}): is it an identifier? Drop it or make it a number"
                )
            columns[name] = text.astype(object)
            categorical.append(name)
        else:
            values = column.astype("float64")
            if np.isinf(values.to_numpy()).any():
                raise TrainingError(f"{path}: column {name!r} holds an infinite value")
            columns[name] = values
            numeric.append(name)
    return pd.DataFrame(columns), numeric, categorical


def read_table(path: Path, target: str, task: str) -> Table:
    """A CSV of numeric and text columns with missing values; `target` is the column to predict."""
    frame = read_csv_frame(path)
    if target not in frame.columns:
        raise TrainingError(f"{path}: no column {target!r} (columns: {', '.join(frame.columns)})")
    labels = frame[target]
    known = labels.notna().to_numpy()
    if not known.all():
        raise TrainingError(f"{path}: column {target!r} is empty on {int((~known).sum())} rows")
    features, numeric, categorical = split_columns(frame.drop(columns=[target]), path)
    if not numeric and not categorical:
        raise TrainingError(f"{path}: no feature columns beside {target!r}")
    description = f"{path.name} ({len(frame)} rows, target column {target!r})"
    if task == REGRESSION:
        try:
            values = labels.astype("float64").to_numpy()
        except (TypeError, ValueError):
            raise TrainingError(f"{path}: column {target!r} must hold numbers for regression") from None
        return Table(features, values, numeric, categorical, [], task, description)
    names = labels.map(_label_text)
    class_names = sorted(set(names))
    if len(class_names) < 2:
        raise TrainingError(f"{path}: column {target!r} needs at least two classes")
    index = {name: i for i, name in enumerate(class_names)}
    targets = np.asarray([index[name] for name in names], dtype=np.int64)
    return Table(features, targets, numeric, categorical, class_names, task, description)


def _label_text(value: object) -> str:
    """Class labels as text; 1.0 read by pandas from a column of whole numbers stays "1"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def iris_table() -> Table:
    """Iris as a Table (for tests and the zoo)."""
    import pandas as pd

    iris = load_iris_dataset()
    frame = pd.DataFrame(iris.features, columns=iris.feature_names)
    return Table(
        frame, iris.targets, iris.feature_names, [], iris.class_names, CLASSIFICATION, iris.description
    )
