"""The model card in the terminal (`mlkube models show`): rich tables built from a verified bundle."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mlkube.errors import BundleError
from mlkube.model.bundle import Bundle, Metadata, latest_bundle_path, validate_name, versions_of
from mlkube.model.report import REPORT_FILE

_METRICS = (
    ("accuracy", "accuracy"),
    ("f1_macro", "macro-F1"),
    ("r2", "R²"),
    ("mae", "mean absolute error"),
    ("rmse", "root mean squared error"),
    ("n_test", "held-out rows"),
    ("n_train", "training rows"),
    ("onnx_max_abs_diff", "ONNX vs native model, largest difference"),
    ("parity_rows", "rows in the parity check"),
)


def bundle_folder(root: Path, name: str, version: str | None) -> Path:
    """`<root>/<name>/<version>`, or the newest version; an unknown one names those that exist."""
    validate_name("model name", name)
    if version is None:
        return latest_bundle_path(root, name)
    validate_name("version", version)
    known = versions_of(root, name)
    if version not in known:
        listed = ", ".join(known) if known else "none"
        raise BundleError(f"no version {version!r} of model {name!r} under {root} (versions: {listed})")
    return root / name / version


def render_card(bundle: Bundle) -> RenderableType:
    metadata = bundle.metadata
    parts: list[RenderableType] = [_heading(metadata), _metrics_table(metadata.metrics)]
    per_class = _per_class_table(metadata)
    if per_class is not None:
        parts.append(per_class)
    parts += [_features_table(metadata), _key_values("Parameters", metadata.params)]
    return Group(*parts)


def report_line(bundle: Bundle) -> Text:
    """Where the training report is, or why there is none."""
    if REPORT_FILE in bundle.metadata.files:
        plots = sorted(name for name in bundle.metadata.files if name.endswith(".png"))
        line = Text("Report: ", style="bold")
        line.append(str((bundle.path / REPORT_FILE).resolve()))
        if plots:
            line.append(f"  (plots beside it: {', '.join(plots)})", style="dim")
        return line
    return Text("No training report in this bundle (trained before mlkube wrote reports).", style="dim")


def digest_line(bundle: Bundle) -> Text:
    """The bundle's digest, to pin it where it is served (MODEL_SHA256) so a rewritten bundle is refused."""
    line = Text("Bundle digest: ", style="bold")
    line.append(bundle.digest)
    line.append("  (sha256 of metadata.json; serve with MODEL_SHA256 set to it)", style="dim")
    return line


def _heading(metadata: Metadata) -> Text:
    text = Text(f"{metadata.name} {metadata.version}\n", style="bold")
    if metadata.description:
        text.append(f"{metadata.description}\n")
    if metadata.is_regressor:
        text.append("task: regression\n")
    else:
        text.append(f"classes: {', '.join(metadata.class_names)}\n")
    if metadata.runtime != "onnx":
        text.append(f"runtime: {metadata.runtime} (ONNX could not express this model)\n")
    text.append(f"created {metadata.created_at}\n", style="dim")
    text.append(f"{len(metadata.files)} files verified by sha256; data sha256 {metadata.data_sha256[:16]}…")
    return text


def _metrics_table(metrics: Mapping[str, object]) -> Table:
    table = Table(title="Metrics (held-out rows)", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, label in _METRICS:
        if key in metrics:
            table.add_row(label, _shown(metrics[key]))
    return table


def _per_class_table(metadata: Metadata) -> Table | None:
    per_class = metadata.metrics.get("per_class")
    if not isinstance(per_class, Mapping):
        return None
    table = Table(title="Per class", title_justify="left")
    table.add_column("class")
    for column in ("precision", "recall", "F1", "support"):
        table.add_column(column, justify="right")
    for name in metadata.class_names:
        scores = per_class.get(name)
        if isinstance(scores, Mapping):
            keys = ("precision", "recall", "f1-score", "support")
            table.add_row(name, *(_shown(scores.get(key)) for key in keys))
    return table


def _features_table(metadata: Metadata) -> Table:
    table = Table(title="Features (training range)", title_justify="left")
    table.add_column("feature")
    for column in ("min", "mean", "max"):
        table.add_column(column, justify="right")
    stats = {stat.name: stat for stat in metadata.features}
    for name in metadata.feature_names:
        stat = stats.get(name)
        values = (stat.min, stat.mean, stat.max) if stat else (None, None, None)
        table.add_row(name, *map(_shown, values))
    return table


def _key_values(title: str, values: Mapping[str, object]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("name")
    table.add_column("value", justify="right")
    for key, value in values.items():
        table.add_row(key, _shown(value))
    return table


def _shown(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
