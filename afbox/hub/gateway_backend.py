"""Students' Dask clusters from the gateway, isolated like their servers: as root each cluster runs as
the student's unix user inside their cgroup (its memory counts against their limit); otherwise in
their bubblewrap. At most `max_clusters` each. Users that are not in the class (the facility's
owner) get clusters as on a single-user facility.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from dask_gateway_server.backends.base import PublicException
from traitlets import Float, Integer, Unicode

from ..auth.facility_auth import ENV_CA, ENV_KEYS, ENV_TRUSTED
from ..plugins.gateway_backend import FacilityBackend
from . import isolation, limits

OWNER_ENV = "AFBOX_DASHBOARD_OWNER"  # the dashboard answers only this subject's token


class ClassBackend(FacilityBackend):
    facility = Unicode(config=True)
    isolation = Unicode("users", config=True)
    accounts_file = Unicode(config=True)
    homes_dir = Unicode(config=True)
    runtime_dir = Unicode(config=True, help="per student: their token file")
    public_dir = Unicode(config=True, help="the issuer's public keys and the CA, for every student")
    data_dir = Unicode("", config=True, help="the class data, read-only")
    memory = Integer(2 * 1024 ** 3, config=True)
    cpus = Float(1.0, config=True)
    max_clusters = Integer(1, config=True, help="running clusters per student")

    _cgroups: limits.Cgroups | None = None

    def in_class(self, username: str) -> bool:
        try:
            return username in json.loads(Path(self.accounts_file).read_text())["accounts"]
        except (OSError, ValueError, KeyError):
            return False

    def cgroups(self) -> limits.Cgroups:
        if self._cgroups is None:
            self._cgroups = limits.detect(os.geteuid() == 0, f"afbox/{self.facility}")
        return self._cgroups

    def owner(self, username: str) -> tuple[int, int]:
        return isolation.ensure_user(isolation.unix_name(self.facility, username),
                                     Path(self.homes_dir) / username, f"afbox class {self.facility}")

    async def start_cluster(self, user, cluster_options):
        if self.in_class(user.name):
            running = await self.list_clusters(username=user.name)
            if len(running) >= self.max_clusters:
                raise PublicException(f"{user.name} has {len(running)} Dask cluster(s) running already, the most a "
                                      f"student may have: use it (afbox.client()) or shut it down first")
        return await super().start_cluster(user, cluster_options)

    def set_file_permissions(self, paths, username):
        if self.isolation == "users" and self.in_class(username):
            uid, gid = self.owner(username)
            # dask-gateway's LocalBackend adds the certificate paths to `paths` letter by letter
            # (paths.extend(path)): take the dirs it lists and the certificates by their names
            real = [p for p in paths if len(p) > 1]
            for p in {*real, *self._get_tls_paths(real[0])}:
                os.chown(p, uid, gid)

    def make_preexec_fn(self, cluster):
        if self.isolation != "users" or not self.in_class(cluster.username):
            return super().make_preexec_fn(cluster)
        uid, gid, group = self._limited(cluster.username)
        return isolation.drop_to(uid, gid, cluster.state["workdir"], lambda: group.enter(cluster.username))

    def process_owner(self, cluster):
        if not self.in_class(cluster.username):
            return super().process_owner(cluster)
        if self.isolation != "users":
            return None  # bubblewrap starts a program: a subprocess
        uid, gid, group = self._limited(cluster.username)
        return (uid, gid), [str(p) for p in group.procs_files(cluster.username)]

    def _limited(self, username: str) -> tuple[int, int, limits.Cgroups]:
        """The student's unix user, and their cgroup with its limits set (as root, in the gateway)."""
        uid, gid = self.owner(username)
        group = self.cgroups()
        group.prepare(username, limits.Limits(self.memory, self.cpus))
        return uid, gid, group

    def get_env(self, cluster):
        env = super().get_env(cluster)
        if self.in_class(cluster.username):
            # the student's own token and what a student may read, never the owner's
            public = Path(self.public_dir)
            env.update({OWNER_ENV: cluster.username, "AFBOX_STUDENT": cluster.username,
                        "HOME": str(Path(self.homes_dir) / cluster.username),
                        "BEARER_TOKEN_FILE": str(Path(self.runtime_dir) / cluster.username / "data.token"),
                        "X509_CERT_DIR": str(public / "ca-hashed"), ENV_KEYS: str(public / "public-keys.json"),
                        ENV_CA: str(public / "ca.pem"), ENV_TRUSTED: ""})
        return env

    async def start_process(self, cluster, cmd, env, name):
        if self.isolation == "bwrap" and self.in_class(cluster.username):
            workdir = cluster.state["workdir"]
            read_only = (self.data_dir, self.public_dir, str(Path(self.runtime_dir) / cluster.username))
            box = isolation.Sandbox(str(Path(self.homes_dir) / cluster.username), writable=(workdir,),
                                    read_only=tuple(filter(None, read_only)))
            cmd = box.argv(self.cgroups().wrap(f"afbox-{self.facility}-{cluster.username}-{name}",
                                               limits.Limits(self.memory, self.cpus), list(cmd)))
        return await super().start_process(cluster, cmd, env, name)
