"""`mlkube serve`."""

from __future__ import annotations

import typer


def serve() -> None:
    """Serve the model over HTTP with the settings from the environment (see the README's table)."""
    from mlkube.server.__main__ import main

    raise typer.Exit(main())


def register(app: typer.Typer) -> None:
    app.command()(serve)
