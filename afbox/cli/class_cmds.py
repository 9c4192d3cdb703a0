"""afbox class sheet / status / reset / add / purge: the tutor's commands for a class (afbox.hub)."""
from __future__ import annotations

import ipaddress
import json
import time
from pathlib import Path

import click
import psutil

from ..errors import AfboxError
from .options import name_option


def listen_address(value: str) -> str:
    """An IP address as given, or the IPv4 address of the network interface of that name."""
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    addrs = psutil.net_if_addrs()
    if value not in addrs:
        raise AfboxError(f"--listen {value}: neither an IP address nor a network interface",
                         hint="interfaces here: " + ", ".join(sorted(addrs)))
    v4 = [a.address for a in addrs[value] if a.family.name == "AF_INET"]
    if not v4:
        raise AfboxError(f"--listen {value}: the interface has no IPv4 address")
    return v4[0]


def class_overrides(students: int | None, roster: str | None, listen: str | None) -> dict:
    over: dict = {"enabled": True}
    if students:
        over["students"] = students
    if roster:
        from ..hub.roster import read_roster
        read_roster(roster)  # a bad roster is named before anything starts
        over["roster"] = roster
    if listen:
        over["listen"] = listen_address(listen)
    return over


def _name(name: str | None) -> str:
    from ..state import resolve_name
    return resolve_name(name)


@click.group("class")
def class_group():
    """A class on this facility (afbox up --profile masterclass): sheet, status, accounts."""


@class_group.command("sheet")
@name_option
@click.option("-o", "--output", default="class-sheet.html", show_default=True, type=click.Path(dir_okay=False),
              help="HTML file to write (it holds live codes: written 0600).")
@click.option("--tutors", is_flag=True, help="Cards for the tutors too.")
def sheet(name, output, tutors):
    """A printable sheet: per student the login address, one-time code and a QR code."""
    from ..hub import roster, sheet as sheetmod
    from ..hub.status import class_record, hub_url, locate
    from ..state import FacilityState, write_private
    name = _name(name)
    rec = class_record(name)
    if rec.backend == "k3s":  # the accounts are in the hub's pod: the sheet is made there
        from ..backends import get
        from ..services import hub as hub_service
        text = get("k3s", FacilityState(name)).run_module(hub_service.NAME, "afbox.hub.sheet",
                                                          str(hub_service.pod_paths().config), hub_url(rec),
                                                          *(["--tutors"] if tutors else []))
        write_private(Path(output), text)
        click.echo(f"wrote {output} (made in the hub's pod); hub {hub_url(rec)}")
        return
    settings, paths, hub = locate(name)
    accts = roster.load(paths.accounts)
    write_private(Path(output), sheetmod.render(accts, hub, f"{settings['facility']}: class sheet", tutors))
    pending = sum(1 for a in accts.students() if a.code)
    click.echo(f"wrote {output}: {len(accts.students())} students, {pending} with a code not used yet; hub {hub}")


@class_group.command("status")
@name_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable.")
def status(name, as_json):
    """Who is logged in, their server, kernels, Dask and memory."""
    from ..hub.status import class_status, idle_for
    from ..units import human_bytes
    st = class_status(_name(name))
    if as_json:
        click.echo(json.dumps(st.to_dict(), indent=2, sort_keys=True))
        return
    click.echo(f"hub {st.hub}   isolation {st.isolation}   limits {st.limits}   "
               f"free memory {human_bytes(st.free_memory)} (servers start above {human_bytes(st.admit_free)})")
    if st.error:
        click.echo(f"warning: {st.error}")
    click.echo(f"{'name':<14}{'role':<9}{'password':<10}{'server':<10}{'idle':>8}{'kernels':>9}{'dask':>6}"
               f"{'memory':>12}{'oom':>5}")
    for s in st.students:
        idle = idle_for(s)
        click.echo(f"{s.name:<14}{s.role:<9}{('set' if s.logged_in else 'code'):<10}{s.server:<10}"
                   f"{(f'{idle / 60:.0f}m' if idle is not None else '-'):>8}{s.kernels:>9}{s.dask:>6}"
                   f"{human_bytes(s.memory) if s.memory else '-':>12}{s.oom_kills or '':>5}")


def _hub_api(name: str, method: str, path: str) -> None:
    import httpx
    from ..hub.status import locate
    settings, paths, _ = locate(name)
    token = paths.api_token.read_text().strip()
    try:
        httpx.request(method, f"http://127.0.0.1:{settings['hub_port']}/hub/api{path}", timeout=60,
                      headers={"Authorization": f"token {token}"})
    except httpx.HTTPError as e:
        raise AfboxError(f"the hub did not answer: {e}") from None


@class_group.command("reset")
@click.argument("student")
@name_option
def reset(student, name):
    """A new one-time code for STUDENT (forgotten password); their server stops, their home stays."""
    from ..hub import roster, sheet as sheetmod
    from ..hub.status import locate
    fac = _name(name)
    _, paths, hub = locate(fac)
    code = roster.reset(paths.accounts, student)
    _hub_api(fac, "DELETE", f"/users/{student}/server")
    click.echo(f"{student}: new one-time code {code}\n  {sheetmod.login_link(hub, student, code)}")


@class_group.command("add")
@click.argument("student")
@click.option("--display-name", default="", help="Shown on the class sheet.")
@click.option("--tutor", is_flag=True, help="An admin of the hub rather than a student.")
@name_option
def add(student, display_name, tutor, name):
    """A new account during the class; prints its one-time code."""
    from ..hub import roster, sheet as sheetmod
    from ..hub.status import locate
    _, paths, hub = locate(_name(name))
    code = roster.add(paths.accounts, student, display_name, "tutor" if tutor else "student")
    click.echo(f"{student}: one-time code {code}\n  {sheetmod.login_link(hub, student, code)}")


@class_group.command("purge")
@name_option
@click.option("--yes", is_flag=True, help="Do not ask.")
def purge(name, yes):
    """Delete the class: every student's home, account and unix user (the facility must be down)."""
    from ..hub.purge import plan, purge as do_purge
    fac = _name(name)
    what = plan(fac)
    if not yes:
        click.echo("\n".join(f"  {line}" for line in what.lines()))
        click.confirm(f"delete all of this for class {fac!r}? Student work in the homes is lost", abort=True)
    for line in do_purge(what):
        click.echo(line)


@click.group("data")
def data_group():
    """Data for the facility's XCache."""


@data_group.command("warm")
@click.argument("url")
@click.option("--files", "pattern", default="*", show_default=True, help="Only files matching this glob.")
@name_option
def warm(url, pattern, name):
    """Read URL (root://origin//dir/ or a /dir/ of the facility's origin) through the XCache, so a class
    finds its data cached."""
    from ..hub.warm import warm as do_warm
    from ..units import human_bytes
    t0 = time.monotonic()
    n, size = 0, 0
    for path, nbytes in do_warm(_name(name), url, pattern):
        n, size = n + 1, size + nbytes
        click.echo(f"  {path}  {human_bytes(nbytes)}")
    click.echo(f"warmed {n} files ({human_bytes(size)}) in {time.monotonic() - t0:.1f}s")


COMMANDS = [class_group, data_group]
