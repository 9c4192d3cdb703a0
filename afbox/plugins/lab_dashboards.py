"""JupyterLab serves the facility's Dask dashboards under its own origin (jupyter-server-proxy), so the
Dask panel's plots open under whatever host name JupyterLab was opened by (127.0.0.1, localhost, one
ssh-tunnelled port):

    {base}proxy/dask/<cluster>/...   the facility's own cluster ("default") or a named one
    {base}proxy/dask-gateway/...     the gateway's routes, e.g. clusters/<id>/status of its clusters

Only the target's own host is proxied to. Jupyter's login comes first; the dashboard then checks the
facility token itself (the browser's cookie from the login, or its Authorization header, passed on).
"""
from __future__ import annotations

import os
from typing import Callable
from urllib.parse import urlsplit

from jupyter_server.utils import url_path_join
from jupyter_server_proxy.handlers import AddSlashHandler, ProxyHandler
from tornado import web

from ..services.jupyter import GATEWAY_PATH
from . import lab_clusters

Lookup = Callable[[str], "str | None"]


def dashboard_url(cluster: str) -> str | None:
    """The base URL of a cluster's dashboard in this facility: the default one from the environment
    (a Service name on k3s), a named one from the facility's record."""
    if cluster == "default":
        return os.environ.get("AFBOX_DASHBOARD") or None
    named = lab_clusters.named_clusters().get(cluster)
    return named.dashboard.removesuffix("/status") if named else None


def gateway_url(_: str) -> str | None:
    return os.environ.get("DASK_GATEWAY__ADDRESS") or None


class DashboardProxy(ProxyHandler):
    """Proxies one path prefix to the URL `lookup` gives for the key in the path."""

    def initialize(self, lookup: Lookup, prefix: str) -> None:
        self.lookup, self.prefix = lookup, prefix

    def _target(self, key: str) -> tuple[str, int, str]:
        url = self.lookup(key)
        if not url:
            raise web.HTTPError(404, f"no Dask dashboard {key!r} in this facility")
        parts = urlsplit(url)
        self.host_allowlist = [parts.hostname]
        # redirects of the dashboard (/ -> /status) stay under this prefix
        self.proxy_base = url_path_join(self.prefix, key) if key else self.prefix
        return parts.hostname, parts.port or 80, parts.path.rstrip("/")

    async def http_get(self, key, path):
        return await self.proxy(key, path)

    async def open(self, key, path):
        host, port, base = self._target(key)
        return await self.proxy_open(host, port, base + path)

    def post(self, key, path):
        return self.proxy(key, path)

    def put(self, key, path):
        return self.proxy(key, path)

    def delete(self, key, path):
        return self.proxy(key, path)

    def head(self, key, path):
        return self.proxy(key, path)

    def patch(self, key, path):
        return self.proxy(key, path)

    def options(self, key, path):
        return self.proxy(key, path)

    def proxy(self, key, path):
        host, port, base = self._target(key)
        return super().proxy(host, port, base + (path or "/"))


def handlers(base_url: str) -> list[tuple]:
    dask_prefix = "proxy/dask"
    return [
        (url_path_join(base_url, dask_prefix, r"([\w-]+)(/.*)"), DashboardProxy,
         {"lookup": dashboard_url, "prefix": dask_prefix}),
        (url_path_join(base_url, dask_prefix, r"[\w-]+"), AddSlashHandler),
        (url_path_join(base_url, GATEWAY_PATH) + "()(/.*)", DashboardProxy,
         {"lookup": gateway_url, "prefix": GATEWAY_PATH}),
    ]
