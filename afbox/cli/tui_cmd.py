"""afbox tui: the facility console."""
from __future__ import annotations

import click

from .options import FACILITY_NAME


def open_console(name: str | None = None) -> None:
    try:
        from tui.app import run
    except ImportError as e:
        raise click.ClickException(f"the console is not available: {e}")
    run(facility=name)


@click.command("tui")
@click.option("--name", "-n", default=None, type=FACILITY_NAME,
              help="Facility to open (default: the running one; n switches).")
def tui(name):
    """Open the facility console."""
    open_console(name)


COMMANDS = [tui]
