"""Options shared by several commands."""
from __future__ import annotations

import click

name_option = click.option("--name", "-n", default=None,
                           help="Facility name (default: the one running, else 'default').")
