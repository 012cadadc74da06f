"""Client commands: `fieldsync pull`, `fieldsync upload-images`, `fieldsync mirror`."""

from __future__ import annotations

import click

CLIENT_COMMANDS: list[click.Command] = []
