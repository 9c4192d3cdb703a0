"""The class login's throttle: five failures lock an account out (even with the right secret), other
accounts are unaffected, and a tutor's `afbox class reset` lifts it with the new code."""
from __future__ import annotations

import asyncio
import types

import pytest
from tornado import web

from afbox.hub import roster
from afbox.hub.authenticator import RosterAuthenticator

PASSWORD = "a-good-password"


def login(auth, name, secret, new_password=""):
    handler = types.SimpleNamespace(request=types.SimpleNamespace(remote_ip="10.0.0.7"))
    return asyncio.run(auth.authenticate(handler, {"username": name, "password": secret,
                                                   "new_password": new_password}))


def test_guessing_locks_the_account_until_a_reset(tmp_path):
    accounts = tmp_path / "accounts.json"
    code = roster.add(accounts, "alice")
    other = roster.add(accounts, "bob")
    auth = RosterAuthenticator(accounts_file=str(accounts))
    assert login(auth, "alice", code, PASSWORD)["name"] == "alice"
    for _ in range(5):
        assert login(auth, "alice", "WRONG-CODE-0000") is None
    with pytest.raises(web.HTTPError) as locked:
        login(auth, "alice", PASSWORD)
    assert locked.value.status_code == 429
    assert login(auth, "bob", other, PASSWORD)["name"] == "bob"   # another account logs in
    new = roster.reset(accounts, "alice")
    assert login(auth, "alice", new, "a-new-password")["name"] == "alice"
