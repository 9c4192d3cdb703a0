"""Building an environment: uv for requirements, pixi or conda for lock files, apptainer for images;
in a temporary dir renamed into place only once it works."""
from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from packaging.utils import canonicalize_name

from .. import events as ev
from ..bundle import runtime as bundle_runtime
from ..errors import AfboxError, CommandError
from ..run import require, run, which
from ..runtimes import apptainer
from .kernels import link_afbox, write_kernelspec
from .paths import envs_root
from .source import NEEDED, NEEDED_FOR, Source, additions, digest, request_source
from .store import KEY_PACKAGES, MARKER, _existing_name, _name, check_name, get, tree_size

# prints what a built environment holds; also proves that the cluster parts import
PROBE = ("import importlib.metadata as m, json, platform, dask, distributed;"
         "print(json.dumps({'python': platform.python_version(),"
         " 'packages': {m_.metadata['Name'].lower(): m_.version for m_ in m.distributions() if m_.metadata['Name']}}))")




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


def _lock_tool(kind: str) -> str:
    if kind == "pixi":
        return require("pixi")
    for tool in ("micromamba", "mamba", "conda"):
        if which(tool):
            return which(tool)
    return require("conda")


def _uv_env() -> dict[str, str]:
    # no prompts, no colour codes in the error text shown to the user; from a bundle: its wheels
    return {"UV_NO_PROGRESS": "1", "NO_COLOR": "1", **bundle_runtime.uv_env()}


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
    source, reqs = request_source(requirements, packages, lock)
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
                                        + ", ".join(dict.fromkeys(NEEDED_FOR[n] for n in lacks)))
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
