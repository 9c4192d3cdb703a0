"""afbox up / down / status / logs / restart."""
from __future__ import annotations

import collections
import json
import os
import time

import click

from .. import events as ev, lifecycle, record, timeline
from ..errors import AfboxError, ServiceFailed
from ..facility import BACKENDS, load, profiles
from ..ports import MAX_WORKERS, SPAN
from ..state import (ENV_FACILITY, FacilityState, known_facilities, remember_start, resolve_name, start_command,
                     start_hint)
from . import render
from .options import FACILITY_NAME, PATH_DIR, PATH_FILE, name_option


def _print_events(stream) -> None:
    for e in stream:
        click.echo(render.event_line(e))


@click.command()
@click.option("--profile", "-p", default="laptop", show_default=True,
              help="Facility profile from bundles/: " + ", ".join(profiles()))
@click.option("--config", "-c", type=PATH_FILE, help="Your facility TOML, merged over the profile.")
@click.option("--name", "-n", default=None, type=FACILITY_NAME, help="Facility name (default from the profile).")
@click.option("--workers", type=click.IntRange(1, MAX_WORKERS), help="Number of Dask workers.")
@click.option("--threads", type=click.IntRange(1), help="Threads per Dask worker.")
@click.option("--gpus", type=click.IntRange(-1), help="GPU workers: -1 one per usable GPU (default), 0 none, N at most N.")
@click.option("--origin", help="XRootD origin the XCache reads from, e.g. root://eospublic.cern.ch:1094")
@click.option("--port-base", type=click.IntRange(1024, 65535 - SPAN), help="First port of the facility's port range.")
@click.option("--workdir", type=PATH_DIR, help="Where notebooks and outputs live "
              "(default: ~/afbox-work, ~/afbox-work-NAME for a facility of another name).")
@click.option("--require", multiple=True, type=click.Choice(["xcache", "jupyter", "dask"]),
              help="Fail instead of running without this service.")
@click.option("--backend", type=click.Choice(list(BACKENDS)),
              help="Where services run (default from the profile; slurm is chosen inside an allocation).")
@click.option("--dry-run", is_flag=True, help="k3s: write the manifests to --output instead of applying them.")
@click.option("--output", "-o", type=PATH_DIR, help="Directory for --dry-run manifests.")
@click.option("--slurm", "submit", is_flag=True, help="Outside an allocation: submit one with sbatch and come up in it.")
@click.option("--nodes", "-N", type=click.IntRange(1), help="--slurm: number of nodes.")
@click.option("--time", "-t", "walltime", help="--slurm: walltime, as sbatch takes it (e.g. 2:00:00 or 30).")
@click.option("--partition", help="--slurm: partition.")
@click.option("--account", "-A", help="--slurm: account.")
@click.option("--interface", help="Network interface Dask binds to (HPC: one the other nodes reach).")
@click.option("--runtime", type=click.Choice(["none", "apptainer"]), help="Run every service in a container runtime.")
@click.option("--image", help="--runtime apptainer: docker://..., a .sif path or a directory.")
@click.option("--students", type=click.IntRange(1), help="Class: accounts student01..N (profile masterclass).")
@click.option("--roster", type=PATH_FILE, help="Class: a CSV of username[,display_name].")
@click.option("--listen", help="Class: the address or interface students' browsers reach the hub at.")
@click.option("--force", is_flag=True,
              help="First stop what an earlier run left running (services whose supervisor died).")
@click.option("--timings", is_flag=True, help="Print where the time went: afbox's own steps and each service.")
@click.pass_context
def up(ctx, profile, config, name, workers, threads, gpus, origin, port_base, workdir, require, backend, dry_run,
       output, submit, nodes, walltime, partition, account, interface, runtime, image,
       students, roster, listen, force, timings):
    """Bring the facility up and print its URLs."""
    tl = _start_timeline() if timings else None
    over: dict = {"facility": {}, "dask": {}, "xcache": {}, "slurm": {}, "runtime": {}}
    if students or roster or listen:
        from .class_cmds import class_overrides
        over["masterclass"] = class_overrides(students, roster, listen)
    for section, key, value in (("facility", "name", name), ("dask", "workers", workers),
                                ("dask", "threads_per_worker", threads), ("dask", "gpus", gpus),
                                ("xcache", "origin", origin), ("facility", "backend", backend),
                                ("facility", "port_base", port_base), ("facility", "workdir", workdir),
                                ("slurm", "nodes", nodes), ("slurm", "time", walltime),
                                ("slurm", "partition", partition), ("slurm", "account", account),
                                ("slurm", "interface", interface),
                                ("runtime", "kind", runtime), ("runtime", "image", image)):
        if value is not None:
            over[section][key] = value
    if require:
        over["facility"]["require"] = list(require)
    with timeline.span("facility file read"):
        fac = load(profile, config, over)
    if dry_run:
        from .k3s_cmds import dry_run as k3s_dry_run
        return k3s_dry_run(fac, output)
    click.echo(f"afbox: facility {fac.name!r}, profile {profile}")
    t0, started = time.monotonic(), time.time()
    if submit:
        from ..backends.slurm.submit import submit_and_wait
        _print_events(submit_and_wait(fac))
    else:
        try:
            stream = lifecycle.up(fac, force=force)
            _print_events(tl.events(stream) if tl else stream)
        except ServiceFailed as e:
            click.echo(render.event_line(ev.Event(ev.FAILED, e.service, e.reason)))
            click.echo("everything this run started has been stopped")
            raise
    rec = record.read(FacilityState(fac.name))
    if rec is None:
        raise AfboxError(f"facility {fac.name!r} did not leave a record of what runs",
                         hint=f"see afbox status --name {fac.name}, or afbox down --name {fac.name} and up again")
    if rec.started >= started:  # this command started it (not one that found it up)
        remember_start(fac.name, given_flags(ctx))
    where = f" in SLURM job {rec.site['allocation']['job_id']}" if submit and rec.site.get("allocation") else ""
    click.echo(f"\nfacility {fac.name!r} is up{where} ({time.monotonic() - t0:.1f}s):")
    unavailable = {n: s.unavailable for n, s in rec.services.items() if s.unavailable}
    for line in render.urls_text(rec.urls(), lifecycle.jupyter_login_url(rec), bool(rec.auth), unavailable):
        click.echo(line)
    click.echo(f"  workdir         {rec.workdir}")
    if submit:
        click.echo(f"\nwhen done: afbox down --name {fac.name}   (cancels the job)")
    else:
        click.echo("\nin a notebook:   import afbox; client = afbox.client()")
    if tl:
        click.echo("\nwhere the time went:")
        for line in timeline.render(tl, time.time()):
            click.echo(f"  {line}")


