"""Start the first students' servers as soon as the hub is up, so the first logins of a class do not
wait for a server to start.

    python -m afbox.hub.prestart NAME...     (a hub-managed service: $JUPYTERHUB_API_URL and _TOKEN set)
"""
from __future__ import annotations

import os
import sys
import threading

import httpx


def main(names: list[str]) -> None:
    api = os.environ["JUPYTERHUB_API_URL"].rstrip("/")
    headers = {"Authorization": f"token {os.environ['JUPYTERHUB_API_TOKEN']}"}
    with httpx.Client(base_url=api, headers=headers, timeout=60) as http:
        for name in names:
            if http.get(f"/users/{name}").status_code == 404:
                http.post(f"/users/{name}")
            r = http.post(f"/users/{name}/server")
            print(f"prestart {name}: HTTP {r.status_code}", flush=True)
    threading.Event().wait()  # the hub restarts a managed service that exits


if __name__ == "__main__":
    main(sys.argv[1:])
