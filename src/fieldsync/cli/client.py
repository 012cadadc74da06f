"""Client commands: `fieldsync pull`, `fieldsync mirror export`, `fieldsync upload-images`.

They talk to a server over HTTP only. Exit codes: 0 done, 1 stopped by an error (the message
says what to do), 2 bad usage, 3 done except for the failures listed.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.table import Table

from fieldsync.client import ClientError, FieldSyncClient, Retrying, RetryPolicy, Transport
from fieldsync.client.export import write_geojson
from fieldsync.client.image_upload import (
    Outcome,
    UploadSummary,
    find_photos,
    send_photos,
)
from fieldsync.client.mirror import MIRROR_FILE, Mirror, MirrorError
from fieldsync.client.progress import PullProgress, TerminalProgress, UploadBars
from fieldsync.client.pull import Puller, PullOptions, PullSummary, hold_directory

F = TypeVar("F", bound=Callable[..., Any])
EXIT_ERROR = 1
EXIT_PARTIAL = 3
EXIT_INTERRUPTED = 130  # as a shell reports a command stopped by Ctrl-C
DEFAULT_SERVER = "http://127.0.0.1:8000"


def server_options(function: F) -> F:
    """--server and --token, also from FIELDSYNC_SERVER and FIELDSYNC_TOKEN."""
    function = click.option(
        "--token",
        envvar="FIELDSYNC_TOKEN",
        help="API token (or FIELDSYNC_TOKEN).",
    )(function)
    return click.option(
        "--server",
        envvar="FIELDSYNC_SERVER",
        default=DEFAULT_SERVER,
        show_default=True,
        help="The server's URL (or FIELDSYNC_SERVER).",
    )(function)


def required_token(token: str | None) -> str:
    if not token:
        raise click.UsageError("no token: give --token or set FIELDSYNC_TOKEN")
    return token


def fail(message: str) -> NoReturn:
    """Stop with a one-line error (exit 1)."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(EXIT_ERROR)


def interrupted(advice: str) -> NoReturn:
    """Stop after Ctrl-C with one line saying what was kept and what to do (exit 130)."""
    click.echo(f"interrupted: {advice}", err=True)
    sys.exit(EXIT_INTERRUPTED)


# -- pull --------------------------------------------------------------------------------------


@click.command()
@server_options
@click.option(
    "--to",
    "directory",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The mirror's directory (created when missing).",
)
@click.option("--organization", multiple=True, help="Only this organization and those below it.")
@click.option("--survey", multiple=True, help="Only this survey's data (repeat for more).")
@click.option("--no-download", is_flag=True, help="Sync the data, fetch no file bytes.")
@click.option(
    "--jobs",
    type=click.IntRange(1, 32),
    default=4,
    show_default=True,
    help="Downloads at a time.",
)
@click.option(
    "--retries",
    type=click.IntRange(0, 20),
    default=5,
    show_default=True,
    help="Retries of a request that failed for a passing reason (no answer, 429, 5xx).",
)
@click.option("--quiet", is_flag=True, help="No progress bars (the summary is still printed).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON, and no bars.")
def pull(
    server: str,
    token: str | None,
    directory: Path,
    organization: tuple[str, ...],
    survey: tuple[str, ...],
    no_download: bool,
    jobs: int,
    retries: int,
    quiet: bool,
    as_json: bool,
) -> None:
    """Mirror what the token may read into a directory; run again to catch up.

    Exit status: 0 everything pulled, 3 pulled except the failures listed, 1 stopped by an
    error (the message says what to do; run again to resume), 2 bad usage.
    """
    options = PullOptions(organization, survey, not no_download, jobs, retries)
    console = Console(stderr=True)
    show = console.is_terminal and not quiet and not as_json
    try:
        summary = run_pull(server, required_token(token), directory, options, console, show)
    except (ClientError, MirrorError) as exc:
        fail(str(exc))
    except sqlite3.Error as exc:
        fail(
            f"{directory / MIRROR_FILE} cannot be used ({exc}): move it away, or pull into "
            "another directory"
        )
    except OSError as exc:
        fail(f"cannot write the mirror in {directory}: {exc.strerror or exc}")
    except KeyboardInterrupt:
        interrupted("the mirror holds every page applied so far; run the same command to resume")
    if as_json:
        click.echo(json.dumps(summary.as_json(), indent=2))
    else:
        print_summary(Console(), summary)
    sys.exit(0 if summary.complete else EXIT_PARTIAL)


