"""Knock on a facility's doors with tokens, from inside its network namespace:

    ip netns exec NS python doors.py RECORD < [{"door": "gateway", "token": "..."}, ...]

prints one JSON list: for each knock, whether the door let the token in. Doors: jupyter, gateway,
dashboard (the scheduler's), xcache and cache-<site> (xrdcp of "path", checked against "sha256").
"""
from __future__ import annotations

import hashlib
import json
import os
import ssl
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx


def http(url: str, token: str | None, ca: str) -> bool:
    r = httpx.get(url, headers={"Authorization": f"Bearer {token}"} if token else {}, timeout=20,
                  verify=ssl.create_default_context(cafile=ca) if url.startswith("https") else True)
    assert r.status_code in (200, 401, 403), (url, r.status_code, r.text[:200])
    return r.status_code == 200


def xrdcp(root: str, path: str, token: str | None, ca_dir: str, sha256: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BEARER_TOKEN", "X509_"))}
    runtime = tempfile.mkdtemp()  # no token file anywhere the WLCG discovery looks
    env.update(X509_CERT_DIR=ca_dir, XDG_RUNTIME_DIR=runtime)
    if token:
        env["BEARER_TOKEN"] = token
    out = Path(runtime) / "read"
    p = subprocess.run(["xrdcp", "-f", "-s", f"{root.rstrip('/')}//{path.lstrip('/')}", str(out)], env=env, capture_output=True,
                       text=True, timeout=90, check=False)
    got = hashlib.sha256(out.read_bytes()).hexdigest() if out.exists() else None
    return {"ok": p.returncode == 0 and (sha256 is None or got == sha256), "stderr": p.stderr[-300:]}


def knock(rec: dict, k: dict) -> dict:
    ca = str(Path(rec["auth"]["identity_dir"]) / "ca.pem")
    svc = rec["services"]
    door, token = k["door"], k.get("token")
    if door == "jupyter":
        return {"ok": http(svc["jupyter"]["urls"]["lab"].removesuffix("/lab") + "/api/status", token, ca)}
    if door == "gateway":
        return {"ok": http(svc["gateway"]["urls"]["gateway"] + "/api/v1/clusters/", token, ca)}
    if door == "dashboard":
        return {"ok": http(svc["dask-scheduler"]["urls"]["dashboard"], token, ca)}
    root = k.get("root") or svc[door]["urls"]["root"]
    return xrdcp(root, k["path"], token, k.get("ca_dir") or rec["auth"]["ca_dir"], k.get("sha256"))


if __name__ == "__main__":
    record = json.loads(Path(sys.argv[1]).read_text())
    print(json.dumps([knock(record, k) for k in json.loads(sys.stdin.read())]))
