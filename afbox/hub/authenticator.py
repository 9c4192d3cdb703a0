"""The hub's login: accounts from the class roster, one-time codes that set the password on the first
login, then passwords; failed logins throttled per account and per address (HTTP 429).

A successful login is all a student does: the spawner then writes their facility token (sub = their
name), which JupyterLab, the Dask gateway and the XCache accept.
"""
from __future__ import annotations

import asyncio
import hashlib
import time
from collections import defaultdict, deque
from pathlib import Path

from jupyterhub.auth import Authenticator
from tornado import web
from traitlets import Float, Integer, Unicode

from . import roster


class Throttle:
    """At most `limit` failures per key within `window` seconds; past that, refuse until the oldest
    one leaves the window."""

    def __init__(self, limit: int, window: float):
        self.limit, self.window = limit, window
        self._fails: dict[str, deque[float]] = defaultdict(deque)

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._fails[key]
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def wait(self, key: str, now: float | None = None) -> float:
        """Seconds until key may try again; 0 when it may now."""
        now = time.monotonic() if now is None else now
        q = self._recent(key, now)
        return 0.0 if len(q) < self.limit else q[0] + self.window - now

    def failed(self, key: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._recent(key, now).append(now)


class RosterAuthenticator(Authenticator):
    accounts_file = Unicode(config=True, help="the class accounts (afbox.hub.roster)")
    max_failures = Integer(5, config=True, help="failed logins per account within failure_window")
    max_failures_per_address = Integer(60, config=True, help="failed logins per client address within failure_window")
    failure_window = Float(300, config=True, help="seconds")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.by_name = Throttle(self.max_failures, self.failure_window)
        self.by_address = Throttle(self.max_failures_per_address, self.failure_window)

    def check_allowed(self, username, authentication=None):
        return username in roster.load(Path(self.accounts_file)).accounts

    def _account_key(self, name: str) -> str:
        """The account as it stands: a tutor's `afbox class reset` (a new code) lifts its throttle."""
        acct = roster.load(Path(self.accounts_file)).accounts.get(name)
        secret = (acct.code or acct.password or "") if acct else ""
        return f"{name}:{hashlib.sha256(secret.encode()).hexdigest()[:16]}"

    async def authenticate(self, handler, data):
        name = (data.get("username") or "").strip().lower()
        address = handler.request.remote_ip if handler else ""
        key = self._account_key(name)
        wait = max(self.by_name.wait(key), self.by_address.wait(address))
        if wait > 0:
            self.log.warning("login of %r from %s refused: too many failed logins", name[:32], address)
            raise web.HTTPError(429, f"too many failed logins: try again in {int(wait) + 1} s")
        ok, why = await asyncio.get_running_loop().run_in_executor(
            None, roster.login, Path(self.accounts_file), name, data.get("password") or "",
            data.get("new_password") or "")
        if not ok and why.startswith(roster.FIRST_LOGIN):
            raise web.HTTPError(400, why)  # the right code: say what is missing, count no failure
        if not ok:
            self.by_name.failed(key)
            self.by_address.failed(address)
            self.log.warning("failed login of %r from %s: %s", name[:32], address, why)
            return None
        accts = roster.load(Path(self.accounts_file))
        return {"name": name, "admin": accts.accounts[name].role == "tutor"}

    def get_custom_html(self, base_url):
        return ""
