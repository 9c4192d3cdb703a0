"""Inside the hub process: the facts afbox rendered (afbox.services.hub.settings) become JupyterHub
settings. Here, on the hub's host, the isolation is checked (a class that cannot be isolated does not
start), secrets are read or made, and what every student reads is published."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from pathlib import Path

from ..errors import AfboxError
from ..state import write_private
from . import isolation, roster
from .paths import ClassPaths

HERE = Path(__file__).resolve().parent
TUTOR_SERVICE = "afbox"
TUTOR_SCOPES = ["admin:users", "admin:servers", "list:users", "read:users", "read:servers", "read:users:activity"]
CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]


def paths_of(s: dict) -> ClassPaths:
    return ClassPaths(Path(s["state_dir"]), Path(s["root"]), Path(s["data"]), Path(s["homes"]))


def secret(path: Path) -> str:
    """A random secret kept in a 0600 file: made once, the same across down/up."""
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private(path, secrets.token_hex(32))
    return path.read_text().strip()


def publish(s: dict, paths: ClassPaths) -> None:
    """The issuer's public keys and the facility CA where every student may read them."""
    ident = Path(s["identity_dir"])
    pub = paths.public
    pub.mkdir(parents=True, exist_ok=True)
    for name in ("public-keys.json", "ca.pem"):
        shutil.copyfile(ident / name, pub / f".{name}.new")
        os.chmod(pub / f".{name}.new", 0o644)
        os.replace(pub / f".{name}.new", pub / name)
    hashed = pub / "ca-hashed"
    hashed.mkdir(exist_ok=True)
    for f in (ident / "ca-hashed").glob("*.0"):
        shutil.copyfile(f, hashed / f.name)
        os.chmod(hashed / f.name, 0o644)
    for d in (paths.root, pub, hashed, paths.homes_dir, paths.runtime, paths.clusters):
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o755 if d in (pub, hashed) else 0o711)  # students pass through, list nothing


def isolation_mode(s: dict) -> str:
    if s["spawner"] != "local":
        return "pods"
    mode, why = isolation.choose(s["isolation"], os.geteuid() == 0, shutil.which("bwrap"))
    if not mode:
        raise AfboxError(why)
    if mode == "bwrap":
        isolation.check_bwrap()
    if mode == "users":
        isolation.check_python_for_students()
    return mode


