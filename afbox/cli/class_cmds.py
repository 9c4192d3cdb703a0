"""afbox class sheet / status / reset / add / purge: the tutor's commands for a class (afbox.hub)."""
from __future__ import annotations

import ipaddress

import click
import psutil

from ..errors import AfboxError


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
        over["roster"] = roster
    if listen:
        over["listen"] = listen_address(listen)
    return over


COMMANDS: list = []
