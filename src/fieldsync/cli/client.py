"""Client commands: `fieldsync pull`, `fieldsync upload-images`, `fieldsync mirror`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
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
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from fieldsync.client import ClientError, FieldSyncClient
from fieldsync.client.image_upload import (
    Outcome,
    PhotoReport,
    UploadSummary,
    find_photos,
    upload_images,
)

CLIENT_COMMANDS: list[click.Command] = []

DEFAULT_SERVER = "http://127.0.0.1:8000"


# -- upload-images ------------------------------------------------------------------------------

EXIT_INCOMPLETE = 3
"""Some photos were left out for an error (no GPS, unreadable, refused by the server)."""


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


def print_summary(summary: UploadSummary) -> None:
    """One line per photo left out (standard error), then the totals (standard output)."""
    for photo in summary.photos:
        if photo.outcome in (Outcome.NO_GPS, Outcome.FAILED):
            click.echo(f"{photo.filename}: not uploaded: {photo.reason}", err=True)
    click.echo(
        f"uploaded {summary.uploaded} ({summary.count(Outcome.CREATED)} new, "
        f"{summary.count(Outcome.UPDATED)} updated), skipped {summary.count(Outcome.SKIPPED)} "
        f"already there, {summary.count(Outcome.NO_GPS)} without GPS, "
        f"{summary.count(Outcome.FAILED)} failed"
    )


@click.command("upload-images")
@click.argument("survey_sentera_id", metavar="SURVEY_ID")
@click.argument(
    "directory",
    metavar="DIR",
    type=click.Path(exists=True, file_okay=False, readable=True, path_type=Path),
)
@click.option(
    "--server",
    envvar="FIELDSYNC_SERVER",
    default=DEFAULT_SERVER,
    show_default=True,
    help="The FieldSync server [env: FIELDSYNC_SERVER]",
)
@click.option("--token", envvar="FIELDSYNC_TOKEN", help="An API token [env: FIELDSYNC_TOKEN]")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary instead.")
def upload_images_command(
    survey_sentera_id: str,
    directory: Path,
    server: str,
    token: str | None,
    quiet: bool,
    as_json: bool,
) -> None:
    """Upload the JPEG photos of DIR (*.jpg, *.jpeg; not its subdirectories) into a survey.

    Position, altitude and capture time come from each photo's EXIF. Photos already in the
    survey (same filename and bytes) are skipped; a photo whose name is there with other bytes
    updates that image. Exit status: 0 all done, 3 some photos left out (no GPS, unreadable,
    refused), 1 a fatal error (token, server, survey).
    """
    photos = find_photos(directory)
    console = Console(stderr=True)
    show_bars = console.is_terminal and not quiet
    try:
        with FieldSyncClient(server, token) as client:
            if not show_bars:
                summary = upload_images(client, survey_sentera_id, photos)
            else:
                bars = UploadBars(console)
                with bars.progress:
                    summary = upload_images(client, survey_sentera_id, photos, bars)
    except ClientError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(summary.as_json(), indent=2))
    else:
        if not photos:
            click.echo(f"no JPEG files (*.jpg, *.jpeg) in {directory}", err=True)
        print_summary(summary)
    if not summary.complete:
        sys.exit(EXIT_INCOMPLETE)


CLIENT_COMMANDS.append(upload_images_command)

# -- end of upload-images -----------------------------------------------------------------------
