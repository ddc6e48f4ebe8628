"""What the kube commands print: every command they run (`$ kubectl ...`), checks, tables, a spinner.

Everything goes to stdout so a learner reads one story; errors are the CLI's `error:` line on stderr.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from rich.console import Console
from rich.text import Text


class Output:
    """Printer shared by the kube library; `Output(Console(file=...))` in tests."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False, soft_wrap=True)
        self._dry_run_noticed = False

    def dry_run_notice(self) -> None:
        """Said once, before the first command of a dry run."""
        if not self._dry_run_noticed:
            self._dry_run_noticed = True
            self.console.print(Text("(dry run: the commands are printed, none is run)", style="yellow"))

    def command(self, argv: Sequence[str], *, stdin: str | None = None, note: str | None = None) -> None:
        """`$ kubectl get pods` — `stdin` describes what is piped in (never the secret itself)."""
        line = Text("$ ", style="dim")
        line.append(shlex.join(argv), style="bold cyan")
        if stdin is not None:
            line.append(f" <<< {stdin}", style="cyan")
        if note:
            line.append(f"   # {note}", style="dim")
        self.console.print(line)

    def info(self, text: str) -> None:
        self.console.print(Text(text))

    def ok(self, text: str) -> None:
        self.console.print(Text("✓ ", style="green") + Text(text))

    def fail(self, text: str) -> None:
        self.console.print(Text("✗ ", style="red") + Text(text))

    def warn(self, text: str) -> None:
        self.console.print(Text("! ", style="yellow") + Text(text))

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "") -> None:
        """Columns aligned like `kubectl get` prints them."""
        widths = [len(h) for h in headers]
        for row in rows:
            widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
        for cells in [headers, *rows]:
            padded = "   ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
            self.console.print(Text(indent + padded.rstrip()))

    @contextmanager
    def spinner(self, text: str) -> Iterator[Callable[[str], None]]:
        """A spinner on a terminal (yields a function to change its text); silent in a file or a pipe."""
        if not self.console.is_terminal:
            yield lambda _text: None
            return
        with self.console.status(Text(text)) as status:
            yield lambda new: status.update(Text(new))
