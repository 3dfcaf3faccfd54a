"""Transfer progress bars for the scriptable commands: rich on a terminal, nothing when not a TTY."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

ProgressCallback = Callable[[int, int], None]


@contextmanager
def transfer_bar(label: str, *, stream: TextIO | None = None) -> Iterator[ProgressCallback]:
    """Yields `progress(done_bytes, total_bytes)` for the SDK; draws a bar on stderr only on a TTY."""
    out = stream or sys.stderr
    enabled = out.isatty()
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(file=out),
        disable=not enabled,
        transient=False,
    )
    task = progress.add_task(label, total=None)

    def update(done: int, total: int) -> None:
        progress.update(task, completed=done, total=total or None)

    with progress:
        yield update
