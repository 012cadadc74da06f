"""`python -m fieldsync`: the same command line as `fieldsync`."""

from fieldsync.cli import main

main(prog_name="fieldsync")
