"""Named software environments: content-addressed Python stacks that named Dask clusters and
Jupyter kernels run in (afbox env create/list/rm).

An environment lives in `<data>/afbox/envs/<digest>/`, where the digest covers the normalized
requirements (or the lock file's bytes), the Python version and what afbox adds, so the same
request reuses the same environment. Names point at digests (`names/<name>.json`). A uv build
happens in a temporary dir that is renamed into place only once it works (a relocatable venv), so
a failed build leaves nothing behind; conda/pixi prefixes cannot move, so they are built in place
and marked complete only at the end (a dir without its marker is never used and is rebuilt).
A container image is an environment too: pulled once into its dir as a .sif (content-addressed by
the reference), or a .sif / sandbox dir used where it is; its python runs through `apptainer exec`.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from . import events as ev
from .errors import AfboxError, CommandError, ConfigError
from .run import require, run, which
from .runtimes import apptainer
from .state import data_root, state_root, write_private

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,30}$")
MARKER = "afbox-env.json"
RECIPE = 1  # bump when what afbox adds changes, so older environments are not reused for it
KEY_PACKAGES = ("dask", "distributed", "coffea", "awkward", "uproot")
# what the afbox side needs in every environment: Dask's cluster parts, a Jupyter kernel, root:// reads
NEEDED = ("distributed", "ipykernel", "xrootd", "fsspec-xrootd")
# prints what a built environment holds; also proves that the cluster parts import
PROBE = ("import importlib.metadata as m, json, platform, dask, distributed;"
         "print(json.dumps({'python': platform.python_version(),"
         " 'packages': {m_.metadata['Name'].lower(): m_.version for m_ in m.distributions() if m_.metadata['Name']}}))")


def envs_root() -> Path:
    return data_root() / "envs"


def jupyter_dir() -> Path:
    """On every facility's JUPYTER_PATH: kernelspecs written here show up in running Jupyters."""
    return envs_root() / "jupyter"


def facility_jupyter_dir(state_dir: Path) -> Path:
    """First on one facility's JUPYTER_PATH: kernelspecs of its named clusters, with their addresses."""
    return state_dir / "jupyter"


def facility_kernels(state_dir: Path) -> Path:
    return facility_jupyter_dir(state_dir) / "kernels"


def kernel_name(env_name: str) -> str:
    return f"afbox-{env_name}"


def pylib() -> Path:
    return envs_root() / "pylib"


def client_binds() -> tuple[str, ...]:
    """What an image's kernel or client needs of the host beyond apptainer's defaults ($HOME, the
    working dir): afbox.client (the link and its target) and the facilities' state (Jupyter's
    connection files, the Dask and data credentials)."""
    return (str(pylib()), str(Path(__file__).resolve().parent), str(state_root()))


