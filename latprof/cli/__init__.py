"""The command line: `app` (typer) with its commands registered, and `main` (the entry point).

Each command module parses its options, calls one library function and renders the result.
"""

# the import order is the order of commands in --help
from latprof.cli import profile_cmds, lut_cmds, table_cmds  # noqa: I001
from latprof.cli.app import app, expand_multi, main, run_cli

__all__ = ["app", "expand_multi", "lut_cmds", "main", "profile_cmds", "run_cli", "table_cmds"]
