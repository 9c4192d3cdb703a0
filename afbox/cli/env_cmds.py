"""afbox env create/list/rm and afbox cluster up/list/down: named software stacks."""
from __future__ import annotations

import json
import time

import click

from .. import envs
from ..lifecycle import clusters
from . import render
from .options import PATH_FILE, name_option


def _print_events(stream) -> None:
    for e in stream:
        click.echo(render.event_line(e))


@click.group()
def env():
    """Named software environments for Dask clusters and Jupyter kernels."""


@env.command("create")
@click.argument("name")
@click.argument("packages", nargs=-1)
@click.option("--requirements", "-r", type=PATH_FILE, help="A requirements.txt (plain lines).")
@click.option("--lock", type=PATH_FILE,
              help="A pixi.lock (pixi.toml beside it) or a conda environment .yml.")
@click.option("--python", help="Python version, e.g. 3.11 (default: afbox's own).")
@click.option("--image", help="A container image (docker://..., a .sif file or a sandbox dir); needs apptainer.")
def env_create(name, packages, requirements, lock, python, image):
    """Build environment NAME (or reuse an identical one); PACKAGES are extra requirement lines."""
    t0 = time.monotonic()
    if not (packages or requirements or lock or image):
        from ..bundle import runtime
        carried = runtime.env_requirements(name)
        if carried:
            click.echo(f"using the requirements this bundle carries for {name!r}")
            requirements = str(carried)
    _print_events(envs.create(name, requirements, packages, lock, python, image))
    e = envs.get(name)
    kernel = f"Jupyter kernel \"{envs.display_name(name)}\"" if e.version("ipykernel") or not e.image else "no Jupyter kernel"
    click.echo(f"\n{name}: {e.image or e.prefix} ({time.monotonic() - t0:.1f}s); {kernel}")
    click.echo(f"start a cluster from it: afbox cluster up --env {name} --workers 2")


@env.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def env_list(as_json):
    """Environments: name, python, key packages, size, created."""
    rows = [{"name": e.name, "digest": e.digest, "python": e.meta["python"], "path": str(e.prefix),
             "image": str(e.image) if e.image else None,
             "packages": {p: e.version(p) for p in envs.KEY_PACKAGES if e.version(p)}, "size": e.meta["size"],
             "created": e.created, "added": e.meta["added"]} for e in envs.all_envs()]
    if as_json:
        click.echo(json.dumps(rows, indent=2, sort_keys=True))
        return
    if not rows:
        click.echo("no environments (create one: afbox env create NAME -r requirements.txt)")
        return
    table = [(r["name"], r["python"], " ".join(f"{p}={v}" for p, v in r["packages"].items()),
              render.human_bytes(r["size"]), time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created"])))
             for r in rows]
    for line in render.table(("NAME", "PYTHON", "PACKAGES", "SIZE", "CREATED"), table):
        click.echo(line)


@env.command("rm")
@click.argument("name")
def env_rm(name):
    """Remove environment NAME; refused while a cluster or kernel runs from it."""
    _print_events(envs.remove(name))


@click.group()
def cluster():
    """Named Dask clusters whose scheduler and workers run in a named environment."""


@cluster.command("up")
@click.option("--env", "env_name", required=True, help="The environment (afbox env list).")
@click.option("--cluster", "cname", help="The cluster's name (default: the environment's).")
@click.option("--workers", "-w", type=click.IntRange(1, clusters.MAX_WORKERS), default=2, show_default=True)
@click.option("--threads", type=click.IntRange(1), help="Threads per worker (default: the facility's).")
@name_option
def cluster_up(env_name, cname, workers, threads, name):
    """Start a named cluster next to the facility's default one."""
    cname = cname or env_name
    _print_events(clusters.up(name, cname, env_name, workers, threads))
    click.echo(f"\nin a \"{envs.display_name(env_name, cname)}\" notebook: import afbox; client = afbox.client(cluster={cname!r})"
               "  (or a bare distributed.Client())")


@cluster.command("list")
@name_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def cluster_list(name, as_json):
    """The facility's default cluster and its named ones."""
    rows = clusters.listing(name)
    if as_json:
        click.echo(json.dumps(rows, indent=2, sort_keys=True))
        return
    table = [(r["name"], r["address"], f"{r['workers']}/{r['wanted']}", r["env"]) for r in rows]
    for line in render.table(("CLUSTER", "ADDRESS", "WORKERS", "ENVIRONMENT"), table):
        click.echo(line)


@cluster.command("down")
@click.argument("cname", metavar="CLUSTER")
@name_option
def cluster_down(cname, name):
    """Stop a named cluster; its environment stays."""
    _print_events(clusters.down(name, cname))


COMMANDS = [env, cluster]
