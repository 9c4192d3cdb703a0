"""The facility spec: a profile from bundles/, a user file merged over it, then flags; validated."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .class_spec import MasterclassSection
from .errors import ConfigError
from .ports import MAX_WORKERS, SPAN
from .state import name_problem
from .units import parse_duration, parse_size

BUNDLES = Path(__file__).resolve().parent.parent / "bundles"
# The backends, by the name a facility file gives them (see afbox/backends/): adding one is its
# package and a line here.
BACKENDS = {"local": "afbox.backends.local:LocalBackend",
            "slurm": "afbox.backends.slurm:SlurmBackend",
            "k3s": "afbox.backends.k3s:K3sBackend"}


FILE_HINT = "the README's facility file example (Profiles and the facility file) shows the keys and their defaults"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FacilitySection(Section):
    name: str = "default"
    description: str = ""
    backend: str = "local"
    workdir: str = ""            # "": default_workdir(name), so facilities side by side never share one
    port_base: int = Field(8780, ge=1024, le=65535 - SPAN)
    bind: str = "127.0.0.1"
    # the name or address other sites reach this facility at: set it to federate (afbox site); the
    # issuer, the gateway and the XCache then bind to it, Jupyter and Dask stay on `bind`
    public_host: str = Field("", pattern=r"^$|^[A-Za-z0-9]([A-Za-z0-9.-]{0,252}[A-Za-z0-9])?$")
    require: list[Literal["xcache", "jupyter", "dask", "hub"]] = []
    start_timeout: float = Field(90, gt=0)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if problem := name_problem(v):
            raise ValueError(problem)
        return v

    @field_validator("workdir")
    @classmethod
    def _workdir(cls, v: str) -> str:
        if v and (not v.strip() or "\0" in v):
            raise ValueError(f"{v!r} is not a directory path")
        return v

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, v: str) -> str:
        if v not in BACKENDS:
            raise ValueError(f"unknown backend {v!r} (known: {', '.join(BACKENDS)})")
        return v


class DaskSection(Section):
    workers: int = Field(0, ge=0, le=MAX_WORKERS, description="0 = sized to the cores")
    threads_per_worker: int = Field(0, ge=0)
    gpus: int = Field(-1, ge=-1, description="GPU workers: -1 one per usable GPU/MIG instance, 0 none, N at most N")
    memory_limit: str = "auto"
    # Fraction of RAM the workers may take together when memory_limit is auto.
    memory_fraction: float = Field(0.6, gt=0, le=1)
    extra_args: list[str] = []

    @field_validator("memory_limit")
    @classmethod
    def _size(cls, v: str) -> str:
        if v != "auto":
            parse_size(v)
        return v


class JupyterSection(Section):
    enabled: bool = True
    extra_args: list[str] = []


class GatewaySection(Section):
    """dask-gateway-server: Dask clusters on demand for holders of a facility token (needs [auth])."""
    enabled: bool = True
    # fork clusters' processes from a warm interpreter (afbox.plugins.forkserver): each cluster
    # starts about a second sooner, for about 80 MB while the gateway runs
    warm: bool = True


class XCacheSection(Section):
    enabled: bool = True
    xrootd: str = "xrootd"       # the server binary: a name on PATH or a full path
    origin: str = ""
    cache_dir: str = ""
    size: str = "auto"
    ram: str = "256MiB"
    extra_config: list[str] = []

    @field_validator("origin")
    @classmethod
    def _origin(cls, v: str) -> str:
        if v and not re.match(r"^(root|xroot)://[^/\s]+(:\d+)?/*$", v):
            raise ValueError(f"origin must look like root://host:port, got {v!r}")
        return v

    @field_validator("size", "ram")
    @classmethod
    def _size(cls, v: str) -> str:
        if v != "auto":
            parse_size(v)
        return v


class OriginSection(Section):
    """A data origin served by the facility itself, for data that has no remote home (demos, classes)."""
    enabled: Literal["auto"] | bool = "auto"   # auto: when the XCache runs and has no [xcache] origin
    data_dir: str = ""                          # default: <data>/afbox/<name>/origin


class AuthSection(Section):
    enabled: bool = True
    # other issuers whose tokens this facility accepts: another facility, CILogon, INDIGO IAM
    trusted_issuers: list[str] = []
    # CA certificates (PEM files) for trusted issuers whose HTTPS certificate the system's CAs do not
    # sign, e.g. another facility's <state>/secrets/identity/ca.pem
    trusted_ca_files: list[str] = []
    token_lifetime: str = "8h"

    @field_validator("trusted_issuers")
    @classmethod
    def _https(cls, v: list[str]) -> list[str]:
        for url in v:
            if not url.startswith("https://"):
                raise ValueError(f"a trusted issuer must be an https:// URL, got {url!r}")
        return v

    @field_validator("token_lifetime")
    @classmethod
    def _lifetime(cls, v: str) -> str:
        parse_duration(v)
        return v


SLURM_TIME = re.compile(r"^(UNLIMITED|INFINITE|unlimited|infinite|\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d{1,2}(:\d{1,2}(:\d{1,2})?)?)$")


class SlurmSection(Section):
    """HPC mode: workers on every node of a SLURM allocation (see afbox/backends/slurm.py)."""
    interface: str = ""             # network interface workers and scheduler bind to; "" = auto
    retire_before: str = "5m"       # retire workers this long before the walltime ends
    # for `afbox up --slurm` outside an allocation
    nodes: int = Field(1, ge=1)
    time: str = "1:00:00"
    partition: str = ""
    account: str = ""
    extra_sbatch: list[str] = []
    queue_timeout: str = "10m"      # how long `up --slurm` / `scale --jobs` wait for a job to start

    @field_validator("retire_before", "queue_timeout")
    @classmethod
    def _dur(cls, v: str) -> str:
        parse_duration(v)
        return v

    @field_validator("time")
    @classmethod
    def _walltime(cls, v: str) -> str:
        if not SLURM_TIME.match(v):
            raise ValueError(f"{v!r} is not a SLURM time limit (minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM[:SS])")
        return v

    @field_validator("partition", "account", "interface")
    @classmethod
    def _word(cls, v: str) -> str:
        # these go into the job script's #SBATCH lines: one word, nothing a shell would read
        if not re.match(r"^[\w.,+-]*$", v):
            raise ValueError(f"{v[:40]!r} is not a SLURM name (letters, digits and . , + - _ only)")
        return v


class RuntimeSection(Section):
    """Wrap every service's argv in a container runtime (see afbox/runtimes/)."""
    kind: Literal["none", "apptainer"] = "none"
    image: str = ""                 # docker://..., a .sif path or a sandbox directory


