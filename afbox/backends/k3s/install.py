"""Installing k3s: from an air-gap bundle laid out as k3s' releases name its files, or with the
official install script (which downloads: needs network)."""
from __future__ import annotations

import shutil
from pathlib import Path

from ...errors import AfboxError
from ...run import run

BIN_DIR = Path("/usr/local/bin")
DATA_DIR = Path("/var/lib/rancher/k3s")
FACILITY_IMAGES = (".tar", ".tar.gz", ".tgz", ".tar.zst")  # image tarballs a bundle may carry besides k3s' own


def agent_images_dir(data_dir: Path = DATA_DIR) -> Path:
    """Where k3s imports image tarballs from whenever a node (server or agent) starts."""
    return data_dir / "agent" / "images"


def token_path(data_dir: Path = DATA_DIR) -> Path:
    """Where a k3s server keeps the token agents join with (root-only)."""
    return data_dir / "server" / "node-token"


def bundle_parts(bundle: Path) -> dict[str, Path]:
    """The three files of an air-gap bundle, as k3s' releases name them, and any other image
    tarballs beside them (the facility's air-gap set: afbox's images, the GPU device plugin)."""
    bundle = Path(bundle)
    found = {"k3s": bundle / "k3s", "install.sh": bundle / "install.sh"}
    images = sorted(p for p in bundle.glob("k3s-airgap-images-*.tar*"))
    missing = [n for n, p in found.items() if not p.is_file()] + ([] if images else ["k3s-airgap-images-<arch>.tar[.zst]"])
    if missing:
        raise AfboxError(f"{bundle}: not a complete k3s air-gap bundle; missing: {', '.join(missing)}",
                         hint="get them from https://github.com/k3s-io/k3s/releases (k3s, k3s-airgap-images-amd64.tar.zst) "
                              "and https://get.k3s.io (install.sh)")
    facility = sorted(p for p in bundle.iterdir() if p.name.endswith(FACILITY_IMAGES) and p not in images)
    return found | {"images": images[0], "facility_images": facility}


def install_env(role_exec: str, bin_dir: Path, data_dir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    exec_args = role_exec if data_dir == DATA_DIR else f"{role_exec} --data-dir {data_dir}"
    return {"INSTALL_K3S_EXEC": exec_args, "INSTALL_K3S_BIN_DIR": str(bin_dir), **(extra or {})}


def image_tarballs(directory: Path) -> list[Path]:
    """The image tarballs of a dir (an air-gap set)."""
    d = Path(directory).expanduser()
    if not d.is_dir():
        raise AfboxError(f"{d} is not a directory of image tarballs")
    return sorted(p for p in d.iterdir() if p.is_file() and p.name.endswith(FACILITY_IMAGES))


def place_images(tarballs: list[Path], data_dir: Path = DATA_DIR) -> Path:
    """Copy image tarballs where k3s imports them whenever the node starts (unchanged ones stay)."""
    dest = agent_images_dir(data_dir)
    dest.mkdir(parents=True, exist_ok=True)
    for t in tarballs:
        target = dest / t.name
        if not target.exists() or target.stat().st_size != t.stat().st_size:
            shutil.copyfile(t, target)
    return dest


def install_from_bundle(bundle: Path, role_exec: str, bin_dir: Path = BIN_DIR, data_dir: Path = DATA_DIR,
                        extra_env: dict[str, str] | None = None, images: list[Path] = ()) -> Path:
    """k3s' documented air-gap install: binary into the bin dir, images where the agent imports them
    at start (k3s' own, the bundle's others and `images`), then the bundle's install.sh without
    downloading. Returns the installed binary."""
    parts = bundle_parts(bundle)
    bin_dir.mkdir(parents=True, exist_ok=True)
    target = bin_dir / "k3s"
    shutil.copyfile(parts["k3s"], target)
    target.chmod(0o755)
    place_images([parts["images"], *parts["facility_images"], *images], data_dir)
    env = install_env(role_exec, bin_dir, data_dir, {"INSTALL_K3S_SKIP_DOWNLOAD": "true", **(extra_env or {})})
    run(["sh", str(parts["install.sh"])], env=env, timeout=600)
    return target


def install_online(role_exec: str, workdir: Path, bin_dir: Path = BIN_DIR, data_dir: Path = DATA_DIR,
                   extra_env: dict[str, str] | None = None, images: list[Path] = ()) -> Path:
    """The official install script (it downloads k3s from GitHub); `images` are placed first."""
    if images:
        place_images(list(images), data_dir)
    script = workdir / "k3s-install.sh"
    run(["curl", "-sfL", "-o", str(script), "https://get.k3s.io"], timeout=120)
    run(["sh", str(script)], env=install_env(role_exec, bin_dir, data_dir, extra_env), timeout=900)
    return bin_dir / "k3s"
