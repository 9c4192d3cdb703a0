"""afbox gpu: every accelerator on this host and which of them the facility may use."""
from __future__ import annotations

import json

import click

from .. import gpu


@click.command("gpu")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable: GPUs, usable devices, problems.")
@click.option("--timeout", default=gpu.DEFAULT_TIMEOUT, show_default=True,
              type=click.FloatRange(0.5, gpu.DEFAULT_TIMEOUT),
              help="Seconds to wait for the GPU tools in all (a hung driver is skipped after this).")
def gpu_cmd(as_json, timeout):
    """GPUs: vendor, model, memory, utilisation, driver, MIG, and the usable devices."""
    report = gpu.detect(timeout=timeout)
    if as_json:
        click.echo(json.dumps({**report.to_dict(), "devices": [d.to_dict() for d in report.devices()]}, indent=2))
        return
    for line in gpu.render_table(report):
        click.echo(line)


COMMANDS = [gpu_cmd]
