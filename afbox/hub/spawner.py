"""Students' servers: their home with the class content, their facility token (sub = student, kept
fresh while the server runs), isolation by privilege (afbox.hub.isolation), memory and CPU limits
(afbox.hub.limits) and admission only while the box has memory to spare."""
from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import httpx
import psutil
from jupyterhub.spawner import LocalProcessSpawner
from tornado import web
from traitlets import Float, HasTraits, Integer, List, Unicode

from ..auth import token_file
from ..auth.facility_auth import ENV_CA, ENV_ISSUER, ENV_KEYS, ENV_TRUSTED
from ..auth.tokens import COMPUTE, JUPYTER, mint, storage_read
from ..auth.identity import load as load_identity
from ..units import human_bytes
from ..state import replace_private
from . import home as homes, isolation, limits

STUDENT_ENV = "AFBOX_STUDENT"  # marks every process of a student (afbox class status finds them by it)


class Student(HasTraits):
    """What every student's server gets, however it runs (here: as a process; on k3s: a pod, see
    afbox.hub.kube): their token, the class's addresses, their clusters stopped with the server."""
    facility = Unicode(config=True)
    homes_dir = Unicode(config=True)
    public_dir = Unicode(config=True, help="the issuer's public keys and the CA dir every student reads")
    content_dir = Unicode(config=True, help="copied into each home where missing")
    identity_dir = Unicode(config=True)
    issuer = Unicode(config=True)
    token_lifetime = Float(7200, config=True)
    token_scope = Unicode(f"{COMPUTE} {JUPYTER} {storage_read('/')}", config=True)
    gateway_url = Unicode("", config=True)
    gateway_proxy = Unicode("", config=True)
    xcache_url = Unicode("", config=True)
    extra_env = List(config=True, help="(name, value) pairs for every student process")

    @property
    def student(self) -> str:
        return self.user.name

    def mint_token(self) -> str:
        return mint(load_identity(Path(self.identity_dir)), self.issuer, self.student, self.token_scope,
                    self.issuer, lifetime=self.token_lifetime)

    def class_env(self, token_file: str, home: str) -> dict[str, str]:
        public = Path(self.public_dir)
        return {
            STUDENT_ENV: self.student, "AFBOX_FACILITY": self.facility, "JUPYTERHUB_ROOT_DIR": home,
            "BEARER_TOKEN_FILE": token_file, "X509_CERT_DIR": str(public / "ca-hashed"),
            "AFBOX_GATEWAY": self.gateway_url, "AFBOX_GATEWAY_PROXY": self.gateway_proxy,
            "AFBOX_XCACHE": self.xcache_url, "AFBOX_STUDENT_WORKERS": "1",
            ENV_ISSUER: self.issuer, ENV_KEYS: str(public / "public-keys.json"), ENV_TRUSTED: "",
            ENV_CA: str(public / "ca.pem"),
            # students use their own gateway cluster, never the tutor's scheduler
            "DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True",
            **dict(self.extra_env),
        }

    def current_token(self) -> str:
        raise NotImplementedError

    async def stop_clusters(self) -> None:
        """The student's gateway clusters go with their server (the culler stops both)."""
        if not self.gateway_url:
            return
        try:
            async with httpx.AsyncClient(base_url=self.gateway_url, timeout=10,
                                         headers={"Authorization": f"Bearer {self.current_token()}"}) as http:
                r = await http.get("/api/v1/clusters/")
                for name in r.json() if r.is_success else {}:
                    await http.delete(f"/api/v1/clusters/{name}")
                    self.log.info("stopped %s's Dask cluster %s", self.student, name)
        except (OSError, httpx.HTTPError, ValueError) as e:
            self.log.warning("could not stop the Dask clusters of %s: %s", self.student, e)