def _start_timeline() -> timeline.Timeline:
    """From this process' start: the interpreter and afbox's imports come first."""
    import psutil
    born = psutil.Process().create_time()
    tl = timeline.record(born)
    tl.add("python started, afbox imported", born, time.time())
    return tl


@click.command()
@name_option
def down(name):
    """Stop every service of the facility. Notebooks, outputs and the data cache are kept."""
    if name is None and not known_facilities() and not os.environ.get(ENV_FACILITY):
        click.echo("no facility is running; nothing to stop")
        return
    _print_events(lifecycle.down(resolve_name(name)))


@click.command()
@name_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (keys documented in README).")
def status(name, as_json):
    """Services of the facility: state, health, URL/port, pid, restarts, uptime."""
    st = lifecycle.status(resolve_name(name))
    if not as_json and name is None and not known_facilities() and not os.environ.get(ENV_FACILITY):
        click.echo("no facility is running (start one with: afbox up)")
        return
    if as_json:
        click.echo(json.dumps(st.to_dict(), indent=2, sort_keys=True))
        return
    for line in render.status_text(st, start_command(st.facility)):
        click.echo(line)


@click.command()
@click.argument("service")
@name_option
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines.")
@click.option("--lines", "-l", default=50, show_default=True, type=click.IntRange(0, 100_000),
              help="How many lines to show first.")
def logs(service, name, follow, lines):
    """Show one service's log (supervisord for the supervisor's own)."""
    state = FacilityState(resolve_name(name))
    path = lifecycle.log_path(state.name, service)
    if not path.exists():
        known = sorted(p.stem for p in state.logs.glob("*.log")) if state.logs.exists() else []
        raise AfboxError(f"no log for service {service[:60]!r} in facility {state.name!r}",
                         hint=("services with logs: " + ", ".join(known)) if known else
                         f"the facility has not run yet; {start_hint(state.name)}")
    with path.open(errors="replace") as f:
        for line in collections.deque(f, maxlen=lines) if lines else ():
            click.echo(line, nl=False)
        while follow:
            line = f.readline()
            if line:
                click.echo(line, nl=False)
            else:
                time.sleep(0.3)


@click.command()
@click.argument("service")
@name_option
def restart(service, name):
    """Restart one service."""
    lifecycle.restart(resolve_name(name), service)
    click.echo(f"restarted {service}")


@click.command()
@name_option
@click.option("--workers", "-w", type=click.IntRange(1, MAX_WORKERS), help="Number of CPU Dask workers wanted.")
@click.option("--jobs", type=click.IntRange(1, 1000), help="SLURM: submit K worker-only jobs that join the scheduler.")
def scale(name, workers, jobs):
    """Add or remove Dask workers of the running facility."""
    if jobs:
        from ..backends.slurm.submit import scale_jobs
        return _print_events(scale_jobs(resolve_name(name), jobs))
    if workers is None:
        raise click.UsageError("give --workers N (or, on SLURM, --jobs K)")
    _print_events(lifecycle.scale(resolve_name(name), workers))


# what `afbox up` may be given again to start the same facility (hints say it whole)
REMEMBERED = ("profile", "config", "name", "port_base", "workdir", "origin", "backend", "workers")


def given_flags(ctx: click.Context) -> list[str]:
    out: list[str] = []
    for p in ctx.command.params:
        value = ctx.params.get(p.name)
        if p.name in REMEMBERED and value is not None and \
                ctx.get_parameter_source(p.name) != click.core.ParameterSource.DEFAULT:
            if p.name in ("config", "workdir"):
                value = os.path.abspath(value)
            out += [next(o for o in p.opts if o.startswith("--")), str(value)]
    return out


COMMANDS = [up, down, status, logs, restart, scale]
