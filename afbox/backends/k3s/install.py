"""Installing k3s: from an air-gap bundle laid out as k3s' releases name its files, or with the
official install script (which downloads: needs network)."""
from __future__ import annotations

import shutil
from pathlib import Path

from ...errors import AfboxError
from ...run import run

BIN_DIR = Path("/usr/local/bin")
DATA_DIR = Path("/var/lib/rancher/k3s")


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
