"""afbox.run, the single-file facility: built from a clean checkout (Debian packages and PyPI wheels
only), then used as a person on a fresh box would: a minimal Debian root without python3, in a
network namespace with no route out, as a non-root user. Downloads and the debootstrap roots are
kept in $AFBOX_TEST_CACHE (default /var/tmp/afbox-test-cache) and remade when missing."""
from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bundle_box import USER, Box, cache_dir, debootstrap

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent.parent
PORT_BASE = 29000
HOME = f"/home/{USER}"
FIGURES: dict[str, str] = {}
AGC = ("dask", "tabulate")  # tabulate: in none of afbox's own wheels

pytestmark = [
    pytest.mark.integration, pytest.mark.timeout(1500),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: debootstrap, chroot and network namespaces"),
    pytest.mark.skipif(platform.machine() != "x86_64", reason="the bundle is built for x86_64"),
    pytest.mark.skipif(not all(shutil.which(b) for b in ("debootstrap", "unshare", "nsenter", "apt-get", "dpkg-deb")),
                       reason="needs debootstrap (./install.sh --dev), util-linux, apt-get and dpkg-deb"),
]


def clean_checkout(dest: Path) -> Path:
    """What a fresh clone of this working tree holds: files git tracks or would track, nothing built."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    return dest


@pytest.fixture(scope="module")
def built(tmp_path_factory, request) -> Path:
    tmp = tmp_path_factory.mktemp("bundle")
    src = clean_checkout(tmp / "src")
    out = tmp / "afbox.run"
    # a named environment on the connected machine, with a package the bundle does not carry otherwise
    env = {**os.environ, "XDG_DATA_HOME": str(tmp / "data")}
    p = subprocess.run([str(BIN / "afbox"), "env", "create", "agc", *AGC], env=env, capture_output=True, text=True,
                       timeout=600, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, f"env create failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    t0 = time.monotonic()
    p = subprocess.run([str(BIN / "afbox"), "bundle", "build", "-o", str(out), "--with-data", "demo",
                        "--with-env", "agc", "--source", str(src), "--cache", str(cache_dir() / "build")],
                       env=env, capture_output=True, text=True, timeout=1400, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, f"bundle build failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    FIGURES["build"] = f"{time.monotonic() - t0:.0f}s (downloads cached in {cache_dir() / 'build'})"
    FIGURES["size (with demo data)"] = f"{out.stat().st_size / 2**20:.0f} MiB"
    yield out
    with request.config.pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        print("\nafbox.run figures: " + "; ".join(f"{k} {v}" for k, v in FIGURES.items()))


@pytest.fixture(scope="module")
def info(built) -> dict:
    p = subprocess.run([str(BIN / "afbox"), "bundle", "inspect", "--json", str(built)], capture_output=True,
                       text=True, check=True, timeout=60)
    return json.loads(p.stdout)


@pytest.fixture(scope="module")
def box(built, tmp_path_factory):
    b = Box(debootstrap("bookworm"), tmp_path_factory.mktemp("box"))
    b.put(built, "afbox.run")
    yield b
    b.close()


def rt(info: dict) -> str:
    return f"{HOME}/.cache/afbox/rt/{info['sha256']}"


def bundled_python(box: Box, info: dict, code: str, env: str = "", check: bool = True):
    """Run code with the bundled interpreter, as a notebook on the box would."""
    return box.run(f"{env} {rt(info)}/usr/bin/python3 - <<'EOF'\n{code}\nEOF", check=check)


def test_built_from_packages_asking_only_glibc_of_the_host(built, info):
    assert info["host_libs"] == {}, f"the bundle needs libraries from the host: {info['host_libs']}"
    assert re.fullmatch(r"2\.\d+", info["glibc"]) and info["python"].startswith("3.11")
    head = built.read_bytes()[:16384].decode(errors="replace")
    assert f"AFBOX_GLIBC='{info['glibc']}'" in head and f"AFBOX_SHA256='{info['sha256']}'" in head
    names = {d["name"] for d in info["debs"]}
    assert {"python3.11-minimal", "xrootd-server", "xrootd-scitokens-plugins"} <= names and "libc6" not in names
    house = " ".join(info["wheelhouse"])
    assert all(w in house for w in ("distributed-", "ipykernel-", "xrootd-", "fsspec_xrootd-"))
    assert any(k.startswith("demo/ttbar/") and k.endswith(".root") for k in info["data"])
    listing = subprocess.run([str(BIN / "afbox"), "bundle", "inspect", str(built)], capture_output=True, text=True,
                             check=True).stdout
    assert f"glibc >= {info['glibc']}" in listing and "nothing else from the host" in listing


def test_the_box_has_no_python_and_no_route_out(box):
    assert box.run("command -v python3 || ls /usr/bin/python*", check=False).returncode != 0
    routes = box.run("cat /proc/net/route /proc/net/ipv6_route").stdout.splitlines()
    assert routes[1:] == [] or all(" lo" in r or r.split()[0] == "lo" for r in routes[1:]), routes
    assert [ln.split(":")[0].strip() for ln in box.run("cat /proc/net/dev").stdout.splitlines()[2:]] == ["lo"]
    assert box.run("id -u").stdout.strip() != "0"


def test_two_first_runs_at_once_give_one_tree(box, info):
    runs = [box.popen("./afbox.run --version") for _ in range(2)]
    outs = [(r.wait(timeout=600), *r.communicate()) for r in runs]
    for code, out, err in outs:
        assert code == 0 and "0.1" in out, err
    unpacks = [m for _, _, err in outs for m in re.findall(r"unpacked in ([\d.]+)s", err)]
    assert len(unpacks) == 1, [err for _, _, err in outs]
    FIGURES["first-run unpack"] = f"{unpacks[0]}s"
    assert sorted(box.run("ls -A ~/.cache/afbox/rt").stdout.split()) == sorted([".lock", info["sha256"]])


def test_a_second_run_skips_the_unpack(box, info):
    marker = f"{rt(info)}/.afbox-unpacked"
    before = box.run(f"stat -c %Y.%i {marker}").stdout
    t0 = time.monotonic()
    p = box.run("./afbox.run --version")
    FIGURES["later start (--version)"] = f"{time.monotonic() - t0:.2f}s"
    assert "first run" not in p.stderr and "unpacked" not in p.stderr
    assert box.run(f"stat -c %Y.%i {marker}").stdout == before


def test_up_brings_every_service_up(box):
    t0 = time.monotonic()
    p = box.run(f"./afbox.run up --profile laptop --port-base {PORT_BASE}", timeout=400)
    FIGURES["up (bundle)"] = f"{time.monotonic() - t0:.1f}s"
    assert "bundle's data put in" in p.stdout, p.stdout
    st = json.loads(box.run("./afbox.run status --json").stdout)
    assert st["state"] == "up"
    names = {s["name"] for s in st["services"]}
    assert {"issuer", "dask-scheduler", "gateway", "jupyter", "xcache", "origin"} <= names
    assert any(n.startswith("dask-worker") for n in names)
    for s in st["services"]:
        assert (s["state"], s["health"]) == ("running", "healthy"), s


def test_a_dask_computation_runs(box, info):
    p = bundled_python(box, info, "import afbox\nc = afbox.client()\n"
                                  "print(c.submit(sum, range(10)).result(), len(c.scheduler_info()['workers']))")
    total, workers = p.stdout.split()
    assert total == "45" and int(workers) >= 1


def test_jupyterlab_answers_a_facility_token(box, info):
    code = ("import httpx, sys\nurl = 'http://127.0.0.1:%d/api/status'\ntoken = sys.stdin.read().strip()\n"
            "print(httpx.get(url, headers={'Authorization': 'Bearer ' + token}).status_code, httpx.get(url).status_code)"
            % (PORT_BASE + 8))
    p = box.run(f"./afbox.run token | {rt(info)}/usr/bin/python3 -c \"$(cat <<'EOF'\n{code}\nEOF\n)\"")
    assert p.stdout.split() == ["200", "403"], p.stdout + p.stderr


def test_a_bundled_demo_file_reads_through_the_xcache_with_a_token(box, info):
    name = next(k for k in sorted(info["data"]) if k.endswith("_000.root"))
    url = f"root://127.0.0.1:{PORT_BASE}//{name}"
    code = ("import os, sys, afbox, uproot\nif sys.argv[-1] == 'token':\n    os.environ.update(afbox.data_env())\n"
            f"with uproot.open({url!r}, timeout=30) as f:\n    print(f['Events'].num_entries)")
    with_token = box.run(f"{rt(info)}/usr/bin/python3 -c \"$(cat <<'EOF'\n{code}\nEOF\n)\" token", check=False)
    logs = "" if with_token.returncode == 0 else "\n".join(
        box.run(f"./afbox.run logs {s} -l 40", check=False).stdout for s in ("xcache", "origin"))
    assert with_token.returncode == 0 and int(with_token.stdout.split()[-1]) == 25_000, \
        with_token.stderr[-1500:] + logs
    without = box.run(f"{rt(info)}/usr/bin/python3 -c \"$(cat <<'EOF'\n{code}\nEOF\n)\" none", check=False)
    assert without.returncode != 0 and "25000" not in without.stdout


def test_env_create_builds_on_the_bundled_python_offline(box, info):
    p = box.run("./afbox.run env create t1 dask", timeout=600)
    assert "environment 't1' built" in p.stdout, p.stdout + p.stderr
    env = next(e for e in json.loads(box.run("./afbox.run env list --json").stdout) if e["name"] == "t1")
    probe = box.run(f"{env['path']}/bin/python -c 'import sys, distributed, XRootD, ipykernel; print(sys.base_prefix)'")
    assert probe.stdout.strip() == f"{rt(info)}/usr"


def test_a_carried_environment_builds_offline_without_its_requirements(box, info):
    assert any(p.startswith("tabulate==") for p in info["envs"]["agc"])
    p = box.run("./afbox.run env create agc", timeout=600)
    assert "requirements this bundle carries for 'agc'" in p.stdout and "environment 'agc' built" in p.stdout
    env = next(e for e in json.loads(box.run("./afbox.run env list --json").stdout) if e["name"] == "agc")
    box.run(f"{env['path']}/bin/python -c 'import tabulate, dask, distributed'")


def test_install_puts_afbox_on_path(box):
    p = box.run("./afbox.run install")
    assert ".local/bin/afbox" in p.stdout
    assert box.run("~/.local/bin/afbox status --json | head -c 200").returncode == 0


def test_down_leaves_nothing_running(box):
    box.run("./afbox.run down", timeout=300)
    assert box.processes() == []
    assert json.loads(box.run("./afbox.run status --json").stdout)["state"] == "down"


def test_a_flipped_byte_is_refused(built, info, tmp_path):
    bad = tmp_path / "afbox.run"
    shutil.copy(built, bad)
    middle = 16384 + sum(info["parts"].values()) // 2
    with open(bad, "r+b") as f:
        f.seek(middle)
        byte = f.read(1)
        f.seek(middle)
        f.write(bytes([byte[0] ^ 0x01]))
    home = tmp_path / "home"
    p = subprocess.run([str(bad), "--version"], capture_output=True, text=True, timeout=300,
                       env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "AFBOX_HOME": str(home)})
    assert p.returncode == 1 and "is damaged" in p.stderr and "nothing was unpacked" in p.stderr, p.stderr
    assert sorted(os.listdir(home / "rt")) == [".lock"]


def test_an_older_glibc_is_told_not_crashed(built, info, tmp_path):
    old = Box(debootstrap("bullseye"), tmp_path / "box")
    try:
        old.put(built, "afbox.run")
        have = old.run("getconf GNU_LIBC_VERSION").stdout.split()[-1]
        p = old.run("./afbox.run up", check=False)
    finally:
        old.close()
    assert p.returncode == 1
    assert f"needs glibc {info['glibc']} or newer" in p.stderr and f"this system has glibc {have}" in p.stderr, p.stderr
