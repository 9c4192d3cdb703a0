"""The images pods run, pinned to the digest they have in the facility's air-gap set.

An air-gap set is a dir of image tarballs (`[k3s] images_dir`) that k3s imports on every node from
its agent images dir. Each tarball is an OCI archive (`podman save --format oci-archive`, or
`docker save` from Docker 25 on): its index.json names each image and its manifest digest, the
digest containerd keeps for it on import. A pod that names `image:tag@digest` runs exactly that
image, whatever else a node has under the tag.
"""
from __future__ import annotations

import json
import tarfile
from pathlib import Path

TARBALLS = (".tar", ".tar.gz", ".tgz")  # what is read here; k3s' own air-gap set is .tar.zst
REF_NAMES = ("io.containerd.image.name", "org.opencontainers.image.ref.name")


def normalized(image: str) -> str:
    """A reference as containerd names it: docker.io/library/ where the registry is implied."""
    first = image.split("/", 1)[0]
    if "/" not in image:
        return f"docker.io/library/{image}"
    if "." not in first and ":" not in first and first != "localhost":
        return f"docker.io/{image}"
    return image


def pinned(image: str, digests: dict[str, str]) -> str:
    """image:tag@sha256:... where the air-gap set has it; the image as configured otherwise."""
    if "@" in image:
        return image
    digest = digests.get(normalized(image))
    return f"{image}@{digest}" if digest else image


def tarball_digests(path: Path) -> dict[str, str]:
    """Reference -> manifest digest of every named image in one OCI archive."""
    with tarfile.open(path) as tar:
        try:
            index = json.load(tar.extractfile("index.json"))
        except KeyError:
            return {}
    out = {}
    for m in index.get("manifests", []):
        names = [m.get("annotations", {}).get(k, "") for k in REF_NAMES]
        ref = next((n for n in names if "/" in n or ":" in n), "")
        if ref and m.get("digest", "").startswith("sha256:"):
            out[normalized(ref)] = m["digest"]
    return out


def air_gap(directory: Path) -> dict[str, str]:
    """Every image of the air-gap set, with its digest."""
    out: dict[str, str] = {}
    for p in sorted(Path(directory).iterdir()):
        if p.name.endswith(TARBALLS):
            out |= tarball_digests(p)
    return out


def unpinned(objs: list[dict]) -> list[str]:
    """Images the objects run that no digest pins."""
    found = set()
    for o in objs:
        pod = o.get("spec", {}).get("template", {}).get("spec", {})
        for c in [*pod.get("initContainers", []), *pod.get("containers", [])]:
            if "@" not in c["image"]:
                found.add(c["image"])
    return sorted(found)
