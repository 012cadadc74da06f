"""The `fieldsync` command. Each command's module is imported only when that command runs (or
help is asked for), so the client commands start without loading the server's code."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click
from click.core import ParameterSource

SERVER = "fieldsync.cli.server"
CLIENT = "fieldsync.cli.client"
COMMANDS = {
    "serve": SERVER,
    "load": SERVER,
    "token": SERVER,
    "db": SERVER,
    "blobs": SERVER,
    "worker": SERVER,
    "pull": CLIENT,
    "mirror": CLIENT,
    "upload-images": CLIENT,
}
"""Each command's name and the module that defines it (as a variable named after it)."""


def name_the_variable(exc: click.BadParameter) -> None:
    """A bad value that came from a FIELDSYNC_* variable names the variable, not the option."""
    param, ctx = exc.param, exc.ctx
    if param is None or ctx is None or param.name is None or not param.envvar:
        return
    if ctx.get_parameter_source(param.name) is not ParameterSource.ENVIRONMENT:
        return
    variables = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar)
    exc.param_hint = f"{variables[0]} (for {param.get_error_hint(ctx)})"


class FieldSyncCommands(click.Group):
    """The command group: commands load on demand, and a database that fails in the middle
    of a server command gets one line, not a traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is None:
            return None
        command: click.Command = getattr(
            importlib.import_module(module), cmd_name.replace("-", "_")
        )
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.BadParameter as exc:
            name_the_variable(exc)
            raise
        except Exception as exc:
            server = sys.modules.get(SERVER)  # a database can only fail once it is loaded
            failure = (
                None if server is None else server.database_failure(exc, ctx.invoked_subcommand)
            )
            if failure is None:
                raise
            raise failure from None


@click.group(cls=FieldSyncCommands)
@click.version_option(package_name="fieldsync")
def main() -> None:
    """FieldSync: content-hash sync of drone and agronomy survey data."""


__all__ = ["main"]
