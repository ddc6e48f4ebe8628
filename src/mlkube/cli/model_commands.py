"""`mlkube train`, `mlkube import` and `mlkube models`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlkube.cli._output import friendly_errors
from mlkube.model.bundle import Metadata, list_bundles, read_bundle, versions_of

ModelDir = Annotated[Path, typer.Option("--model-dir", envvar="MODEL_DIR", help="Root folder of bundles.")]


ESTIMATOR_NAMES = (
    "random_forest",
    "extra_trees",
    "gradient_boosting",
    "hist_gradient_boosting",
    "logistic_regression",
    "linear_regression",
    "ridge",
    "xgboost",
    "lightgbm",
)
NameOpt = Annotated[str | None, typer.Option(help="Model name (folder under --model-dir).")]
VersionOpt = Annotated[str | None, typer.Option(help="Version to write; default: the next vN.")]


def train(
    model_dir: ModelDir = Path("models"),
    name: Annotated[str, typer.Option(help="Model name (folder under --model-dir).")] = "iris",
    version: VersionOpt = None,
    estimator: Annotated[
        str, typer.Option(help=f"One of: {', '.join(ESTIMATOR_NAMES)} (xgboost, lightgbm: their extras).")
    ] = "random_forest",
    task: Annotated[str, typer.Option(help="classification or regression.")] = "classification",
    param: Annotated[
        list[str] | None, typer.Option(help="Hyper-parameter name=value, repeatable (--param max_depth=4).")
    ] = None,
    n_estimators: Annotated[
        int | None, typer.Option(min=1, help="Trees (the forest's default: 10, as in the notes).")
    ] = None,
    max_depth: Annotated[int | None, typer.Option(min=1, help="Deepest a tree may grow.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same model.")] = 42,
    data: Annotated[
        Path | None, typer.Option(help="Train on this CSV (numbers, text, missing cells) instead of Iris.")
    ] = None,
    target: Annotated[str | None, typer.Option(help="The CSV's column to predict.")] = None,
    if_missing: Annotated[bool, typer.Option(help="Do nothing when the model already has a bundle.")] = False,
) -> None:
    """Train a model (the notes' Iris RandomForest by default) and write a verified bundle."""
    if if_missing and versions_of(model_dir, name):
        typer.echo(f"{model_dir / name}: a bundle exists, not training (--if-missing)")
        return
    if (data is None) != (target is None):
        raise typer.BadParameter("--data and --target go together")
    if data is None and task != "classification":
        raise typer.BadParameter("--task regression needs --data and --target (Iris is a classification)")
    with friendly_errors():
        from mlkube.model import train as training
        from mlkube.model.estimators import parse_params

        extra = parse_params(param or [])
        shorthands = {"n_estimators": n_estimators, "max_depth": max_depth}
        if estimator != "random_forest":
            extra = {key: value for key, value in shorthands.items() if value is not None} | extra
        params = training.TrainParams(
            n_estimators=n_estimators or 10, max_depth=max_depth, seed=seed, estimator=estimator, extra=extra
        )
        if data is None:
            bundle = training.train_bundle(
                training.load_iris_dataset(), params, model_dir, name=name, version=version
            )
        else:
            from mlkube.model.datasets import read_table
            from mlkube.model.tabular import train_table_bundle

            table = read_table(data, target or "", task)
            bundle = train_table_bundle(table, params, model_dir, name=name, version=version)
    metadata = bundle.metadata
    typer.echo(f"trained {metadata.name} {metadata.version}: {_score_line(metadata)} -> {bundle.path}")


def _score_line(metadata: Metadata) -> str:
    metrics = metadata.metrics
    if metadata.is_regressor:
        return (
            f"R² {metrics['r2']:.3f}, mean absolute error {metrics['mae']:.4g} on {metrics['n_test']} "
            "held-out rows"
        )
    return (
        f"accuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['f1_macro']:.3f} on {metrics['n_test']} "
        "held-out rows"
    )


def import_model(
    path: Annotated[
        Path,
        typer.Argument(help="A skops file, a joblib/pickle file, an MLflow model folder or an ONNX file."),
    ],
    model_dir: ModelDir = Path("models"),
    name: NameOpt = None,
    version: VersionOpt = None,
    trust: Annotated[
        list[str] | None,
        typer.Option(
            help="A type the skops file may hold beyond mlkube's list (repeatable); see the refusal."
        ),
    ] = None,
    trust_pickle: Annotated[
        bool,
        typer.Option(help="Load a joblib/pickle file. This runs any code in it: only for your own files."),
    ] = False,
    classes: Annotated[
        str | None, typer.Option(help="Class names in class order, comma-separated (setosa,versicolor,...).")
    ] = None,
    features: Annotated[
        str | None, typer.Option(help="Feature names in input order, comma-separated.")
    ] = None,
    sample: Annotated[
        Path | None, typer.Option(help="CSV of real rows: parity check and training ranges.", dir_okay=False)
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="The --sample column that is the label (left out).")
    ] = None,
) -> None:
    """Import a model trained elsewhere: convert to ONNX, check parity, write a verified bundle."""
    with friendly_errors():
        from mlkube.model.importing import ImportOptions, import_bundle

        options = ImportOptions(
            trust=tuple(trust or ()),
            trust_pickle=trust_pickle,
            classes=_names(classes),
            features=_names(features),
            sample=sample,
            target=target,
        )
        model_name = name or _default_name(path)
        result = import_bundle(path, options, model_dir, model_name, version, notify=_warn)
    metadata = result.bundle.metadata
    kind = "classifier" if not metadata.is_regressor else "regressor"
    classes_text = f" ({', '.join(metadata.class_names)})" if metadata.class_names else ""
    typer.echo(
        f"imported {metadata.name} {metadata.version}: {kind}{classes_text}, {metadata.n_features} features, "
        f"runtime {result.runtime} -> {result.bundle.path}"
    )
    if result.runtime == "onnx" and "onnx_max_abs_diff" in metadata.metrics:
        typer.echo(
            f"parity: ONNX equals the native model on {result.parity} "
            f"(largest difference {metadata.metrics['onnx_max_abs_diff']:.2g})"
        )


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip()) if text else ()


