"""How a command that went wrong answers: one `error:` line, details, a `hint:` line, and an exit code.

Never a traceback: a bug (an exception afbox did not expect) is answered the same way, with exit code
70, and its traceback goes to a crash file (printed too with `afbox -v`).
"""
from __future__ import annotations

import errno
import os
import time
import traceback
from pathlib import Path

import click

from ..errors import AfboxError

BUG = 70  # EX_SOFTWARE: the tests tell afbox's own faults apart from the user's by it


def usage_error(e: click.UsageError) -> AfboxError:
    """Click's refusal of a flag or argument, in afbox's words."""
    msg = e.format_message().strip()
    msg = msg[:1].lower() + msg[1:]
    path = e.ctx.command_path if e.ctx else "afbox"
    return AfboxError(msg, hint=f"see `{path} --help`")


def os_error(e: OSError) -> AfboxError:
    """A file or directory afbox was pointed at that it cannot use."""
    what = e.strerror or str(e)
    where = e.filename if e.filename is not None else ""
    if isinstance(where, str) and len(where) > 120:
        where = where[:60] + "..." + where[-40:]
    msg = f"{where}: {what}" if where else what
    hint = {errno.ENAMETOOLONG: "use a shorter path",
            errno.EACCES: "check the permissions (ls -l), or choose another path",
            errno.EPERM: "check the permissions (ls -l), or choose another path",
            errno.ENOSPC: "free some disk space (afbox cache purge empties the XCache)",
            errno.EROFS: "choose a writable path"}.get(e.errno or 0, "check the path given")
    return AfboxError(msg, hint=hint)


def crash_report(e: BaseException, verbose: bool, command: str = "afbox") -> AfboxError:
    """An exception afbox did not expect: where its traceback went, and that it is afbox's fault.
    The file names the command, not its arguments (a token given to --inspect stays out of it)."""
    text = "".join(traceback.format_exception(e))
    where = "it could not be saved"
    try:
        path = crash_log()
        path.parent.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "a") as f:
            f.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {command}\n{text}\n")
        where = f"it is in {path}"
    except OSError:
        pass
    if verbose:
        click.echo(text, err=True, nl=False)
    detail = str(e).splitlines()[0][:200] if str(e) else ""
    return AfboxError(f"afbox failed unexpectedly: {type(e).__name__}" + (f": {detail}" if detail else ""),
                      hint=f"this is a bug in afbox; please report it with its traceback ({where})")


def answer(e: BaseException, verbose: bool = False, command: str = "afbox") -> int:
    """Print what went wrong (for `command`, e.g. "afbox cluster up"); the exit code."""
    code = 1
    if isinstance(e, KeyboardInterrupt):
        err, code = AfboxError("interrupted", hint="run it again to finish; `afbox status` shows what runs"), 130
    elif isinstance(e, (click.exceptions.Abort, EOFError)):
        err = AfboxError("aborted: the question was answered no (or not at all); nothing was changed",
                         hint="commands that ask first take --yes")
    elif isinstance(e, click.UsageError):
        err, code = usage_error(e), e.exit_code
    elif isinstance(e, click.ClickException):
        err = AfboxError(e.format_message(), hint="see `afbox --help`")
    elif isinstance(e, AfboxError):
        err = e
    elif isinstance(e, OSError) and e.errno == errno.EPIPE:
        return 1  # the reader went away (afbox status | head): nothing to say to it
    elif isinstance(e, OSError) and (e.filename is not None or e.errno in (errno.ENOSPC, errno.EROFS)):
        err = os_error(e)
    else:
        err, code = crash_report(e, verbose, command), BUG
    if not err.hint:
        err = AfboxError(err.message, hint=f"see `{command} --help`", details=err.details)
    try:
        click.echo(err.render(), err=True)
    except OSError:
        pass
    return code


def command_path(group: click.Group, args: list[str]) -> str:
    """The command args name ("afbox env create"), as far as it can be told from them."""
    names, cmd = ["afbox"], group
    for a in args:
        if not isinstance(cmd, click.Group):
            break
        if a in cmd.commands:
            names.append(a)
            cmd = cmd.commands[a]
        elif not a.startswith("-"):
            break
    return " ".join(names)


def crash_log() -> Path:
    from ..state import state_root
    return state_root() / "crash.log"
