"""The k3s binary: everything afbox asks of a cluster goes through `k3s kubectl` / `k3s ctr`,
run through afbox.run (logged argv, timeouts, output kept for errors)."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from .errors import AfboxError, CommandError
from .run import Result, require, run

INSTALL_HINT = ("install it with: afbox k3s install --bundle DIR (an air-gap bundle: k3s binary, images "
                "tarball, install.sh), or afbox k3s install (fetches https://get.k3s.io: needs network)")
BIN_DIR = Path("/usr/local/bin")
DATA_DIR = Path("/var/lib/rancher/k3s")
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
        deadline = time.monotonic() + timeout
        while True:
            try:
                nodes = self.get_json("nodes")["items"]
            except CommandError as e:  # the API server is still starting
                nodes, why = [], e.details
            else:
                why = []
            ready = [n["metadata"]["name"] for n in nodes if _condition(n, "Ready") == "True"]
            if ready:
                return ready
            if time.monotonic() >= deadline:
                details = [line for n in nodes for line in _conditions_text(n)] or why
                raise AfboxError(f"no k3s node became Ready within {timeout:g}s", details=details,
                                 hint="see `journalctl -u k3s` (or k3s-agent) on the node")
            time.sleep(poll)

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


def token_path(data_dir: Path = DATA_DIR) -> Path:
    """Where a k3s server keeps the token agents join with (root-only)."""
    return data_dir / "server" / "node-token"


def bundle_parts(bundle: Path) -> dict[str, Path]:
    """The three files of an air-gap bundle, as k3s' releases name them."""
    bundle = Path(bundle)
    found = {"k3s": bundle / "k3s", "install.sh": bundle / "install.sh"}
    images = sorted(p for p in bundle.glob("k3s-airgap-images-*.tar*"))
    missing = [n for n, p in found.items() if not p.is_file()] + ([] if images else ["k3s-airgap-images-<arch>.tar[.zst]"])
    if missing:
        raise AfboxError(f"{bundle}: not a complete k3s air-gap bundle; missing: {', '.join(missing)}",
                         hint="get them from https://github.com/k3s-io/k3s/releases (k3s, k3s-airgap-images-amd64.tar.zst) "
                              "and https://get.k3s.io (install.sh)")
    return found | {"images": images[0]}


def install_env(role_exec: str, bin_dir: Path, data_dir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    exec_args = role_exec if data_dir == DATA_DIR else f"{role_exec} --data-dir {data_dir}"
    return {"INSTALL_K3S_EXEC": exec_args, "INSTALL_K3S_BIN_DIR": str(bin_dir), **(extra or {})}


def install_from_bundle(bundle: Path, role_exec: str, bin_dir: Path = BIN_DIR, data_dir: Path = DATA_DIR,
                        extra_env: dict[str, str] | None = None) -> Path:
    """k3s' documented air-gap install: binary into the bin dir, images where the agent imports them
    at start, then the bundle's install.sh without downloading. Returns the installed binary."""
    parts = bundle_parts(bundle)
    bin_dir.mkdir(parents=True, exist_ok=True)
    target = bin_dir / "k3s"
    shutil.copyfile(parts["k3s"], target)
    target.chmod(0o755)
    images = data_dir / "agent" / "images"
    images.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(parts["images"], images / parts["images"].name)
    env = install_env(role_exec, bin_dir, data_dir, {"INSTALL_K3S_SKIP_DOWNLOAD": "true", **(extra_env or {})})
    run(["sh", str(parts["install.sh"])], env=env, timeout=600)
    return target


def install_online(role_exec: str, workdir: Path, bin_dir: Path = BIN_DIR, data_dir: Path = DATA_DIR,
                   extra_env: dict[str, str] | None = None) -> Path:
    """The official install script (it downloads k3s from GitHub)."""
    script = workdir / "k3s-install.sh"
    run(["curl", "-sfL", "-o", str(script), "https://get.k3s.io"], timeout=120)
    run(["sh", str(script)], env=install_env(role_exec, bin_dir, data_dir, extra_env), timeout=900)
    return bin_dir / "k3s"
