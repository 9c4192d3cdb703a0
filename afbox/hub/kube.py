"""Students' servers as pods (k3s): KubeSpawner with what every student gets (afbox.hub.spawner.Student).

Where and how the pods run (namespace, image, security, limits, the class claim's subPaths, labels
the NetworkPolicies select) is the k3s backend's to say: it adds those KubeSpawner settings to the
hub's config (afbox/backends/k3s/manifests/hub_pods.py). Here: the home prepared on the class claim
before the pod starts, and the student's token in a Secret of their own, renewed while the server
runs; the pod's entry (afbox.hub.singleuser) keeps a 0600 copy of it for its readers.
"""
from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

from kubespawner import KubeSpawner
from kubernetes_asyncio.client.rest import ApiException

from . import home as homes
from .paths import TOKEN_FILE, TOKEN_SECRET, TOKEN_SOURCE
from .singleuser import SOURCE_ENV
from .spawner import Student


class ClassKubeSpawner(Student, KubeSpawner):
    _minted: float = 0.0
    _token: str = ""

    @property
    def token_secret(self) -> str:
        return self._expand_user_properties(TOKEN_SECRET)

    @property
    def home(self) -> Path:
        """As the pod mounts it: the class claim's homes/{username}, the name escaped as KubeSpawner does."""
        return Path(self.homes_dir) / self._expand_user_properties("{username}")

    def token_secret_manifest(self, token: str) -> dict:
        return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": self.token_secret, "namespace": self.namespace,
                             "labels": self._build_common_labels({})},
                "data": {"data.token": base64.b64encode(f"{token}\n".encode()).decode()}}

    async def write_token(self) -> None:
        """Create or replace the student's token Secret (the kubelet passes a new one to the pod)."""
        token = self.mint_token()
        body = self.token_secret_manifest(token)
        try:
            await self.api.replace_namespaced_secret(self.token_secret, self.namespace, body)
        except ApiException as e:
            if e.status != 404:
                raise
            await self.api.create_namespaced_secret(self.namespace, body)
        self._token, self._minted = token, time.time()

    def current_token(self) -> str:
        return self._token

    def prepare_home(self) -> None:
        copied = homes.prepare_home(self.home, Path(self.content_dir) if self.content_dir else None, None)
        if copied:
            self.log.info("class content for %s: %s", self.student, ", ".join(copied))

    async def start(self):
        await asyncio.get_running_loop().run_in_executor(None, self.prepare_home)
        await self.write_token()
        return await super().start()

    def get_env(self):
        env = super().get_env()
        env.update(self.class_env(TOKEN_FILE, "/home/afbox"))
        env[SOURCE_ENV] = f"{TOKEN_SOURCE}/data.token"
        return env

    async def poll(self):
        status = await super().poll()
        if status is None and time.time() - self._minted > self.token_lifetime / 2:
            await self.write_token()
            self.log.info("renewed the token of %s", self.student)
        return status

    async def stop(self, now=False):
        await super().stop(now=now)
        await self.stop_clusters()
