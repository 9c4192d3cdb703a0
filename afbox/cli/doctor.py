"""afbox doctor: what this host has, what is missing and which package provides it."""
from __future__ import annotations

import click

from .. import host as hostmod
from .. import preconditions
from . import render
from ..facility import load
from ..services.sizing import dask_size

WHY = {"xrootd": "XCache", "xrdcp": "copying root:// files by hand", "k3s": "the k3s backend",
       "docker": "the docker backend", "apptainer": "containers on HPC", "srun": "HPC (SLURM) mode",
       "nvidia-smi": "NVIDIA GPUs"}


@click.command()
@click.option("--profile", "-p", default="laptop", show_default=True)
@click.option("--config", "-c", type=click.Path(dir_okay=False), help="Your facility TOML, merged over the profile.")
def doctor(profile, config):
    """Check the host: cores, memory, programs, ports, filesystems; what is missing and its package."""
    h = hostmod.detect()
    fac = load(profile, config)
    size = dask_size(fac, h.cpus, h.memory)
    click.echo(f"host         {h.hostname}  ({'root' if h.is_root else 'user'})")
    click.echo(f"cpus         {h.cpus}")
    click.echo(f"memory       {render.human_bytes(h.memory)}")
    click.echo(f"slurm        {'job ' + h.slurm_job + ' on ' + (h.slurm_nodes or '?') if h.slurm_job else 'not inside an allocation'}")
    click.echo(f"dask         {size.workers} workers x {size.threads} threads, "
               f"{render.human_bytes(size.memory_limit)} each ({profile} profile)")
    click.echo("programs:")
    for tool, path in h.tools.items():
        click.echo(f"  {'ok' if path else '--'} {tool:<11} {path or 'missing (' + WHY.get(tool, '') + ')'}")
    from .. import lifecycle, services
    specs = services.render(lifecycle.context(fac, h))
    taken = [(s.name, label, p) for s in specs for label, p in s.ports if not hostmod.port_free(p, fac.facility.bind)]
    ports = sorted(p for s in specs for _, p in s.ports)
    click.echo(f"ports        {ports[0]}-{ports[-1]} ({profile} profile, port_base {fac.facility.port_base}): "
               + ("all free" if not taken else f"{len(taken)} in use"))
    for name, label, p in taken:
        click.echo(f"  !! {p} ({name} {label}) in use by {hostmod.port_owner(p) or 'another process'}; "
                   "use --port-base")
    findings = preconditions.check(specs)
    volumes = [(s.name, v) for s in specs if not s.unavailable for v in s.volumes if not v.read_only]
    click.echo("filesystems: " + ("; ".join(f"{name} {v.name} {v.path}: {render.human_bytes(hostmod.disk_free(v.path))} "
                                           "free" for name, v in volumes) or "-"))
    for f in findings:
        click.echo(f"  {'!!' if f.fatal else 'warning:'} {f.line()}")
    if not findings:
        click.echo("  every dir the services write is writable, and no filesystem is too small")
    for line in xrootd_exposure(fac, specs):
        click.echo(line)
    from .. import gpu
    report = gpu.detect(timeout=5.0)
    click.echo("gpus:")
    for line in gpu.render_table(report):
        click.echo(f"  {line}")
    missing = h.missing()
    if missing:
        click.echo("to install what is missing:")
        for tool, pkg in missing:
            click.echo(f"  {tool:<11} {pkg}")


def xrootd_exposure(fac, specs) -> list[str]:
    """xrootd 5.5 has no bind address: say so, and what guards each of its ports instead."""
    ports = {s.name: p for s in specs for label, p in s.ports if label == "xroot" and s.name in ("xcache", "origin")}
    if not ports:
        return []
    bind = fac.facility.bind
    hosts = {"xcache": "localhost" if bind in ("127.0.0.1", "localhost") else bind, "origin": "localhost"}
    then = {"xcache": "a token (ztn over TLS)", "origin": "the XCache's own key (sss): nobody else"}
    out = ["xrootd       the XCache and the origin listen on every interface (xrootd 5.5 has no bind address);"
           " they admit:"]
    for name, p in ports.items():
        guard = f"then {then[name]}" if fac.auth.enabled else "and ask nothing more ([auth] is off)"
        out.append(f"  {name} ({p}){' ' * (13 - len(name) - len(str(p)))}connections from {hosts[name]} "
                   f"(xrd.allow), {guard}")
    return out


COMMANDS = [doctor]
