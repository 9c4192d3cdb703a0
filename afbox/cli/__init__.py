"""The `afbox` command. Each command group lives in its own thin module."""
from __future__ import annotations

import logging
import sys

import click

from . import failure


class Group(click.Group):
    """Every answer of a command that went wrong is `error: ...` + hint and an exit code, never a
    traceback (afbox.cli.failure)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        argv = list(sys.argv[1:] if args is None else args)
        try:
            rv = super().main(argv, "afbox", complete_var, standalone_mode=False, **extra)
        except Exception as e:  # noqa: BLE001 - turned into an error line, a bug included
            sys.exit(failure.answer(e, logging.getLogger().isEnabledFor(logging.DEBUG),
                                    failure.command_path(self, argv)))
        except KeyboardInterrupt as e:
            sys.exit(failure.answer(e))
        sys.exit(rv if isinstance(rv, int) else 0)  # --help and --version return their exit code


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


from . import (bundle_cmds, cache_cmds, class_cmds, demo_cmds, doctor, env_cmds, facility_cmds, gpu_cmd, k3s_cmds,
               site_cmds, slurm_cmds, token_cmds, tui_cmd)

for module in (facility_cmds, doctor, cache_cmds, gpu_cmd, demo_cmds, token_cmds, tui_cmd,
               slurm_cmds, k3s_cmds, env_cmds, class_cmds, bundle_cmds, site_cmds):
    for cmd in module.COMMANDS:
        main.add_command(cmd)
