"""The training report: `report.md` and two plots, written into the bundle and hashed like every file.

Pure functions from what training knows (metadata, data, fitted forest) to bytes; `write_bundle` does the
I/O. The plots use matplotlib's Agg canvas directly (no pyplot, no display, no global backend state);
matplotlib (a training extra) is imported only when a plot is drawn, so the CLI can read REPORT_FILE.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from mlkube.model.bundle import Metadata

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from mlkube.model.datasets import Dataset

REPORT_FILE = "report.md"
CONFUSION_MATRIX_FILE = "confusion_matrix.png"
FEATURE_IMPORTANCE_FILE = "feature_importance.png"
REPORT_FILES = (REPORT_FILE, CONFUSION_MATRIX_FILE, FEATURE_IMPORTANCE_FILE)
_DPI = 100
_BLUE = "#2563eb"


def report_files(metadata: Metadata, dataset: Dataset, estimator: Any) -> dict[str, bytes]:
    """The report files by name; `metadata` is the bundle's (its `files` not filled in yet).

    The importance plot only for an estimator that measures importance (trees, boosting).
    """
    importances = _importances(estimator, len(metadata.feature_names))
    counts = np.bincount(dataset.targets, minlength=len(dataset.class_names)).tolist()
    files = {
        REPORT_FILE: render_report(metadata, counts, importances).encode("utf-8"),
        CONFUSION_MATRIX_FILE: confusion_matrix_png(_confusion_matrix(metadata), metadata.class_names),
    }
    if importances is not None:
        files[FEATURE_IMPORTANCE_FILE] = feature_importance_png(metadata.feature_names, importances)
    return files


def table_report_files(metadata: Metadata, targets: NDArray[Any]) -> dict[str, bytes]:
    """The report of a Pipeline trained on a table: no importances (one-hot columns are not features)."""
    if metadata.is_regressor:
        return {REPORT_FILE: render_regression_report(metadata, targets).encode("utf-8")}
    counts = np.bincount(targets.astype(np.int64), minlength=len(metadata.class_names)).tolist()
    return {
        REPORT_FILE: render_report(metadata, counts, None).encode("utf-8"),
        CONFUSION_MATRIX_FILE: confusion_matrix_png(_confusion_matrix(metadata), metadata.class_names),
    }


def _importances(estimator: Any, n_features: int) -> list[float] | None:
    values = getattr(estimator, "feature_importances_", None)
    if values is None or len(values) != n_features:
        return None
    total = float(np.sum(values))
    scale = total if total > 1.0 + 1e-9 else 1.0  # LightGBM counts splits; scikit-learn's sum to 1
    return [float(value) / scale for value in values]


def class_samples(dataset: Dataset, predicted: NDArray[np.int64]) -> list[list[float]]:
    """One typical training row per class, in class order: the row nearest the class median.

    Distances are in units of each feature's spread, and rows the model classifies correctly are
    preferred, so the model page's "sample" button of a class shows that class.
    """
    features = dataset.features
    spread = features.std(axis=0)
    scaled = features / np.where(spread > 0, spread, 1.0)
    samples: list[list[float]] = []
    for index in range(len(dataset.class_names)):
        members = np.flatnonzero(dataset.targets == index)
        correct = members[predicted[members] == index]
        candidates = correct if len(correct) else members
        median = np.median(scaled[candidates], axis=0)
        nearest = candidates[np.argmin(np.linalg.norm(scaled[candidates] - median, axis=1))]
        samples.append([float(value) for value in features[nearest]])
    return samples


# --- report.md ------------------------------------------------------------------------------------


def render_report(
    metadata: Metadata, class_counts: Sequence[int], importances: Sequence[float] | None
) -> str:
    """The Markdown report: data summary, parameters, metrics, per-class table, plots, libraries."""
    sections = [
        _title(metadata),
        _data_section(metadata, class_counts, importances),
        _parameters_section(metadata.params),
        _metrics_section(metadata.metrics),
        _per_class_section(metadata),
        _confusion_section(metadata),
    ]
    if importances is not None:
        sections.append(f"## Feature importance\n\n![Feature importance]({FEATURE_IMPORTANCE_FILE})\n")
    sections.append(_libraries_section(metadata))
    return "\n".join(sections)


def render_regression_report(metadata: Metadata, targets: NDArray[Any]) -> str:
    """A regressor's report: the target's spread, the inputs, parameters, metrics, libraries."""
    values = np.asarray(targets, dtype=np.float64)
    summary = (
        f"{len(values)} rows, {metadata.n_features} features; target from {_number(float(values.min()))} "
        f"to {_number(float(values.max()))}, mean {_number(float(values.mean()))}. "
        f"{metadata.metrics.get('n_train', '?')} rows for training, {metadata.metrics.get('n_test', '?')} "
        f"held out (seed {metadata.params.get('seed', '?')}). Data sha256 `{metadata.data_sha256}`."
    )
    sections = [
        _title(metadata),
        f"## Data\n\n{summary}\n\n{_inputs_table(metadata)}",
        _parameters_section(metadata.params),
        _metrics_section(metadata.metrics),
        _libraries_section(metadata),
    ]
    return "\n".join(sections)


def _inputs_table(metadata: Metadata) -> str:
    rows = []
    for spec in metadata.input_schema().features:
        if spec.categories:
            shown = ", ".join(spec.categories[:8]) + (" …" if len(spec.categories) > 8 else "")
            rows.append([spec.name, spec.kind, shown, "yes" if spec.missing else "no"])
        else:
            bounds = (
                "-" if spec.min is None or spec.max is None else f"{_number(spec.min)} to {_number(spec.max)}"
            )
            rows.append([spec.name, spec.kind, bounds, "yes" if spec.missing else "no"])
    return _table(["feature", "kind", "range or values", "may be missing"], rows)


def _libraries_section(metadata: Metadata) -> str:
    return _table(["library", "version"], [[k, v] for k, v in metadata.library_versions.items()], "Libraries")


def _title(metadata: Metadata) -> str:
    lines = [f"# {metadata.name} {metadata.version}", ""]
    if metadata.description:
        lines += [metadata.description, ""]
    lines += [
        f"Trained {metadata.created_at} with mlkube {metadata.library_versions.get('mlkube', '?')}.",
        "",
    ]
    return "\n".join(lines)


def _data_section(
    metadata: Metadata, class_counts: Sequence[int], importances: Sequence[float] | None
) -> str:
    total = sum(class_counts)
    metrics = metadata.metrics
    summary = (
        f"{total} rows, {metadata.n_features} features, {metadata.n_classes} classes; "
        f"{metrics.get('n_train', '?')} rows for training, {metrics.get('n_test', '?')} held out "
        f"(stratified, seed {metadata.params.get('seed', '?')}). Data sha256 `{metadata.data_sha256}`."
    )
    classes = _table(
        ["class", "rows", "share"],
        [
            [name, str(count), f"{count / total:.1%}" if total else "-"]
            for name, count in zip(metadata.class_names, class_counts, strict=False)
        ],
    )
    if importances is None:
        return f"## Data\n\n{summary}\n\n{classes}\n{_inputs_table(metadata)}"
    stats = {stat.name: stat for stat in metadata.features}
    feature_rows = []
    for name, importance in zip(metadata.feature_names, importances, strict=False):
        stat = stats.get(name)
        shown = [_number(stat.min), _number(stat.mean), _number(stat.max)] if stat else ["-", "-", "-"]
        feature_rows.append([name, *shown, f"{importance:.3f}"])
    features = _table(["feature", "min", "mean", "max", "importance"], feature_rows)
    return f"## Data\n\n{summary}\n\n{classes}\n{features}"


def _parameters_section(params: Mapping[str, object]) -> str:
    return _table(
        ["parameter", "value"], [[key, _value(value)] for key, value in params.items()], "Parameters"
    )


def _metrics_section(metrics: Mapping[str, object]) -> str:
    named = [
        ("accuracy", "accuracy"),
        ("f1_macro", "macro-F1"),
        ("r2", "R²"),
        ("mae", "mean absolute error"),
        ("rmse", "root mean squared error"),
        ("n_test", "held-out rows"),
        ("n_train", "training rows"),
        ("onnx_max_abs_diff", "largest ONNX vs native difference (probability or value)"),
    ]
    rows = [[label, _value(metrics[key])] for key, label in named if key in metrics]
    return _table(["metric (on the held-out rows)", "value"], rows, "Metrics")


def _per_class_section(metadata: Metadata) -> str:
    per_class = metadata.metrics.get("per_class")
    if not isinstance(per_class, Mapping):
        return ""
    rows = []
    for name in metadata.class_names:
        scores = per_class.get(name)
        if isinstance(scores, Mapping):
            keys = ("precision", "recall", "f1-score", "support")
            rows.append([name, *(_value(scores.get(key, "-")) for key in keys)])
    return _table(["class", "precision", "recall", "F1", "support"], rows, "Per class")


def _confusion_section(metadata: Metadata) -> str:
    matrix = _confusion_matrix(metadata)
    if not matrix:
        return ""
    rows = [[name, *map(str, counts)] for name, counts in zip(metadata.class_names, matrix, strict=False)]
    table = _table(["true class", *metadata.class_names], rows)
    return (
        "## Confusion matrix\n\nHeld-out rows by true class (rows) and predicted class (columns).\n\n"
        f"{table}\n![Confusion matrix]({CONFUSION_MATRIX_FILE})\n"
    )


def _confusion_matrix(metadata: Metadata) -> list[list[int]]:
    matrix = metadata.metrics.get("confusion_matrix")
    if not isinstance(matrix, list):
        return []
    return [[int(count) for count in row] for row in matrix]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], title: str | None = None) -> str:
    lines = [f"## {title}", ""] if title else []
    lines.append("| " + " | ".join(map(_cell, header)) + " |")
    lines.append("|" + "|".join(" --- " for _ in header) + "|")
    lines += ["| " + " | ".join(map(_cell, row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """A table cell: a `|` in a user's column name must not open a new cell."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _value(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return _number(value)
    return str(value)


