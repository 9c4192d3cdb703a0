"""Errors afbox shows to people: each says what went wrong and what to do about it."""
from __future__ import annotations

from .logscan import explain


class AfboxError(Exception):
    """An error with a one-line message and an optional hint (the fix)."""

    def __init__(self, message: str, hint: str | None = None, details: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details or []

    def render(self) -> str:
        lines = [f"error: {self.message}"]
        lines += [f"  {d}" for d in self.details]
        if self.hint:
            lines.append(f"hint: {self.hint}")
        return "\n".join(lines)


class ConfigError(AfboxError):
    """A facility file or flag that does not validate; message is `file:line: what`."""


class CommandError(AfboxError):
    """An external command that failed or timed out."""

    def __init__(self, argv: list[str], code: int | None, stdout: str, stderr: str, timeout: float | None = None):
        what = f"timed out after {timeout:g}s" if timeout else f"exited with code {code}"
        tail = (stderr or stdout).strip().splitlines()[-20:]
        super().__init__(f"`{argv[0]}` {what}", details=tail)
        self.argv, self.code, self.stdout, self.stderr, self.timeout = argv, code, stdout, stderr, timeout


class MissingBinary(AfboxError):
    """A program afbox needs is not on PATH; says which package provides it."""


class ServiceFailed(AfboxError):
    """A service that did not become healthy; details hold the tail of its log, and the reason ends
    with the line of its log (log: more of it than the tail, when at hand) that says why."""

    def __init__(self, service: str, reason: str, log_tail: list[str], log_path: str | None = None,
                 log: list[str] | None = None, exited: bool = False):
        reason = explain(reason, log if log is not None else log_tail, exited)
        hint = f"full log: {log_path}" if log_path else None
        super().__init__(f"service {service} {reason}", hint=hint,
                         details=[f"--- last {len(log_tail)} lines of its log ---", *log_tail] if log_tail else [])
        self.service, self.reason, self.log_tail = service, reason, log_tail
