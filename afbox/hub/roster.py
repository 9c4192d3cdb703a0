"""Class accounts: who may log in, their pending one-time code or their password hash.

A new account gets a one-time code; the first login with it sets the student's password and spends
the code, so no account ever waits with no password or a guessable one (FirstUseAuthenticator's
hole), and the tutor creates every account up front (NativeAuthenticator's). Codes stay readable
in the accounts file (0600, the facility's secrets) until used, for the class sheet.
"""
from __future__ import annotations

import csv
import fcntl
import hashlib
import hmac
import secrets
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Literal

from pydantic import BaseModel

from ..errors import AfboxError, ConfigError
from ..class_spec import USERNAME, MasterclassSection
from ..state import replace_private

CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read off paper
MIN_PASSWORD = 8
FIRST_LOGIN = "first login"
SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}


class Account(BaseModel):
    name: str
    display_name: str = ""
    role: Literal["student", "tutor"] = "student"
    code: str | None = None        # pending one-time code, until the first login
    password: str | None = None    # scrypt$n$r$p$salt$hash
    created: float = 0
    first_login: float | None = None


class Accounts(BaseModel):
    version: int = 1
    accounts: dict[str, Account] = {}

    def students(self) -> list[Account]:
        return [a for a in self.accounts.values() if a.role == "student"]


def new_code() -> str:
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(12))
    return "-".join(raw[i:i + 4] for i in range(0, 12, 4))


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **SCRYPT)
    return f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        mine = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(mine.hex(), digest)


def same_code(given: str, code: str) -> bool:
    """Codes compare without dashes, spaces or case, in constant time."""
    norm = lambda c: "".join(ch for ch in c.upper() if ch.isalnum())  # noqa: E731
    return hmac.compare_digest(norm(given).encode(), norm(code).encode())


def read_roster(path: str | Path) -> list[tuple[str, str]]:
    """(username, display name) per line of a CSV roster; `file:line: what` for a bad line."""
    path = Path(path).expanduser()
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the roster: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a roster: expected CSV text, username[,display_name] a line") from None
    if "\0" in text:
        raise ConfigError(f"{path}: not a roster: expected CSV text, username[,display_name] a line")
    out: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for n, row in enumerate(csv.reader(text.splitlines()), 1):
        if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
            continue
        name = row[0].strip()
        if n == 1 and name.lower() in ("username", "user", "name"):
            continue  # a header line
        if not USERNAME.match(name):
            raise ConfigError(f"{path}:{n}: username {name!r}: lowercase letters, digits, - and _, "
                              "starting with a letter, at most 20")
        if name in seen:
            raise ConfigError(f"{path}:{n}: username {name!r} is already on line {seen[name]}")
        seen[name] = n
        out.append((name, row[1].strip() if len(row) > 1 else ""))
    return out


def wanted(m: MasterclassSection) -> list[tuple[str, str, str]]:
    """(name, display name, role) of everyone the class spec names."""
    people = read_roster(m.roster) if m.roster else []
    width = max(2, len(str(m.students)))
    people += [(f"student{i:0{width}d}", "") for i in range(1, m.students + 1)]
    out = [(t, "", "tutor") for t in m.tutors]
    taken = set(m.tutors)
    out += [(n, d, "student") for n, d in people if n not in taken and not taken.add(n)]
    return out


@contextmanager
def locked(path: Path) -> Iterator[Accounts]:
    """The accounts file, read and written back under a lock (the hub and `afbox class` both write)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        accts = load(path)
        yield accts
        save(path, accts)


def load(path: Path) -> Accounts:
    try:
        return Accounts.model_validate_json(path.read_text())
    except FileNotFoundError:
        return Accounts()
    except ValueError as e:
        raise AfboxError(f"{path}: not an accounts file ({e.__class__.__name__})",
                         hint="it is written by afbox; restore it from a backup or remove it to start afresh") from None


def save(path: Path, accts: Accounts) -> None:
    replace_private(path, accts.model_dump_json(indent=1))


def sync(path: Path, people: list[tuple[str, str, str]]) -> list[str]:
    """Add accounts for people not yet known (each with a one-time code); never removes one.
    Returns the names added."""
    added = []
    with locked(path) as accts:
        for name, display, role in people:
            if name not in accts.accounts:
                accts.accounts[name] = Account(name=name, display_name=display, role=role, code=new_code(),
                                               created=time.time())
                added.append(name)
            elif accts.accounts[name].role != role:
                accts.accounts[name].role = role
    return added


def add(path: Path, name: str, display: str = "", role: str = "student") -> str:
    if not USERNAME.match(name):
        raise AfboxError(f"username {name!r}: lowercase letters, digits, - and _, starting with a letter, at most 20")
    with locked(path) as accts:
        if name in accts.accounts:
            raise AfboxError(f"{name!r} is already in the class", hint=f"a new code: afbox class reset {name}")
        accts.accounts[name] = Account(name=name, display_name=display, role=role, code=new_code(),
                                       created=time.time())
        return accts.accounts[name].code


def reset(path: Path, name: str) -> str:
    """A new one-time code; the password is forgotten (the home stays)."""
    with locked(path) as accts:
        if name not in accts.accounts:
            raise AfboxError(f"no account {name!r}", hint="add one: afbox class add NAME")
        a = accts.accounts[name]
        a.code, a.password = new_code(), None
        return a.code


def login(path: Path, name: str, secret: str, new_password: str = "") -> tuple[bool, str]:
    """Check one login; a right one-time code with a new password sets it and spends the code.
    Returns (accepted, why not)."""
    with locked(path) as accts:
        a = accts.accounts.get(name)
        if a is None:
            hash_password(secret)  # as slow as a real check: no telling names by timing
            return False, "invalid username or password"
        if a.code and same_code(secret, a.code):
            if len(new_password) < MIN_PASSWORD:
                return False, f"{FIRST_LOGIN}: choose a new password of at least {MIN_PASSWORD} characters"
            a.password, a.code = hash_password(new_password), None
            a.first_login = time.time()
            return True, ""
        if a.password and verify_password(secret, a.password):
            return True, ""
        return False, "invalid username or password"
