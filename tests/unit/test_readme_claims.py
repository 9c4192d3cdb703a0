"""The README read as a newcomer reads it: its TOML loads, its command lines parse, its lists (profiles,
the status --json keys, the URLs) are what afbox has."""
from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import click
import pytest

from afbox import facility, lifecycle, services
from afbox.cli import main
from afbox.errors import ConfigError
from afbox.lifecycle.status import ServiceRow, Status

README = Path(__file__).resolve().parent.parent.parent / "README.md"
TEXT = README.read_text()


def blocks(lang: str | None = None) -> list[str]:
    """Fenced code blocks of the README (of one language; None: the unlabelled ones)."""
    return [body for tag, body in re.findall(r"^```(\w*)\n(.*?)^```", TEXT, re.S | re.M)
            if (tag or None) == lang]


def command_lines() -> list[str]:
    """Every `afbox ...` in the README's shell blocks, comments cut, `[optional]` brackets opened."""
    out = []
    for body in blocks():
        for line in body.splitlines():
            for part in re.split(r"&&|;", line.split("  #", 1)[0]):
                part = part.strip()
                if part.startswith("afbox"):
                    out.append(part.replace("[", "").replace("]", ""))
    return out


def test_every_toml_block_of_the_readme_loads_as_a_facility_file(tmp_path):
    tomls = blocks("toml")
    assert tomls, "the README's facility file example is a ```toml block"
    for i, body in enumerate(tomls):
        f = tmp_path / f"readme-{i}.toml"
        f.write_text(body)
        fac = facility.load("laptop", f)  # unknown keys and bad values raise ConfigError with file:line
        assert fac.facility.name == "default"


def test_the_readme_facility_file_shows_the_defaults():
    data = tomllib.loads(blocks("toml")[0])
    defaults = facility.Facility().model_dump()
    shown = {(s, k): v for s, keys in data.items() for k, v in keys.items()}
    assert ("dask", "gpus") in shown and ("jupyter", "gpus") not in shown
    wrong = {f"{s}.{k}": (v, defaults[s][k]) for (s, k), v in shown.items() if defaults[s][k] != v}
    assert not wrong, f"README value vs afbox's default: {wrong}"


def test_the_readme_error_example_is_the_format_afbox_writes(tmp_path):
    example = re.search(r"Errors name the file and line: `([^`]+)`", TEXT).group(1)
    f = tmp_path / "afbox.toml"
    f.write_text("[facility]\nname = \"x\"\n\n[xcache]\nsize = \"1GiB\"\n\n[dask]\nworkers = \"four\"\n")
    with pytest.raises(ConfigError) as e:
        facility.load("laptop", f)
    assert e.value.message == f"{f}:8: dask.workers: Input should be a valid integer, unable to parse string as an integer"
    assert re.fullmatch(r"afbox\.toml:\d+: dask\.workers: Input should be a valid integer", example)


def test_every_command_line_of_the_readme_parses(tmp_path, monkeypatch):
    """Each `afbox ...` line names real commands and options with values they take (parsed, not run)."""
    monkeypatch.chdir(tmp_path)
    lines = command_lines()
    assert len(lines) > 30
    for line in lines:
        args = shlex.split(line)[1:]
        cmd, path = main, ["afbox"]
        while isinstance(cmd, click.Group) and args and args[0] in cmd.commands:
            path.append(args[0])
            cmd = cmd.commands[args.pop(0)]
        assert not (isinstance(cmd, click.Group) and args and not args[0].startswith("-")), \
            f"{line}: no command {args[0]!r} in {' '.join(path)}"
        try:
            cmd.make_context(" ".join(path), list(args), resilient_parsing=False)
        except click.BadParameter as e:  # a path the README names as an example need not exist here
            assert isinstance(e.param.type, click.Path) and "does not exist" in e.format_message(), line
        except click.exceptions.Exit:
            pass  # --help, --version


def test_the_profile_list_is_the_bundles():
    listed = re.search(r"Profiles live in `bundles/`: (.*?)\. Your own file", TEXT, re.S).group(1)
    assert set(re.findall(r"`([\w-]+)`", listed)) == set(facility.profiles())


def test_the_console_is_in_the_readme():
    assert re.search(r"^afbox\s+# the console \(also: afbox tui\)", TEXT, re.M)
    assert main.invoke_without_command and "tui" in main.commands


def _contract() -> str:
    return re.search(r"## `afbox status --json`\n\n```\n(.*?)```", TEXT, re.S).group(1)


def test_status_json_keys_are_the_documented_ones():
    contract = _contract()
    top = set(re.findall(r'^\s*[{ ]\s*"(\w+)":|,\s*"(\w+)":', contract, re.M))
    top = {a or b for a, b in top}
    documented = {k for k in top if k in Status.model_fields}
    assert documented == set(Status.model_fields), "every key of status --json is in the README, and no other"
    row = re.search(r'"services": \[ \{(.*?)\} \]', contract, re.S).group(1)
    assert set(re.findall(r'"(\w+)":', row)) == set(ServiceRow.model_fields) - {"primary"}


def test_status_json_urls_are_the_documented_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    documented = set(re.findall(r'"(\w+)"', re.search(r'"urls": \{(.*?)\}', _contract()).group(1)))
    fac = facility.load("ci", None, {"xcache": {"xrootd": "/bin/true"}})  # every service available
    linked = {key for s in services.render(lifecycle.context(fac)) for key, _ in s.links}
    assert linked == documented