class K3sSection(Section):
    """The k3s backend: images and namespace (see afbox/backends/k3s.py)."""
    namespace: str = ""             # default: afbox-<facility name>
    analysis_image: str = "ghcr.io/afbox/analysis:0.1.0"
    xcache_image: str = "ghcr.io/afbox/xcache:0.1.0"
    host: str = "afbox.localhost"   # ingress host name
    storage_class: str = "local-path"
    workdir_size: str = "10GiB"     # the notebooks' volume (local-path does not enforce sizes)
    origin_size: str = "10GiB"
    images_dir: str = ""            # image tarballs to `k3s ctr images import` before applying
    device_plugin_image: str = "nvcr.io/nvidia/k8s-device-plugin:v0.17.0"
    # the Dask gateway's proxy (Traefik, as dask-gateway's chart runs it): the one k3s itself ships
    gateway_proxy_image: str = "docker.io/rancher/mirrored-library-traefik:2.11.18"
    cpu_request: str = "100m"       # for a pod whose service declares no size of its own
    memory_request: str = "256MiB"  # likewise: every pod asks for memory, so none is evicted first for it
    rollout_timeout: float = Field(300, gt=0)  # seconds for each workload (image pulls included)

    @field_validator("workdir_size", "origin_size", "memory_request")
    @classmethod
    def _size(cls, v: str) -> str:
        parse_size(v)
        return v


class Facility(BaseModel):
    model_config = ConfigDict(extra="forbid")
    facility: FacilitySection = FacilitySection()
    dask: DaskSection = DaskSection()
    jupyter: JupyterSection = JupyterSection()
    gateway: GatewaySection = GatewaySection()
    xcache: XCacheSection = XCacheSection()
    origin: OriginSection = OriginSection()
    auth: AuthSection = AuthSection()
    slurm: SlurmSection = SlurmSection()
    runtime: RuntimeSection = RuntimeSection()
    k3s: K3sSection = K3sSection()
    masterclass: MasterclassSection = MasterclassSection()
    profile: str = ""

    @model_validator(mode="after")
    def _runtime_where_processes_run(self) -> Facility:
        if self.runtime.kind != "none" and self.facility.backend == "k3s":
            raise ValueError("runtime.kind: k3s runs every service in its image already; "
                             "a container runtime is for the local and slurm backends")
        return self

    @model_validator(mode="after")
    def _class_where_students_reach_it(self) -> Facility:
        m = self.masterclass
        if not m.enabled:
            return self
        if self.facility.backend == "slurm":
            raise ValueError("masterclass: a class needs one machine its students' browsers reach and that "
                             "creates their accounts; a SLURM allocation belongs to one user and its nodes are "
                             "not reachable from the students' laptops: use the local backend")
        if not self.auth.enabled or not self.gateway.enabled:
            raise ValueError("masterclass: students log in with facility tokens and get their Dask clusters "
                             "from the gateway: [auth] and [gateway] must stay enabled")
        if not m.students and not m.roster:
            raise ValueError("masterclass: say who the students are: students = N or roster = FILE")
        if "hub" not in self.facility.require:
            self.facility.require.append("hub")  # a class without isolation is refused, never run bare
        return self

    @property
    def local_origin(self) -> bool:
        o = self.origin.enabled
        return o is True or (o == "auto" and self.xcache.enabled and not self.xcache.origin)

    @property
    def name(self) -> str:
        return self.facility.name

    @property
    def workdir(self) -> Path:
        return Path(self.facility.workdir or default_workdir(self.name)).expanduser().resolve()