# -- pure: what to build -------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """What the user asked for: requirement lines, a pixi/conda lock file (kind + bytes digest), or
    a container image (its reference, or the absolute path of a .sif / sandbox dir)."""
    kind: str                        # "requirements", "pixi", "conda", "image"
    requirements: tuple[str, ...] = ()
    lock: str = ""                   # path of the lock / environment file
    lock_digest: str = ""
    image: str = ""


def parse_requirements(lines: list[str], where: str = "requirements") -> list[Requirement]:
    """Plain requirement lines (comments and blanks skipped); anything else is a `file:line:` error."""
    out = []
    for n, raw in enumerate(lines, 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            raise ConfigError(f"{where}:{n}: options such as {line.split()[0]!r} are not supported",
                              hint="list plain requirements (name, version specifiers, markers), one a line")
        try:
            req = Requirement(line)
        except InvalidRequirement as e:
            raise ConfigError(f"{where}:{n}: {e}") from None
        req.name = canonicalize_name(req.name)
        out.append(req)
    return out


def additions(reqs: list[Requirement]) -> list[str]:
    """What afbox adds to the user's stack when it is missing. distributed follows a pinned dask
    exactly (both are released together under one version), so an older stack gets its own."""
    names = {r.name for r in reqs}
    out = []
    for need in NEEDED:
        if need in names:
            continue
        if need == "distributed":
            dask = next((r for r in reqs if r.name == "dask"), None)
            pins = [s.version for s in dask.specifier if s.operator in ("==", "===")] if dask else []
            if len(pins) == 1 and "*" not in pins[0]:
                out.append(f"distributed=={pins[0]}")
                continue
        out.append(need)
    return out


def digest(source: Source, python: str, added: list[str]) -> str:
    key = {"recipe": RECIPE, "python": python, "kind": source.kind, "requirements": sorted(source.requirements),
           "lock": source.lock_digest, "added": sorted(added)}
    if source.image:  # only then, so environments built before images existed keep their digests
        key["image"] = source.image
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Step:
    label: str
    argv: tuple[str, ...]
    timeout: float
    resolves: bool = False   # its failure is the resolver's answer: shown as such
    input: str | None = None


def uv_steps(uv: str, python: str, build: Path, requirements: list[str]) -> list[Step]:
    """venv, resolve to a lock (kept in the env, for the record), install exactly that lock."""
    py = str(build / "bin" / "python")
    return [
        Step(f"creating a Python {python} environment", (uv, "venv", "--no-config", "--quiet", "--relocatable",
                                                        "--python", python, str(build)), 300),
        Step("resolving", (uv, "pip", "compile", "--no-config", "--quiet", "--python", py, "-",
                           "-o", str(build / "afbox-lock.txt")), 900, resolves=True,
             input="\n".join(requirements) + "\n"),
        Step("installing", (uv, "pip", "sync", "--no-config", "--quiet", "--python", py,
                            str(build / "afbox-lock.txt")), 1800),
    ]


def lock_steps(source: Source, tool: str, build: Path) -> list[Step]:
    """A conda environment file or a pixi lock, built by its own tool (only when it is installed)."""
    if source.kind == "pixi":
        manifest = build / "pixi.toml"
        return [Step("installing the pixi lock", (tool, "install", "--frozen", "--manifest-path", str(manifest)),
                     1800, resolves=True)]
    verb = ("create", "--yes") if Path(tool).name == "micromamba" else ("env", "create")
    return [Step("creating the conda environment", (tool, *verb, "--prefix", str(build / "prefix"),
                                                    "--file", source.lock), 1800, resolves=True)]


def lock_prefix(kind: str) -> str:
    return {"requirements": ".", "pixi": ".pixi/envs/default", "conda": "prefix"}[kind]


def kernelspec(env: "Env", extra_env: dict[str, str] | None = None, binds: tuple[str, ...] = ()) -> dict:
    """A Jupyter kernelspec running the environment's own python. With no cluster of its own the
    kernel must not reach for the facility's default cluster, whose versions may differ. An image's
    kernel runs in the container, seeing binds (Jupyter's connection file, credentials, afbox.client)."""
    env_vars = {"AFBOX_ENV": env.name, "AFBOX_SCHEDULER": "", "DASK_SCHEDULER_ADDRESS": ""} | (extra_env or {})
    if env.image:
        env_vars["PYTHONPATH"] = str(pylib())  # `import afbox` in the image: its client part only
    return {"argv": list(env.python_argv(binds)) + ["-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": f"Python ({env.name})", "language": "python", "env": env_vars,
            "metadata": {"afbox": {"env": env.name, "digest": env.digest}}}


# -- the environments on disk ---------------------------------------------------------------------
@dataclass(frozen=True)
class Env:
    name: str
    digest: str
    dir: Path
    meta: dict
    created: float

    @property
    def prefix(self) -> Path:
        return (self.dir / self.meta.get("prefix", ".")).resolve()

    @property
    def bin_dir(self) -> Path:
        return self.prefix / "bin"

    @property
    def python(self) -> Path:
        return self.bin_dir / "python"

    def version(self, package: str) -> str | None:
        return self.meta.get("packages", {}).get(package)

    @property
    def image(self) -> Path | None:
        """The container image an image environment runs in (in its dir, or where the user keeps it)."""
        return self.dir / self.meta["image"] if self.meta.get("image") else None

    def python_argv(self, binds: tuple[str, ...] = ()) -> tuple[str, ...]:
        """How to run the environment's python: directly, or inside its image."""
        if self.image:
            return apptainer.exec_argv(str(self.image), ("python",), binds=binds, gpus=False)
        return (str(self.python),)


def _name_file(name: str) -> Path:
    return envs_root() / "names" / f"{name}.json"


def check_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise AfboxError(f"bad environment name {name!r}",
                         hint="use lowercase letters, digits, '-' and '_' (at most 31 characters)")


def get(name: str) -> Env:
    check_name(name)
    try:
        entry = json.loads(_name_file(name).read_text())
        d = envs_root() / entry["digest"]
        meta = json.loads((d / MARKER).read_text())
    except (OSError, ValueError, KeyError):
        raise AfboxError(f"no environment {name!r}",
                         hint=f"create it with: afbox env create {name} --requirements requirements.txt") from None
    return Env(name, entry["digest"], d, meta, entry["created"])


def all_envs() -> list[Env]:
    names = sorted(p.stem for p in (envs_root() / "names").glob("*.json"))
    out = []
    for n in names:
        try:
            out.append(get(n))
        except AfboxError:
            continue  # a name whose env was removed by hand: not listed
    return out


def tree_size(path: Path) -> int:
    """Bytes of the files under path, each inode once (uv hard-links files from its cache)."""
    seen, total = set(), 0
    for root, _, files in os.walk(path):
        for f in files:
            st = os.lstat(os.path.join(root, f))
            if st.st_ino not in seen:
                seen.add(st.st_ino)
                total += st.st_size
    return total


def _source(requirements: str | None, packages: tuple[str, ...], lock: str | None) -> tuple[Source, list]:
    if lock:
        if requirements or packages:
            raise AfboxError("give either --lock or requirements, not both")
        path = Path(lock).expanduser().resolve()
        if not path.is_file():
            raise AfboxError(f"{lock}: no such file")
        kind = "pixi" if path.name == "pixi.lock" else "conda" if path.suffix in (".yml", ".yaml") else None
        if not kind:
            raise AfboxError(f"{lock}: not a pixi.lock or a conda environment file (.yml)")
        data = path.read_bytes()
        if kind == "pixi":
            manifest = path.with_name("pixi.toml")
            if not manifest.is_file():
                raise AfboxError(f"{lock}: pixi needs its manifest beside it ({manifest.name})")
            data += manifest.read_bytes()
        return Source(kind, lock=str(path), lock_digest=hashlib.sha256(data).hexdigest()), []
    lines: list[str] = []
    reqs = []
    if requirements:
        try:
            lines = Path(requirements).expanduser().read_text().splitlines()
        except OSError as e:
            raise ConfigError(f"{requirements}: cannot read: {e.strerror}") from None
        reqs = parse_requirements(lines, requirements)
    reqs += parse_requirements(list(packages), "command line")
    return Source("requirements", requirements=tuple(sorted(str(r) for r in reqs))), reqs


def _lock_tool(kind: str) -> str:
    if kind == "pixi":
        return require("pixi")
    for tool in ("micromamba", "mamba", "conda"):
        if which(tool):
            return which(tool)
    return require("conda")


def _uv_env() -> dict[str, str]:
    # no prompts, no colour codes in the error text shown to the user
    return {"UV_NO_PROGRESS": "1", "NO_COLOR": "1"}


def create(name: str, requirements: str | None = None, packages: tuple[str, ...] = (), lock: str | None = None,
           python: str | None = None, image: str | None = None) -> Iterator[ev.Event]:
    """Build (or reuse) the environment and give it the name; yields progress as Events."""
    check_name(name)
    if image:
        if requirements or packages or lock or python:
            raise AfboxError("an image brings its own python and packages: give --image alone",
                             hint="install what you need into the image, or build from requirements instead")
        yield from _create_image(name, image)
        return
    python = python or f"{sys.version_info.major}.{sys.version_info.minor}"
    if not re.match(r"^3\.\d+$", python):
        raise AfboxError(f"--python wants a version like 3.11, got {python!r}")
    source, reqs = _source(requirements, packages, lock)
    added = additions(reqs) if source.kind == "requirements" else []
    key = digest(source, python, added)
    final = envs_root() / key
    if _reused(name, key):
        yield ev.Event(ev.INFO, "", f"reusing environment {key} (built {_built(final)}, same contents)")
        return
    if added:
        yield ev.Event(ev.INFO, "", "afbox adds what the cluster and kernel need: " + ", ".join(added))
    t0 = time.monotonic()
    envs_root().mkdir(parents=True, exist_ok=True)
    build = final if source.kind != "requirements" else envs_root() / f".build-{key}-{os.getpid()}"
    shutil.rmtree(build, ignore_errors=True)  # a half-made dir of a build that was killed
    try:
        if source.kind == "requirements":
            steps = uv_steps(require("uv"), python, build, [*source.requirements, *added])
        else:
            build.mkdir(parents=True)
            tool = _lock_tool(source.kind)
            if source.kind == "pixi":
                for f in (Path(source.lock), Path(source.lock).with_name("pixi.toml")):
                    shutil.copy2(f, build / f.name)
            steps = lock_steps(source, tool, build)
        for step in steps:
            yield ev.Event(ev.INFO, "", f"{step.label} ...")
            _run_step(name, step, added)
        prefix = build / lock_prefix(source.kind)
        if source.kind != "requirements":
            yield from _complete_lock_env(name, prefix)
        link_afbox(prefix)
        yield ev.Event(ev.INFO, "", "checking that dask and distributed import ...")
        probe = json.loads(_run_step(name, Step("checking", (str(prefix / "bin" / "python"), "-c", PROBE), 300)))
        meta = {"digest": key, "python": probe["python"], "source": source.__dict__, "added": added,
                "prefix": lock_prefix(source.kind), "packages": probe["packages"], "built": time.time(),
                "build_seconds": round(time.monotonic() - t0, 1), "size": tree_size(build)}
        _move_into_place(build, final, meta)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    yield ev.Event(ev.INFO, "", f"environment {name!r} built in " + _named(name, key))


def _reused(name: str, key: str) -> bool:
    """Names an environment of these contents that is already built; refuses a name taken by others."""
    existing = _existing_name(name)
    if existing and existing != key:
        raise AfboxError(f"environment {name!r} exists with other contents",
                         hint=f"remove it first (afbox env rm {name}) or choose another name")
    if not (envs_root() / key / MARKER).exists():
        return False
    _name(name, key)
    env = get(name)
    link_afbox(None if env.image else env.prefix)
    write_kernelspec(env)
    return True


def _built(d: Path) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(json.loads((d / MARKER).read_text())["built"]))


def _create_image(name: str, image: str) -> Iterator[ev.Event]:
    """An environment from a container image: pulled once (or used in place), then asked inside
    for its python and packages; afbox cannot add to an image, so it says what the image lacks."""
    require("apptainer")
    pulled = apptainer.is_reference(image)
    source = Source("image", image=image if pulled else str(apptainer.local_image(image)))
    key = digest(source, "", [])
    final = envs_root() / key
    if _reused(name, key):
        yield ev.Event(ev.INFO, "", f"reusing environment {key} (image {source.image}, "
                                    f"taken {_built(final)}; to take it anew: afbox env rm {name}, then create)")
        return
    t0 = time.monotonic()
    envs_root().mkdir(parents=True, exist_ok=True)
    build = envs_root() / f".build-{key}-{os.getpid()}"
    shutil.rmtree(build, ignore_errors=True)
    try:
        build.mkdir()
        if pulled:
            yield ev.Event(ev.INFO, "", f"pulling {image} (once: kept as a .sif in the environment) ...")
            try:
                sif = apptainer.pull(image, build)
            except CommandError as e:
                raise AfboxError(f"environment {name!r}: apptainer could not pull {image}", details=e.details,
                                 hint="check the reference, and that this host reaches its registry") from None
        else:
            sif = Path(source.image)
        yield ev.Event(ev.INFO, "", "reading python and packages inside the image ...")
        probe = _probe_image(name, sif)
        lacks = [n for n in NEEDED if n not in probe["packages"]]
        if lacks:
            yield ev.Event(ev.INFO, "", f"the image lacks {', '.join(lacks)} (afbox does not change images): "
                                        + ("no Jupyter kernel" if "ipykernel" in lacks else "no root:// reads"))
        link_afbox(None)
        meta = {"digest": key, "python": probe["python"], "source": source.__dict__, "added": [], "prefix": ".",
                "image": sif.name if pulled else str(sif), "packages": probe["packages"], "built": time.time(),
                "build_seconds": round(time.monotonic() - t0, 1),
                "size": tree_size(build) if pulled else tree_size(sif) if sif.is_dir() else sif.stat().st_size}
        _move_into_place(build, final, meta)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    yield ev.Event(ev.INFO, "", f"environment {name!r} from {image} in " + _named(name, key))


def _move_into_place(build: Path, final: Path, meta: dict) -> None:
    """Mark a finished build and rename it to its content address (nothing half-made is ever there)."""
    (build / MARKER).write_text(json.dumps(meta, indent=2, sort_keys=True))
    if build != final:
        try:
            build.rename(final)
        except OSError:  # the same environment finished elsewhere meanwhile: use that one
            shutil.rmtree(build, ignore_errors=True)


def _named(name: str, key: str) -> str:
    """Give the built environment its name and kernel; a line saying what it holds."""
    _name(name, key)
    env = get(name)
    write_kernelspec(env)
    keys = ", ".join(f"{p} {env.version(p)}" for p in KEY_PACKAGES if env.version(p))
    return f"{env.meta['build_seconds']:.1f}s: python {env.meta['python']}, {keys}"


def _probe_image(name: str, sif: Path) -> dict:
    argv = apptainer.exec_argv(str(sif), ("python", "-c", PROBE), binds=(), gpus=False)
    try:
        return json.loads(run(list(argv), timeout=300).stdout.strip().splitlines()[-1])
    except CommandError as e:
        raise AfboxError(f"environment {name!r}: the image has no python with dask and distributed",
                         details=e.details, hint="a named cluster needs `python` on the image's PATH with "
                                                 "dask and distributed installed") from None
    except (ValueError, IndexError):
        raise AfboxError(f"environment {name!r}: the image's python printed no package list") from None


def _run_step(name: str, step: Step, added: list[str] = ()) -> str:
    try:
        return run(list(step.argv), timeout=step.timeout, env=_uv_env(), input=step.input).stdout
    except CommandError as e:
        lines = [ln for ln in (e.stderr or e.stdout).strip().splitlines() if ln.strip()][-30:]
        if step.resolves and e.code is not None:
            hint = "change the pins the resolver names above" + (
                f" (afbox added {', '.join(added)}; pin compatible versions of those yourself if they conflict)"
                if added else "")
            raise AfboxError(f"environment {name!r}: the requirements cannot be satisfied", details=lines,
                             hint=hint) from None
        raise AfboxError(f"environment {name!r}: {step.label} failed ({e.message})", details=lines) from None


def _complete_lock_env(name: str, prefix: Path) -> Iterator[ev.Event]:
    """Add to a conda/pixi environment what it lacks, with uv into its own python."""
    names = "import importlib.metadata as m; print(' '.join(d.metadata['Name'] or '' for d in m.distributions()))"
    out = run([str(prefix / "bin" / "python"), "-c", names], timeout=120).stdout
    have = {canonicalize_name(n) for n in out.split()}
    missing = [n for n in NEEDED if n not in have]
    if missing:
        yield ev.Event(ev.INFO, "", "afbox adds what the cluster and kernel need: " + ", ".join(missing))
        _run_step(name, Step("installing afbox's additions", (require("uv"), "pip", "install", "--no-config",
                                                              "--quiet", "--python", str(prefix / "bin" / "python"),
                                                              *missing), 1800, resolves=True), missing)


def link_afbox(prefix: Path | None) -> None:
    """`import afbox` in the environment: its top level (afbox.client) needs only the standard library
    and distributed, so a notebook in the environment's kernel finds its cluster by name without
    afbox's own dependencies (or their versions) entering the user's stack. An image's python finds
    it through PYTHONPATH (its kernelspec) instead of a .pth file (prefix None)."""
    lib = pylib()
    lib.mkdir(parents=True, exist_ok=True)
    link, target = lib / "afbox", Path(__file__).resolve().parent
    if not link.is_symlink() or link.resolve() != target:
        tmp = lib / f".afbox-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target)
        tmp.replace(link)
    for site in prefix.glob("lib/python3*/site-packages") if prefix else ():
        (site / "afbox-client.pth").write_text(f"{lib}\n")


def _existing_name(name: str) -> str | None:
    try:
        return json.loads(_name_file(name).read_text())["digest"]
    except (OSError, ValueError, KeyError):
        return None


def _name(name: str, key: str) -> None:
    path = _name_file(name)
    if _existing_name(name) == key:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"name": name, "digest": key, "created": time.time()}))
    tmp.replace(path)


