"""afbox tui: the facility console."""
from __future__ import annotations

import click


def open_console() -> None:
    try:
        from tui.app import run
    except ImportError as e:
        raise click.ClickException(f"the console is not available: {e}")
    run()


@click.command("tui")
def tui():
    """Open the facility console."""
    open_console()


COMMANDS = [tui]
