"""`mlkube serve`."""

from __future__ import annotations

import typer

from mlkube.cli._output import friendly_errors


def serve() -> None:
    """Serve the model over HTTP with the settings from the environment (see the README's table)."""
    with friendly_errors():
        from mlkube.server.runner import serve_forever
        from mlkube.settings import load_settings

        raise typer.Exit(serve_forever(load_settings()))


def register(app: typer.Typer) -> None:
    app.command()(serve)