def write_kernelspec(env: Env, kernels: Path | None = None, extra_env: dict[str, str] | None = None,
                     binds: tuple[str, ...] = ()) -> Path | None:
    """binds: what an image's kernel sees of the host besides client_binds() (a facility's dirs)."""
    d = (kernels or jupyter_dir() / "kernels") / kernel_name(env.name)
    if env.image and "ipykernel" not in env.meta.get("packages", {}):
        return None  # said at create time: the image cannot run a kernel
    d.mkdir(parents=True, exist_ok=True)
    spec = kernelspec(env, extra_env, tuple(dict.fromkeys((*client_binds(), *binds))) if env.image else ())
    # it may carry a scheduler address; no secrets, but no reason for others to read it either
    write_private(d / "kernel.json", json.dumps(spec, indent=1))
    return d


def users(env: Env) -> list[str]:
    """What runs from this environment now: named clusters of any facility, kernels, other processes."""
    import psutil

    from .state import FacilityState, known_facilities

    out = []
    for fac in known_facilities():
        for cname, c in ((FacilityState(fac).read() or {}).get("clusters") or {}).items():
            if c.get("digest") == env.digest:
                out.append(f"cluster {cname!r} of facility {fac!r} (stop it: afbox cluster down {cname} --name {fac})")
    prefixes = tuple({str(env.dir) + os.sep, str(env.dir.resolve()) + os.sep})
    image = str(env.image) if env.image else None
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = p.info["cmdline"] or []
        kernel = "ipykernel_launcher" in cmd
        if any(a.startswith(prefixes) for a in cmd[:2]) or (image and image in cmd) or (
                image and kernel and _kernel_of(p, env.name)):
            out.append(f"{'Jupyter kernel' if kernel else 'process'} pid {p.info['pid']}")
    return out


def _kernel_of(proc, name: str) -> bool:
    """A kernel started from this environment's kernelspec (inside a container its argv names no path
    of the environment; its environment variables still say)."""
    import psutil
    try:
        return proc.environ().get("AFBOX_ENV") == name
    except psutil.Error:  # gone meanwhile, or not ours to read
        return False


def remove(name: str) -> Iterator[ev.Event]:
    env = get(name)
    sharing = [e.name for e in all_envs() if e.digest == env.digest and e.name != name]
    if not sharing:
        busy = users(env)
        if busy:
            raise AfboxError(f"environment {name!r} is in use", details=busy,
                             hint="stop those first; the environment stays until nothing uses it")
    shutil.rmtree(jupyter_dir() / "kernels" / kernel_name(name), ignore_errors=True)
    _name_file(name).unlink(missing_ok=True)
    if sharing:
        yield ev.Event(ev.INFO, "", f"removed the name {name!r}; its files stay for {', '.join(sharing)}")
        return
    # renamed first, so a half-deleted tree is never taken for an environment
    trash = envs_root() / f".rm-{env.digest}-{os.getpid()}"
    env.dir.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)
    yield ev.Event(ev.INFO, "", f"removed environment {name!r} ({env.digest})")
