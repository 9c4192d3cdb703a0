"""The line of a failing service's log that says why it failed (pure).

A supervised program is started several times before it is given up, each start appending the same
output to its log; a failed start ends in summary lines (xrootd: `------ xrootd ... initialization
failed.`) while the cause is a few lines up (`available data space is less than 10 MB`), after
warnings that do not stop it (`Unable to create home directory`); a Python program ends with a
traceback whose last line is the cause. first_error() reads the last start only and finds that line.
Pure, but for last_lines(), which reads a log's end.
"""
from __future__ import annotations

import re

ERROR = re.compile(
    r"\b(error|errno|unable|cannot|can't|could not|couldn't|failed|failure|refused|denied|not found|no such|"
    r"invalid|not permitted|permission|in use|fatal|exception|less than|insufficient|no space|too small|"
    r"not allowed|unknown)\b", re.IGNORECASE)
# lines that report that something failed because of an earlier line, not why
SUMMARY = re.compile(r"initialization failed|could not be loaded|unable to load base file system", re.IGNORECASE)
NOISE = re.compile(r"^(={3,}>|-{3,} |\+{3,} )")  # xrootd's echo of its config, its banners
STARTED = re.compile(r"^\+{3,} .*\bstarted\b", re.IGNORECASE)
ENDED = re.compile(r"^-{3,} .*\b(completed|failed)\b", re.IGNORECASE)
XROOTD_PREFIX = re.compile(r"^\d{6} \d\d:\d\d:\d\d \d+ (\S+?:\s+)?")
PY_EXCEPTION = re.compile(r"^(\w+\.)*\w*(Error|Exception|Exit|Interrupt)\b.*")
DIGITS = re.compile(r"\d+")


def last_start(lines: list[str]) -> list[str]:
    """The lines of the program's last start: from the last line that repeats its first output line
    (timestamps and pids aside); all of them when it was started once."""
    first = next((DIGITS.sub("#", x.strip()) for x in lines if x.strip()), None)
    if first is None:
        return []
    starts = [i for i, x in enumerate(lines) if DIGITS.sub("#", x.strip()) == first]
    return lines[starts[-1]:]


def first_error(lines: list[str]) -> str | None:
    """The cause of a failure among a log's last lines, or None when no line says one: the exception
    of a Python traceback; else the first error reported inside the part of the start that failed
    (xrootd brackets each part in `++++++ X started` / `------ X completed|failed` lines, and a
    part that completed did not cause the failure); else the first error line."""
    run = last_start(lines)
    if cause := _traceback_cause(run):
        return cause
    sections: list[list[str]] = [[]]   # errors seen in each part still open, outermost first
    first: str | None = None
    for line in run:
        text = line.strip()
        if STARTED.match(text):
            sections.append([])
        elif ENDED.match(text):
            failed = sections.pop() if len(sections) > 1 else []
            if failed and "failed" in text.lower():
                return failed[0]
        elif SUMMARY.search(text):
            if found := next((errs[0] for errs in reversed(sections) if errs), None):
                return found
        elif text and not NOISE.match(text) and (ERROR.search(text) or PY_EXCEPTION.match(text)):
            message = XROOTD_PREFIX.sub("", text)
            sections[-1].append(message)
            first = first or message
    return first


def _traceback_cause(lines: list[str]) -> str | None:
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
    if not starts:
        return None
    for line in lines[starts[-1] + 1:]:
        if line and not line[0].isspace() and PY_EXCEPTION.match(line):
            return line.strip()
    return None


def explain(reason: str, lines: list[str], exited: bool = False) -> str:
    """reason, with the cause from the log after a colon when the log has one; for a program that
    exited, its last words when no line reads as an error."""
    cause = first_error(lines) or (last_words(lines) if exited else None)
    return f"{reason}: {cause}" if cause else reason


def last_words(lines: list[str]) -> str | None:
    return next((x.strip() for x in reversed(last_start(lines)) if x.strip()), None)


def last_lines(path, n: int = 400) -> list[str]:
    """The last n lines of a log (without reading all of a 20 MB one); [] when it cannot be read."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 300 * n))
            return f.read().decode(errors="replace").splitlines()[-n:]
    except OSError:
        return []
