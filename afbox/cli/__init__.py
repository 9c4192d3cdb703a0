"""The `afbox` command. Each command group lives in its own thin module."""
from __future__ import annotations

import logging
import sys

import click

from ..errors import AfboxError


class Group(click.Group):
    """Turns AfboxError into `error: ...` + hint and exit code 1, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except AfboxError as e:
            click.echo(e.render(), err=True)
            sys.exit(1)


@click.group(cls=Group, invoke_without_command=True)
@click.option("-v", "--verbose", is_flag=True, help="Log every external command run.")
@click.version_option(package_name="afbox")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """afbox: an analysis facility in a box (JupyterLab, Dask, XCache).

    With no command, opens the facility console (TUI).
    """
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(name)s: %(message)s")
    if ctx.invoked_subcommand is None:
        from .tui_cmd import open_console
        open_console()


from . import (cache_cmds, demo_cmds, doctor, env_cmds, facility_cmds, gpu_cmd, k3s_cmds, site_cmds, slurm_cmds,
               token_cmds, tui_cmd)

for module in (facility_cmds, doctor, cache_cmds, gpu_cmd, demo_cmds, token_cmds, tui_cmd,
               slurm_cmds, k3s_cmds, env_cmds, site_cmds):
    for cmd in module.COMMANDS:
        main.add_command(cmd)
