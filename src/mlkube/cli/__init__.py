"""The `mlkube` command. Commands are thin: one docstring each, the work is done by the library."""

from __future__ import annotations

import typer

from mlkube.cli import kube_commands, model_commands, serve_commands

app = typer.Typer(
    name="mlkube",
    help="Train a scikit-learn model, serve it over HTTP, ship it to Kubernetes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
model_commands.register(app)
serve_commands.register(app)
kube_commands.register(app)


def main() -> None:
    app()
