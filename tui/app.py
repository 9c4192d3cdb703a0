"""The facility console. Until it lands, point people at the CLI."""
from __future__ import annotations

import click


def run() -> None:
    click.echo("the console (TUI) is not built yet; use the CLI:")
    click.echo("  afbox up | afbox status | afbox logs SERVICE | afbox down | afbox doctor | afbox --help")