def configure(c, s: dict) -> None:
    """Fill JupyterHub's config object `c` from afbox's settings `s`."""
    try:
        mode = isolation_mode(s)
    except AfboxError as e:
        sys.exit(f"afbox hub: the class cannot start: {e.message}" + (f" ({e.hint})" if e.hint else ""))
    paths = paths_of(s)
    paths.hub_dir.mkdir(parents=True, exist_ok=True)
    added = roster.sync(paths.accounts, [tuple(p) for p in s["people"]])
    if added:
        print(f"afbox hub: {len(added)} new account(s): {', '.join(added)}", flush=True)
    people = roster.load(paths.accounts)
    publish(s, paths)

    if s["tls_cert"]:
        c.JupyterHub.bind_url = f"https://{s['listen']}:{s['port']}/"
        c.JupyterHub.ssl_cert, c.JupyterHub.ssl_key = s["tls_cert"], s["tls_key"]
    else:  # k3s: the ingress ends TLS, and only it may reach this port (NetworkPolicy)
        c.JupyterHub.bind_url = f"http://{s['listen']}:{s['port']}/"
    c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{s['hub_port']}"
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{s['api_port']}"
    chp = shutil.which("configurable-http-proxy", path=s["bin_dir"]) or shutil.which("configurable-http-proxy")
    if not chp:
        sys.exit("afbox hub: configurable-http-proxy (JupyterHub's proxy) is not installed; "
                 "./install.sh installs it with npm (apt-get install nodejs npm)")
    c.ConfigurableHTTPProxy.command = [chp]
    c.ConfigurableHTTPProxy.pid_file = str(paths.hub_dir / "proxy.pid")
    c.JupyterHub.db_url = f"sqlite:///{paths.hub_dir / 'jupyterhub.sqlite'}"
    c.JupyterHub.pid_file = str(paths.hub_dir / "jupyterhub.pid")
    c.JupyterHub.cookie_secret = bytes.fromhex(secret(paths.cookie_secret))
    c.JupyterHub.template_paths = [str(HERE / "templates")]
    c.JupyterHub.concurrent_spawn_limit = s["concurrent_spawns"]
    c.JupyterHub.cleanup_servers = True
    # activity reaches the hub at least this often, or the culler would stop servers in use
    c.JupyterHub.last_activity_interval = activity_interval(s)

    c.JupyterHub.authenticator_class = "afbox.hub.authenticator.RosterAuthenticator"
    c.RosterAuthenticator.accounts_file = str(paths.accounts)
    c.Authenticator.admin_users = set(s["tutors"])
    c.Authenticator.allow_existing_users = True

    python = f"{s['bin_dir']}/python"
    c.JupyterHub.services = [
        {"name": TUTOR_SERVICE, "api_token": secret(paths.api_token)},
        {"name": "idle-culler", "command": [python, "-m", "jupyterhub_idle_culler", f"--timeout={int(s['server_idle'])}",
                                            f"--cull-every={int(s['cull_every'])}", "--cull-admin-users=false"]},
    ]
    roles = [{"name": "afbox-tutor", "scopes": TUTOR_SCOPES, "services": [TUTOR_SERVICE]},
             {"name": "idle-culler", "scopes": CULLER_SCOPES, "services": ["idle-culler"]}]
    if s["prestart"]:
        first = [a.name for a in people.students()][: s["prestart"]]
        c.JupyterHub.services.append({"name": "prestart", "command": [
            python, "-m", "afbox.hub.prestart", *first]})
        roles.append({"name": "prestart", "scopes": ["admin:users", "admin:servers"], "services": ["prestart"]})
    c.JupyterHub.load_roles = roles

    c.Spawner.default_url = "/lab"
    c.Spawner.start_timeout = 180
    c.Spawner.http_timeout = 180
    c.Spawner.poll_interval = 30
    if mode == "pods":  # where and how the pods run, the k3s backend adds below (manifests/hub_pods.py)
        c.JupyterHub.spawner_class = "afbox.hub.kube.ClassKubeSpawner"
        sp = c.ClassKubeSpawner
    else:
        c.JupyterHub.spawner_class = "afbox.hub.spawner.ClassSpawner"
        c.Spawner.ip = "127.0.0.1"
        sp = c.ClassSpawner
        sp.isolation, sp.runtime_dir, sp.data_dir = mode, str(paths.runtime), s["data"]
        sp.memory, sp.cpus, sp.admit_free = s["memory"], s["cpus"], s["admit_free"]
    sp.facility, sp.homes_dir, sp.public_dir = s["facility"], str(paths.homes_dir), str(paths.public)
    sp.content_dir = s["content"] or str(default_content(paths, s["xcache"]))
    sp.identity_dir, sp.issuer, sp.token_lifetime = s["identity_dir"], s["issuer"], s["token_lifetime"]
    sp.gateway_url, sp.gateway_proxy, sp.xcache_url = s["gateway"], s["gateway_proxy"], s["xcache"]
    sp.extra_env = [("JUPYTERHUB_ACTIVITY_INTERVAL", str(activity_interval(s)))]


def activity_interval(s: dict) -> int:
    return int(min(300, max(5, s["server_idle"] / 4)))


def default_content(paths: ClassPaths, xcache: str) -> Path:
    """The demo analysis notebook, reading the class's demo dataset through the XCache."""
    from .home import default_content as write
    files: list[str] = []
    current = paths.data / "demo" / "ttbar" / "CURRENT"
    if current.exists():
        folder = paths.data / "demo" / "ttbar" / current.read_text().strip()
        files = [f"{xcache.rstrip('/')}//{f.relative_to(paths.data)}" if xcache else str(f)
                 for f in sorted(folder.glob("*.root"))]
    return write(paths.hub_dir / "content", files)


def load_settings(config_file: Path) -> dict:
    """The settings a hub config file holds (for `afbox class` commands)."""
    import ast
    for line in config_file.read_text().splitlines():
        if line.startswith("SETTINGS = "):
            return json.loads(ast.literal_eval(line.removeprefix("SETTINGS = ")))
    raise ValueError(f"{config_file}: no SETTINGS line")
