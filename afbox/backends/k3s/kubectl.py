"""The k3s binary: everything afbox asks of a cluster goes through `k3s kubectl` / `k3s ctr`,
run through afbox.run (logged argv, timeouts, output kept for errors)."""
from __future__ import annotations

import json
from pathlib import Path

from ...errors import AfboxError, CommandError
from ...health import poll_until
from ...run import Result, require, run

INSTALL_HINT = ("install it with: afbox k3s install --bundle DIR (an air-gap bundle: k3s binary, images "
                "tarball, install.sh), or afbox k3s install (fetches https://get.k3s.io: needs network)")
LOG_TAIL = 20


class K3s:
    def __init__(self, binary: str | None = None):
        if binary is None:
            try:
                binary = require("k3s")
            except AfboxError as e:
                raise type(e)(e.message, hint=INSTALL_HINT) from None
        self.bin = binary

    # -- plain calls ----------------------------------------------------------------------
    def kubectl(self, *args: str, input: str | None = None, timeout: float = 60, check: bool = True) -> Result:
        return run([self.bin, "kubectl", *args], input=input, timeout=timeout, check=check)

    def get_json(self, *args: str, timeout: float = 30) -> dict:
        out = self.kubectl("get", *args, "-o", "json", timeout=timeout).stdout
        try:
            return json.loads(out)
        except ValueError:
            raise AfboxError(f"`k3s kubectl get {' '.join(args)}` did not answer JSON",
                             details=out.splitlines()[-5:]) from None

    def import_image(self, tarball: Path) -> None:
        run([self.bin, "ctr", "images", "import", str(tarball)], timeout=600)

    def apply(self, manifests: str) -> list[str]:
        """Server-side apply of a multi-document YAML read from stdin (secrets never touch argv or disk)."""
        out = self.kubectl("apply", "--server-side", "--field-manager=afbox", "--force-conflicts", "-f", "-",
                           input=manifests, timeout=120).stdout
        return out.splitlines()

    # -- the node -------------------------------------------------------------------------
    def wait_node_ready(self, timeout: float, poll: float = 2.0) -> list[str]:
        """Names of the Ready nodes once there is one; else AfboxError listing every node's conditions."""
        last: dict = {"nodes": [], "why": []}

        def ready() -> list[str]:
            try:
                last["nodes"], last["why"] = self.get_json("nodes")["items"], []
            except CommandError as e:  # the API server is still starting
                last["nodes"], last["why"] = [], e.details
            return [n["metadata"]["name"] for n in last["nodes"] if _condition(n, "Ready") == "True"]
        nodes = poll_until(ready, timeout, poll)
        if nodes:
            return nodes
        details = [line for n in last["nodes"] for line in _conditions_text(n)] or last["why"]
        raise AfboxError(f"no k3s node became Ready within {timeout:g}s", details=details,
                         hint="see `journalctl -u k3s` (or k3s-agent) on the node")

    # -- workloads ------------------------------------------------------------------------
    def rollout_status(self, kind: str, name: str, namespace: str, timeout: float) -> Result:
        return self.kubectl("rollout", "status", f"{kind.lower()}/{name}", "-n", namespace,
                            f"--timeout={int(timeout)}s", timeout=timeout + 30, check=False)

    def pods(self, namespace: str, selector: str) -> list[dict]:
        return self.get_json("pods", "-n", namespace, "-l", selector)["items"]

    def logs(self, namespace: str, pod: str, container: str, tail: int = LOG_TAIL, previous: bool = False) -> list[str]:
        args = ["logs", pod, "-n", namespace, "-c", container, f"--tail={tail}"]
        r = self.kubectl(*args, *(["--previous"] if previous else []), check=False)
        return r.stdout.splitlines() if r.code == 0 else []


def _condition(node: dict, kind: str) -> str | None:
    for c in node.get("status", {}).get("conditions", []):
        if c.get("type") == kind:
            return c.get("status")
    return None


def _conditions_text(node: dict) -> list[str]:
    name = node["metadata"]["name"]
    return [f"node {name}: {c['type']}={c['status']} ({c.get('reason', '')}: {c.get('message', '')})"
            for c in node.get("status", {}).get("conditions", [])]
