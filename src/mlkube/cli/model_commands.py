"""`mlkube train` and `mlkube models`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlkube.cli._output import friendly_errors
from mlkube.model.bundle import list_bundles, read_bundle, versions_of

ModelDir = Annotated[Path, typer.Option("--model-dir", envvar="MODEL_DIR", help="Root folder of bundles.")]


def train(
    model_dir: ModelDir = Path("models"),
    name: Annotated[str, typer.Option(help="Model name (folder under --model-dir).")] = "iris",
    version: Annotated[str | None, typer.Option(help="Version to write; default: the next vN.")] = None,
    n_estimators: Annotated[int, typer.Option(min=1, help="Trees in the forest.")] = 10,
    max_depth: Annotated[int | None, typer.Option(min=1, help="Deepest a tree may grow.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same model.")] = 42,
    data: Annotated[Path | None, typer.Option(help="Train on this CSV instead of Iris.")] = None,
    target: Annotated[str | None, typer.Option(help="The CSV's class column.")] = None,
    if_missing: Annotated[bool, typer.Option(help="Do nothing when the model already has a bundle.")] = False,
) -> None:
    """Train a RandomForest (the notes' Iris model by default) and write a verified bundle."""
    if if_missing and versions_of(model_dir, name):
        typer.echo(f"{model_dir / name}: a bundle exists, not training (--if-missing)")
        return
    if (data is None) != (target is None):
        raise typer.BadParameter("--data and --target go together")
    with friendly_errors():
        from mlkube.model import train as training

        dataset = (
            training.load_iris_dataset() if data is None else training.read_csv_dataset(data, target or "")
        )
        params = training.TrainParams(n_estimators=n_estimators, max_depth=max_depth, seed=seed)
        bundle = training.train_bundle(dataset, params, model_dir, name=name, version=version)
    metrics = bundle.metadata.metrics
    typer.echo(
        f"trained {bundle.metadata.name} {bundle.metadata.version}: accuracy {metrics['accuracy']:.3f}, "
        f"macro-F1 {metrics['f1_macro']:.3f} on {metrics['n_test']} held-out rows -> {bundle.path}"
    )


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
    app.add_typer(models_app, name="models")