def run_pull(
    server: str,
    token: str,
    directory: Path,
    options: PullOptions,
    console: Console,
    show_progress: bool,
) -> PullSummary:
    lock = hold_directory(directory)
    try:
        progress = TerminalProgress(console) if show_progress else PullProgress()
        retry = RetryPolicy(attempts=options.retries + 1)
        transport = Transport(server, token, retry=retry, on_retry=_retry_note(progress))
        with FieldSyncClient(server, transport=transport) as client, progress:
            mirror = Mirror(directory)
            try:
                return Puller(client, mirror, options, progress).run()
            finally:
                mirror.close()
    finally:
        lock.release()


def _retry_note(progress: PullProgress) -> Callable[[Retrying], None]:
    def note(retrying: Retrying) -> None:
        progress.note(f"{retrying.reason}: retrying in {retrying.delay:.1f} s")

    return note


def print_summary(console: Console, summary: PullSummary) -> None:
    table = Table(title="fieldsync pull", title_justify="left")
    for name in ("type", "created", "updated", "deleted", "failed", "bytes", "time"):
        table.add_column(name, justify="left" if name == "type" else "right")
    for name, kind in summary.kinds.items():
        table.add_row(
            name,
            f"{kind.created:,}",
            f"{kind.updated:,}",
            f"{kind.deleted:,}",
            f"{kind.failed:,}",
            _size(kind.bytes),
            f"{kind.seconds:.1f} s",
        )
    console.print(table)
    console.print(
        f"{summary.requests:,} requests, {_size(summary.bytes_sent)} up, "
        f"{_size(summary.bytes_received)} down, {summary.seconds:.1f} s"
    )
    for failure in summary.failures[:20]:
        console.print(f"[red]failed:[/red] {failure}", highlight=False)
    if len(summary.failures) > 20:
        console.print(f"… and {len(summary.failures) - 20} more (see --json)")
    if summary.failures:
        console.print("Run the pull again to retry what failed.")


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{count} B"


# -- mirror ------------------------------------------------------------------------------------


@click.group()
def mirror() -> None:
    """Work with a mirror made by `fieldsync pull`."""


@mirror.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--geojson",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write images and fields as GeoJSON points here.",
)
def export(directory: Path, out: Path) -> None:
    """Export a mirror for GIS tools (QGIS opens the GeoJSON)."""
    try:
        held = Mirror(directory, read_only=True)
        try:
            count = write_geojson(held, out)
        finally:
            held.close()
    except MirrorError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}")
    click.echo(f"wrote {count:,} features to {out}")


# -- upload-images ------------------------------------------------------------------------------


def print_upload_summary(summary: UploadSummary) -> None:
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
@server_options
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary instead.")
def upload_images(
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
        with FieldSyncClient(server, required_token(token)) as client:
            if not show_bars:
                summary = send_photos(client, survey_sentera_id, photos)
            else:
                bars = UploadBars(console)
                with bars.progress:
                    summary = send_photos(client, survey_sentera_id, photos, bars)
    except ClientError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        interrupted(
            "the images written so far are in the survey; run the same command to upload the rest"
        )
    if as_json:
        click.echo(json.dumps(summary.as_json(), indent=2))
    else:
        if not photos:
            click.echo(f"no JPEG files (*.jpg, *.jpeg) in {directory}", err=True)
        print_upload_summary(summary)
    if not summary.complete:
        sys.exit(EXIT_PARTIAL)