def _number(value: float) -> str:
    return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.3e}"


# --- plots ----------------------------------------------------------------------------------------


def confusion_matrix_png(matrix: Sequence[Sequence[int]], class_names: Sequence[str]) -> bytes:
    """Counts of true (rows) by predicted (columns) class on the held-out rows, as a heat map."""
    size = 2.4 + 0.55 * len(class_names)
    figure, axes = _figure(size, size)
    values = np.asarray(matrix, dtype=float)
    axes.imshow(values, cmap="Blues", vmin=0)  # no colour bar: every cell is labelled with its count
    ticks = range(len(class_names))
    rotated = len(class_names) > 3
    axes.set_xticks(
        ticks, labels=class_names, rotation=30 if rotated else 0, ha="right" if rotated else "center"
    )
    axes.set_yticks(ticks, labels=class_names)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(f"Confusion matrix ({int(values.sum())} held-out rows)")
    threshold = values.max() / 2 if values.size else 0
    for (row, column), count in np.ndenumerate(values):
        colour = "white" if count > threshold else "#1f2937"
        axes.text(column, row, str(int(count)), ha="center", va="center", color=colour, fontsize=11)
    return _png(figure)


def feature_importance_png(feature_names: Sequence[str], importances: Sequence[float]) -> bytes:
    """The forest's impurity-based importance of each feature, largest on top."""
    order = np.argsort(importances)
    figure, axes = _figure(6.0, 1.2 + 0.4 * len(feature_names))
    axes.barh([feature_names[i] for i in order], [importances[i] for i in order], color=_BLUE)
    for position, index in enumerate(order):
        axes.text(importances[index], position, f" {importances[index]:.3f}", va="center", fontsize=9)
    axes.set_xlim(0, max(max(importances, default=0.0) * 1.2, 0.05))
    axes.set_xlabel("mean decrease in impurity")
    axes.set_title("Feature importance")
    axes.spines[["top", "right"]].set_visible(False)
    return _png(figure)


def _figure(width: float, height: float) -> tuple[Figure, Axes]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=_DPI)  # no layout engine: savefig's tight box is cheaper
    FigureCanvasAgg(figure)
    return figure, figure.add_subplot()


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    # no "Software" stamp: the same model gives byte-identical plots
    figure.savefig(buffer, format="png", metadata={"Software": None}, bbox_inches="tight", pad_inches=0.15)
    return buffer.getvalue()
