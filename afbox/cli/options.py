"""Options shared by several commands, and the value types that refuse bad input with a clear line."""
from __future__ import annotations

import click

from ..state import NAME_RULE, name_problem
from ..units import parse_duration


class FacilityName(click.ParamType):
    name = "name"

    def convert(self, value, param, ctx):
        if problem := name_problem(value):
            self.fail(problem)
        return value


class Duration(click.ParamType):
    """30m, 8h, 2d or plain seconds -> seconds (float), positive."""
    name = "duration"

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)):
            return float(value)
        try:
            seconds = parse_duration(str(value).strip())
        except ValueError:
            self.fail(f"{value!r} is not a duration (e.g. 30m, 8h, 2d)")
        if not seconds > 0:
            self.fail(f"{value!r}: a duration must be longer than 0")
        return seconds


class GivenPath(click.Path):
    """click.Path that also refuses an empty or blank value (which would mean the current directory)."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not value.strip():
            self.fail("an empty path")
        if isinstance(value, str) and "\0" in value:
            self.fail("a path with a NUL byte")
        return super().convert(value, param, ctx)


FACILITY_NAME = FacilityName()
PATH_FILE = GivenPath(dir_okay=False)
PATH_DIR = GivenPath(file_okay=False)
DURATION = Duration()

name_option = click.option("--name", "-n", default=None, type=FACILITY_NAME,
                           help="Facility name (default: $AFBOX_FACILITY, else the one running, else 'default'). "
                                + NAME_RULE)
