"""The `fieldsync` command: server commands (`cli/server.py`) and client commands
(`cli/client.py`) in one group."""

from fieldsync.cli.client import CLIENT_COMMANDS
from fieldsync.cli.server import main

for _command in CLIENT_COMMANDS:
    main.add_command(_command)

__all__ = ["main"]