def _default_name(path: Path) -> str:
    stem = path.name if path.is_dir() else path.stem
    cleaned = "".join(char if char.isalnum() or char in "._-" else "-" for char in stem).strip("-._")
    return cleaned[:63] or "model"


def _warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


def models(ctx: typer.Context, model_dir: ModelDir = Path("models")) -> None:
    """List the bundles under --model-dir: name, version, created, accuracy."""
    if ctx.invoked_subcommand is not None:
        return
    found = list_bundles(model_dir)
    if not found:
        typer.echo(f"no bundles under {model_dir}: run `mlkube train`")
        return
    typer.echo(f"{'NAME':<16} {'VERSION':<10} {'CREATED':<26} ACCURACY")
    for metadata in found:
        accuracy = metadata.metrics.get("accuracy")
        shown = f"{accuracy:.3f}" if isinstance(accuracy, float) else "-"
        typer.echo(f"{metadata.name:<16} {metadata.version:<10} {metadata.created_at:<26} {shown}")


def show(
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[str | None, typer.Argument(help="Version; default: the newest.")] = None,
    model_dir: ModelDir = Path("models"),
) -> None:
    """Print a bundle's model card (after verifying its files) and the path of its training report."""
    from rich.console import Console

    from mlkube.cli.model_card import bundle_folder, digest_line, render_card, report_line

    with friendly_errors():
        bundle = read_bundle(bundle_folder(model_dir, name, version))
    console = Console(highlight=False)
    console.print(render_card(bundle))
    console.print(report_line(bundle), soft_wrap=True)
    console.print(digest_line(bundle), soft_wrap=True)


models_app = typer.Typer(help="Model bundles.", invoke_without_command=True)
models_app.callback()(models)
models_app.command()(show)


def register(app: typer.Typer) -> None:
    app.command()(train)
    app.command("import")(import_model)
    app.add_typer(models_app, name="models")
