"""What the client commands show while they run: for a pull nothing (`PullProgress`) or rich
progress bars on a terminal (`TerminalProgress`, items per type and bytes); for upload-images
bars of bytes and photos (`UploadBars`)."""

from __future__ import annotations

import threading
from types import TracebackType

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from fieldsync.client.image_upload import PhotoReport


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


class AmountColumn(ProgressColumn):
    """Bytes and speed on the bytes bar, "done/total" on the images bar."""

    def __init__(self) -> None:
        super().__init__()
        self.size = DownloadColumn()
        self.speed = TransferSpeedColumn()
        self.count = MofNCompleteColumn()

    def render(self, task: Task) -> RenderableType:
        if task.fields.get("unit") == "bytes":
            return Text.assemble(self.size.render(task), " ", self.speed.render(task))
        return self.count.render(task)


class UploadBars:
    """Two rich progress bars on standard error: bytes sent and photos done."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description:<7}"),
            BarColumn(),
            AmountColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self.bytes_task: TaskID | None = None
        self.photos_task: TaskID | None = None

    def planned(self, photos: int, upload_bytes: int) -> None:
        self.bytes_task = self.progress.add_task("bytes", total=upload_bytes, unit="bytes")
        self.photos_task = self.progress.add_task("images", total=photos)

    def bytes_sent(self, count: int) -> None:
        if self.bytes_task is not None:
            self.progress.advance(self.bytes_task, count)

    def photo_done(self, photo: PhotoReport) -> None:
        if self.photos_task is not None:
            self.progress.advance(self.photos_task, 1)