def default_workdir(name: str) -> str:
    """~/afbox-work for the facility named default, ~/afbox-work-NAME for any other: two facilities
    side by side never write their outputs (agc_output, the demo notebook) over each other's."""
    return "~/afbox-work" if name == "default" else f"~/afbox-work-{name}"


def profiles() -> dict[str, str]:
    """Known profiles and their one-line descriptions."""
    out = {}
    for p in sorted(BUNDLES.glob("*.toml")):
        data = tomllib.loads(p.read_text())
        out[p.stem] = data.get("facility", {}).get("description", "")
    return out


def deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def key_line(text: str, path: tuple) -> int | None:
    """The line where a dotted key is set in TOML text (for `file:line:` errors); None if not found."""
    table: tuple = ()
    keys = [str(p) for p in path if not isinstance(p, int)]
    best = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if m := re.match(r"^\[\s*([^\]]+?)\s*\]$", line):
            table = tuple(s.strip().strip('"') for s in m.group(1).split("."))
            if list(table) == keys:
                best = n
            continue
        if m := re.match(r'^("?[\w.-]+"?)\s*=', line):
            full = table + tuple(s.strip('"') for s in m.group(1).split("."))
            if list(full) == keys[: len(full)] and len(full) <= len(keys):
                best = n
    return best


def _read_toml(path: Path) -> tuple[dict, str]:
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{_short(path)}: cannot read: {e.strerror}", hint="give the path of a facility TOML file"
                          ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{_short(path)}: not a text file", hint="a facility file is TOML text (UTF-8)") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(e))
        msg = re.sub(r"\s*\(at line.*\)", "", str(e))
        where = f"{_short(path)}:{m.group(1)}" if m else _short(path)
        raise ConfigError(f"{where}: {msg}", hint=FILE_HINT) from None


def _short(path: Path) -> str:
    text = str(path)
    return text if len(text) <= 120 else text[:60] + "..." + text[-40:]


def load(profile: str = "laptop", config: str | Path | None = None, overrides: dict | None = None) -> Facility:
    """profile (bundles/NAME.toml) <- user config file <- overrides from flags; validated."""
    known = profiles()
    if profile not in known:
        shown = profile if len(profile) <= 40 else profile[:37] + "..."
        raise ConfigError(f"unknown profile {shown!r}", hint="known profiles: " + ", ".join(known))
    layers: list[tuple[Path | None, dict, str]] = []
    ppath = BUNDLES / f"{profile}.toml"
    layers.append((ppath, *_read_toml(ppath)))
    if config:
        cpath = Path(config).expanduser()
        layers.append((cpath, *_read_toml(cpath)))
    layers.append((None, overrides or {}, ""))
    merged: dict[str, Any] = {}
    for _, data, _ in layers:
        merged = deep_merge(merged, data)
    merged["profile"] = profile
    try:
        return Facility.model_validate(merged)
    except ValidationError as e:
        raise _config_error(e, layers) from None


def _config_error(err: ValidationError, layers) -> ConfigError:
    lines = []
    for item in err.errors():
        loc = tuple(item["loc"])
        where = "command-line flags"
        for path, data, text in reversed(layers):
            if _has(data, loc):
                if path is None:
                    break
                line = key_line(text, loc)
                where = f"{path}:{line}" if line else str(path)
                break
        dotted = ".".join(str(p) for p in loc)
        msg = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"{where}: {dotted}: {msg}" if dotted else f"{where}: {msg}")
    from_file = any(not line.startswith("command-line flags") for line in lines)
    return ConfigError(lines[0], details=lines[1:], hint=FILE_HINT if from_file else "see `afbox up --help`")


def _has(data: dict, loc: tuple) -> bool:
    cur: Any = data
    for p in loc:
        if isinstance(p, int):
            if not isinstance(cur, list) or p >= len(cur):
                return False
        elif not isinstance(cur, dict) or p not in cur:
            return False
        cur = cur[p]
    return True
