"""afbox tui: the facility console."""
from __future__ import annotations

import os

import click

from ..errors import AfboxError
from ..state import ENV_FACILITY, name_problem
from .options import FACILITY_NAME


def open_console(name: str | None = None) -> None:
    """The console on the named facility, else on $AFBOX_FACILITY's, else on the running one."""
    name = name or os.environ.get(ENV_FACILITY) or None
    if name and (problem := name_problem(name)):
        raise AfboxError(f"{problem} (from ${ENV_FACILITY})", hint=f"unset {ENV_FACILITY}, or set it to a facility's name")
    try:
        from tui.app import run
    except ImportError as e:
        raise AfboxError(f"the console is not available: {e}", hint="reinstall afbox: ./install.sh") from None
    run(facility=name)


@click.command("tui")
@click.option("--name", "-n", default=None, type=FACILITY_NAME,
              help="Facility to open (default: $AFBOX_FACILITY, else the running one; n switches).")
def tui(name):
    """Open the facility console."""
    open_console(name)


COMMANDS = [tui]
