"""The ``fleetwave`` command line (the console script is ``fleetwave_local.cli:main``)."""

from fleetwave_local.cli.entry import CliContext, ExitCode, app, main, run

__all__ = ["CliContext", "ExitCode", "app", "main", "run"]
