"""afbox k3s install/token/uninstall/purge, afbox join, and `up --dry-run` manifests."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import click

from ..backends.k3s import install as k3smod
from ..backends.k3s.kubectl import K3s
from ..errors import AfboxError
from ..state import state_root
from .options import GivenPath, PATH_DIR, name_option


def dry_run(fac, output) -> None:
    """Every object `afbox up` would apply, without a cluster: one file per object in DIR, or YAML
    on stdout, with every secret value empty. The facility's credentials are made first, as `up`
    makes them (the objects name their files: the CA's hash, each pod's certificate)."""
    from .. import lifecycle
    from ..backends.k3s import manifests as k8s
    from ..errors import ConfigError
    from ..lifecycle import credentials
    if fac.facility.backend != "k3s":
        raise ConfigError("--dry-run renders Kubernetes manifests: use it with --backend k3s",
                          hint="afbox up --backend k3s --dry-run -o manifests/")
    be, ctx, specs = lifecycle.placed(fac)
    credentials.prepare(ctx)
    objs = k8s.blank(be.objects(ctx, specs))
    if not output:
        click.echo(k8s.dump(objs), nl=False)
        return
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    for i, obj in enumerate(objs):
        (out / k8s.file_name(i, obj)).write_text(k8s.dump([obj]))
    click.echo(f"wrote {len(objs)} manifests to {out}/")
    click.echo("the Secrets' values and the files made at apply time (the fills ConfigMap) are left empty; "
               "everything else is what `afbox up --backend k3s` applies")


def marker() -> Path:
    """What afbox installed, so that uninstall removes only that."""
    return state_root() / "k3s" / "installed.json"


def _installed() -> dict | None:
    try:
        return json.loads(marker().read_text())
    except (OSError, ValueError):
        return None


def _install(role: str, bundle, bin_dir: str, data_dir: str, yes: bool, env: dict[str, str] | None = None,
             images=None) -> Path:
    if os.geteuid() != 0:
        raise AfboxError("installing k3s needs root", hint="run it with sudo")
    bdir, ddir = Path(bin_dir), Path(data_dir)
    tarballs = k3smod.image_tarballs(Path(images)) if images else []
    exec_args = "server --write-kubeconfig-mode=0600" if role == "server" else "agent"
    if bundle:
        binary = k3smod.install_from_bundle(Path(bundle), exec_args, bdir, ddir, env, tarballs)
    else:
        click.echo("no --bundle: this fetches https://get.k3s.io and k3s from GitHub (needs network at this site)")
        if not yes:
            click.confirm("continue?", abort=True)
        with tempfile.TemporaryDirectory() as tmp:
            binary = k3smod.install_online(exec_args, Path(tmp), bdir, ddir, env, tarballs)
    marker().parent.mkdir(parents=True, exist_ok=True)
    uninstall = bdir / ("k3s-uninstall.sh" if role == "server" else "k3s-agent-uninstall.sh")
    marker().write_text(json.dumps({"role": role, "binary": str(binary), "uninstall": str(uninstall),
                                    "data_dir": str(ddir), "bundle": str(bundle) if bundle else None}, indent=1))
    return binary


_paths = [click.option("--bin-dir", default=str(k3smod.BIN_DIR), show_default=True, type=PATH_DIR,
                       help="Where k3s goes."),
          click.option("--data-dir", default=str(k3smod.DATA_DIR), show_default=True, type=PATH_DIR,
                       help="k3s' data dir."),
          click.option("--images", type=GivenPath(file_okay=False, exists=True),
                       help="The facility's air-gap set ([k3s] images_dir: afbox's images, the GPU device "
                            "plugin), placed where k3s imports them whenever this node starts.")]


def _with_paths(f):
    for opt in reversed(_paths):
        f = opt(f)
    return f


@click.group("k3s")
def k3s_group():
    """Install, inspect and remove the k3s that the k3s backend runs on."""


@k3s_group.command("install")
@click.option("--bundle", type=click.Path(file_okay=False, exists=True),
              help="Air-gap bundle: k3s, k3s-airgap-images-<arch>.tar[.zst], install.sh.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before downloading (without --bundle).")
@click.option("--timeout", default=180.0, show_default=True, type=click.FloatRange(1, 3600),
              help="Seconds to wait for the node to be Ready.")
@_with_paths
def install(bundle, yes, timeout, bin_dir, data_dir, images):
    """Install k3s as a server on this machine and wait for its node to be Ready."""
    binary = _install("server", bundle, bin_dir, data_dir, yes, images=images)
    nodes = K3s(str(binary)).wait_node_ready(timeout)
    click.echo(f"k3s is up: node(s) Ready: {', '.join(nodes)}")
    click.echo(f"join other machines with: afbox join --server https://<this host>:6443 --token-file <copy of "
               f"{k3smod.token_path(Path(data_dir))}>")


@k3s_group.command("token")
@click.option("--data-dir", default=str(k3smod.DATA_DIR), show_default=True, type=PATH_DIR)
def token(data_dir):
    """Print the path of the token other machines join with (the token itself stays in the file)."""
    path = k3smod.token_path(Path(data_dir))
    if not path.exists():
        raise AfboxError(f"{path} does not exist: this machine is not a k3s server",
                         hint="install one with: afbox k3s install")
    click.echo(str(path))


@k3s_group.command("uninstall")
@click.option("--yes", "-y", is_flag=True, help="Do not ask.")
def uninstall(yes):
    """Remove the k3s that afbox installed (with every facility and volume on it)."""
    info = _installed()
    if not info:
        raise AfboxError("afbox did not install k3s on this machine; it leaves it alone",
                         hint="if you installed it yourself: k3s-uninstall.sh")
    if not yes:
        click.confirm(f"remove k3s ({info['role']}) and everything it runs, volumes included?", abort=True)
    from ..run import run
    run([info["uninstall"]], timeout=600)
    marker().unlink()
    click.echo("k3s removed")


@k3s_group.command("purge")
@name_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask.")
def purge(name, yes):
    """Delete the facility's namespace WITH its volumes: notebooks, cached and origin data."""
    from .. import lifecycle
    from ..state import resolve_name
    from .render import event_line
    name = resolve_name(name)

    def ask(what: str) -> None:
        if not yes:
            click.confirm(f"delete facility {name!r}'s {what} with the notebooks and data in its volumes?",
                          abort=True)
    for e in lifecycle.purge(name, confirm=ask):
        click.echo(event_line(e))