class ClassSpawner(Student, LocalProcessSpawner):
    isolation = Unicode("users", config=True, help="users or bwrap (afbox.hub.isolation)")
    runtime_dir = Unicode(config=True, help="per student: their token file")
    data_dir = Unicode(config=True, help="the class data, read-only")
    memory = Integer(2 * 1024 ** 3, config=True, help="bytes: server, kernels and Dask together")
    cpus = Float(1.0, config=True)
    admit_free = Integer(400 * 1024 ** 2, config=True, help="bytes that must be free for a server to start")

    _cgroups: limits.Cgroups | None = None

    @property
    def home(self) -> Path:
        return Path(self.homes_dir) / self.student

    @property
    def token_path(self) -> Path:
        return Path(self.runtime_dir) / self.student / "data.token"

    @classmethod
    def cgroups(cls, facility: str) -> limits.Cgroups:
        if cls._cgroups is None:
            cls._cgroups = limits.detect(os.geteuid() == 0, f"afbox/{facility}")
            limits.v2_leave_root(cls._cgroups)
        return cls._cgroups

    @property
    def limits(self) -> limits.Limits:
        return limits.Limits(self.memory, self.cpus)

    def owner(self) -> tuple[int, int] | None:
        if self.isolation != "users":
            return None
        return isolation.ensure_user(isolation.unix_name(self.facility, self.student), self.home,
                                     f"afbox class {self.facility}")

    # -- files ------------------------------------------------------------------------------
    def write_token(self, owner: tuple[int, int] | None) -> None:
        path = self.token_path
        replace_private(path, self.mint_token() + "\n", owner)
        if owner:
            os.chown(path.parent, *owner)

    def prepare(self) -> None:
        """Blocking: the unix user, home, token and cgroup (run in a thread)."""
        owner = self.owner()
        content = Path(self.content_dir) if self.content_dir else None
        copied = homes.prepare_home(self.home, content, Path(self.data_dir) if self.data_dir else None, owner)
        if copied:
            self.log.info("class content for %s: %s", self.student, ", ".join(copied))
        self.write_token(owner)
        if self.isolation == "users":
            self.cgroups(self.facility).prepare(self.student, self.limits)

    def admit(self) -> None:
        free = psutil.virtual_memory().available
        if free < self.admit_free:
            self.log.warning("not starting %s: %s free, %s needed", self.student, human_bytes(free),
                             human_bytes(self.admit_free))
            raise web.HTTPError(503, f"the class machine is short of memory ({human_bytes(free)} free): "
                                     "try again in a minute, or ask your tutor")

    # -- the process ------------------------------------------------------------------------
    async def start(self):
        self.admit()
        await asyncio.get_running_loop().run_in_executor(None, self.prepare)
        base = [sys.executable, "-m", "afbox.hub.singleuser"]
        if self.isolation == "bwrap":
            box = isolation.Sandbox(str(self.home), read_only=self.read_only_dirs())
            base = box.argv(self.cgroups(self.facility).wrap(f"afbox-{self.facility}-{self.student}",
                                                             self.limits, base))
        self.cmd = base
        return await super().start()

    def read_only_dirs(self) -> tuple[str, ...]:
        return tuple(d for d in (self.data_dir, str(self.token_path.parent), self.public_dir) if d)

    def make_preexec_fn(self, name):
        if self.isolation != "users":
            return None  # bubblewrap sets the scene
        uid, gid = self.owner()
        group = self.cgroups(self.facility)
        return isolation.drop_to(uid, gid, str(self.home), lambda: group.enter(self.student))

    def user_env(self, env):
        env.update(USER=self.student, HOME=str(self.home), SHELL="/bin/bash")
        return env

    def get_env(self):
        env = super().get_env()
        env.update(self.class_env(str(self.token_path), str(self.home)))
        env["AFBOX_CLASS_DATA"] = self.data_dir
        for key in ("AFBOX_SCHEDULER", "DASK_SCHEDULER_ADDRESS"):
            env.pop(key, None)
        return env

    async def poll(self):
        status = await super().poll()
        if status is None and token_file.stale(self.token_path, self.token_lifetime, self.issuer):
            await asyncio.get_running_loop().run_in_executor(None, self.write_token, self.owner())
            self.log.info("renewed the token of %s", self.student)
        return status

    async def stop(self, now=False):
        await super().stop(now=now)
        await self.stop_clusters()

    def current_token(self) -> str:
        return self.token_path.read_text().strip()
