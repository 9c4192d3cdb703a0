"""Every command of the whole `afbox` command tree, fed bad values for each of its options and
arguments: every answer is an `error:` line with a `hint:` (or a plain success), never a traceback
and never afbox's own crash report.

The tree is walked from afbox.cli.main, so commands added later are fed too. Runs in-process with
no facility running, XDG dirs in a temp dir, and no program actually run: afbox's one subprocess
chokepoint answers every program with a failure, as a host where each is missing or broken would.
"""
from __future__ import annotations

import os
import subprocess
import types
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from afbox.cli import failure, main

LONG = "x" * 300                       # longer than a file name may be
VERY_LONG = "/tmp/" + "y/" * 2100      # longer than a path may be


def bad_values(files: dict[str, Path]) -> dict[str, str]:
    return {"negative": "-1", "zero": "0", "huge": "99999999999999999999999", "infinite": "inf", "nan": "nan",
            "non-numeric": "banana", "empty": "", "blank": "  ", "long": LONG, "very long path": VERY_LONG,
            "missing path": "/nonexistent/afbox-test/missing", "unreadable file": str(files["unreadable"]),
            "directory": str(files["dir"]), "garbage file": str(files["garbage"])}


def walk(group: click.Group, path: tuple[str, ...] = ()):
    """Every command under group, hidden ones included, with its path of names."""
    for name in sorted(group.commands):
        cmd = group.commands[name]
        yield (*path, name), cmd
        if isinstance(cmd, click.Group):
            yield from walk(cmd, (*path, name))


def plausible(param: click.Parameter, files: dict[str, Path]) -> list[str]:
    """A value that passes Click's own checks, for the required parameters not under test."""
    t = param.type
    if isinstance(t, click.Choice):
        return [str(t.choices[0])]
    if isinstance(t, (click.types.IntParamType, click.types.FloatParamType, click.IntRange, click.FloatRange)):
        return ["1"]
    if isinstance(t, click.Path):
        return [str(files["dir"] if not t.file_okay else files["good"])]
    if param.name == "server":
        return ["https://k3s.invalid:6443"]
    return ["x"]


def argv_for(path, cmd: click.Command, param: click.Parameter, value: str, files) -> list[str]:
    opts: list[str] = []
    args: list[str] = []
    for p in cmd.params:
        if p is param:
            chosen = [value]
        elif p.required:
            chosen = plausible(p, files)
        else:
            continue
        if isinstance(p, click.Option):
            opts += [p.opts[0], chosen[0]]
        else:
            args += chosen
    return [*path, *opts, "--", *args] if args else [*path, *opts]


def cases():
    """(command path, parameter) for every option that takes a value and every argument."""
    out = []
    for path, cmd in walk(main):
        for p in cmd.params:
            if isinstance(p, click.Option) and (p.is_flag or p.count or p.hidden):
                continue
            out.append(pytest.param(path, p.name, id=f"{' '.join(path)} {p.opts[0] if p.opts else p.name}"))
    return out


class NoProgram:
    """What afbox.run's subprocess module becomes: every program 'runs' and fails."""
    TimeoutExpired = subprocess.TimeoutExpired
    DEVNULL = subprocess.DEVNULL

    @staticmethod
    def run(argv, **kw):
        return subprocess.CompletedProcess(argv, 1, "", f"{os.path.basename(argv[0])}: not run by this test")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-bad-input")
    files = {"dir": root / "a-directory", "garbage": root / "garbage.bin", "unreadable": root / "unreadable.txt",
             "good": root / "plain.txt"}
    files["dir"].mkdir()
    files["garbage"].write_bytes(b"\x00\xff{ not json, not toml [\n\x89PNG")
    files["unreadable"].write_text("secret\n")
    files["unreadable"].chmod(0)
    files["good"].write_text("plain text\n")
    return root, files


@pytest.fixture(autouse=True)
def isolated(sandbox, monkeypatch):
    root, _ = sandbox
    (root / "cwd").mkdir(exist_ok=True)
    monkeypatch.chdir(root / "cwd")  # relative paths among the values land here
    for var in ("XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR"):
        monkeypatch.setenv(var, str(root / var.lower()))
    for var in ("AFBOX_FACILITY", "AFBOX_SCHEDULER", "SLURM_JOB_ID", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr("afbox.run.subprocess", NoProgram)
    # the console would take the terminal: the test only needs to know that it would have opened
    monkeypatch.setitem(__import__("sys").modules, "tui.app", types.SimpleNamespace(run=lambda **kw: None))


@pytest.mark.parametrize("path,pname", cases())
def test_bad_values_get_an_error_line_with_a_hint(path, pname, sandbox):
    _, files = sandbox
    cmd = main
    for name in path:
        cmd = cmd.commands[name]
    param = next(p for p in cmd.params if p.name == pname)
    runner = CliRunner()
    problems = []
    for what, value in bad_values(files).items():
        argv = argv_for(path, cmd, param, value, files)
        r = runner.invoke(main, argv, input="")
        out = r.stdout + r.stderr
        if r.exit_code == 0 and not isinstance(r.exception, (SystemExit, type(None))):
            problems.append(f"{what}: raised {r.exception!r}")
        elif r.exit_code == failure.BUG or "Traceback" in out:
            problems.append(f"{what}: {out.strip().splitlines()[0] if out.strip() else r.exception!r}")
        elif r.exit_code != 0:
            lines = r.stderr.splitlines()
            first = next((i for i, ln in enumerate(lines) if ln.startswith("error: ")), None)
            if first is None or not any(ln.startswith("hint: ") for ln in lines[first:]):
                problems.append(f"{what}: exit {r.exit_code} without an error line and a hint: {r.stderr[:300]!r}")
    assert not problems, f"afbox {' '.join(path)} --{pname}:\n  " + "\n  ".join(problems)


def test_the_walk_found_the_whole_tree():
    """The walk reaches nested groups and hidden commands (so later additions are fed too)."""
    names = {" ".join(p) for p, _ in walk(main)}
    assert {"up", "cache purge", "k3s token", "env create", "cluster up", "token rotate-key", "slurm-job"} <= names
    per_parameter = len(bad_values({"unreadable": "", "dir": "", "garbage": ""}))
    print(f"\n{len(names)} commands, {len(cases())} parameters, {len(cases()) * per_parameter} invocations")