@click.command()
@click.option("--server", required=True, help="The k3s server, https://HOST:6443.")
@click.option("--token-file", required=True, type=GivenPath(dir_okay=False, exists=True),
              help="A copy of the server's token (afbox k3s token prints its path there).")
@click.option("--bundle", type=click.Path(file_okay=False, exists=True), help="Air-gap bundle (as for install).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before downloading (without --bundle).")
@_with_paths
def join(server, token_file, bundle, yes, bin_dir, data_dir, images):
    """Make this machine a k3s agent of a facility's server (its node then takes facility pods)."""
    from urllib.parse import urlsplit
    u = urlsplit(server)
    try:
        port = u.port
    except ValueError:
        port = None
    if u.scheme != "https" or not u.hostname or not port:
        raise AfboxError(f"--server must look like https://HOST:6443, got {server[:60]!r}",
                         hint="the k3s server's address and port, as agents reach it")
    tf = Path(token_file).resolve()
    try:
        token_text = tf.read_text()
    except UnicodeDecodeError:
        token_text = ""
    if not token_text.strip():
        raise AfboxError(f"{tf} is empty", hint="copy the server's token file (afbox k3s token prints where it is)")
    if tf.stat().st_mode & 0o077:
        click.echo(f"warning: {tf} is readable by others; chmod 600 it", err=True)
    # the token is passed by its path only: never in argv or the environment's values
    _install("agent", bundle, bin_dir, data_dir, yes, {"K3S_URL": server, "K3S_TOKEN_FILE": str(tf)}, images)
    click.echo(f"this machine is joining {server} as a k3s agent; on the server, `k3s kubectl get nodes` lists it")


COMMANDS: list = [k3s_group, join]
