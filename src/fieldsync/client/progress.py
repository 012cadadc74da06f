"""What a pull shows while it runs: nothing (`PullProgress`), or rich progress bars on a
terminal (`TerminalProgress`), items per type and bytes."""

from __future__ import annotations

import threading
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)


class PullProgress:
    """The silent display; subclasses show something. Methods may be called from download
    threads (`bytes_done`)."""

    def __enter__(self) -> PullProgress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def scope(self, kind: str, label: str) -> None:
        """A scope of `kind` starts syncing."""

    def items(self, kind: str, done: int, remaining: int) -> None:
        """`done` items of `kind` applied so far this pull, `remaining` left in this scope."""

    def bytes_planned(self, count: int, total: int) -> None:
        """`count` downloads of `total` bytes in all are about to run."""

    def bytes_done(self, count: int) -> None:
        """`count` more bytes written to disk."""

    def note(self, message: str) -> None:
        """A passing event worth a line (a retry)."""

    def close(self) -> None:
        """The display is done."""


class TerminalProgress(PullProgress):
    """Bars on stderr: one per synced type (items), one for bytes."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.description:<13}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.bytes_progress = Progress(
            TextColumn("[bold]{task.description:<13}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self._tasks: dict[str, TaskID] = {}
        self._bytes_task: TaskID | None = None
        self._lock = threading.Lock()
        self.progress.start()

    def scope(self, kind: str, label: str) -> None:
        task = self._task(kind)
        self.progress.update(task, detail=label)

    def items(self, kind: str, done: int, remaining: int) -> None:
        task = self._task(kind)
        self.progress.update(task, completed=done, total=done + remaining)

    def bytes_planned(self, count: int, total: int) -> None:
        self.progress.stop()
        self.bytes_progress.start()
        with self._lock:
            self._bytes_task = self.bytes_progress.add_task(f"bytes ({count})", total=total)

    def bytes_done(self, count: int) -> None:
        if self._bytes_task is not None:
            self.bytes_progress.advance(self._bytes_task, count)

    def note(self, message: str) -> None:
        self.console.print(f"[yellow]{message}")

    def close(self) -> None:
        self.progress.stop()
        self.bytes_progress.stop()

    def _task(self, kind: str) -> TaskID:
        if kind not in self._tasks:
            self._tasks[kind] = self.progress.add_task(kind, total=None, detail="")
        return self._tasks[kind]
