"""What every command shares: one clear line on stderr and an exit code, never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

from mlkube.errors import MlkubeError


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Turn mlkube's own errors into `error: <message>` and exit code 1."""
    try:
        yield
    except MlkubeError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
