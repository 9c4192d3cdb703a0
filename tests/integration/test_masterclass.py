"""A class on one box, as root (one unix user and cgroup per student): 5 students log in through the
hub's real login form, get their server, run cells over the kernel's websocket, a Dask sum on their own
gateway cluster and a read of the class file through the XCache; they cannot reach each other; codes
work once and guessing is throttled; the culler stops an idle server; down/up keeps homes."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import shutil
import ssl
import stat
import time
from pathlib import Path

import httpx
import jwt
import pytest
from harness import afbox, isolated_env, shared_tmpdir, wait_for, write_root_file, xrootd_available
from hubclient import LoginRefused, Student

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="the unix-user path needs root (the bwrap path is tested "
                                                           "in test_masterclass_bwrap.py)"),
              pytest.mark.skipif(not xrootd_available(), reason="xrootd not installed (apt-get install xrootd-server)")]

NAME, BASE = "klass", 28000
STUDENTS = [f"student{i:02d}" for i in range(1, 6)]
PASSWORD = "a-good-password"
IDLE = 60   # seconds: the culler's timeout in this class

CELL_WHO = """import pwd, os, base64, json
tok = open(os.environ["BEARER_TOKEN_FILE"]).read().split(".")[1]
claims = json.loads(base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4)))
print(json.dumps({"user": pwd.getpwuid(os.getuid()).pw_name, "home": os.getcwd(), "sub": claims["sub"]}))"""
CELL_DASK = """import afbox, dask.array as da, json
client = afbox.client()
total = int(da.arange(100_000, chunks=10_000).sum().compute())
def where():
    import os, pwd
    return {"user": pwd.getpwuid(os.getuid()).pw_name, "cgroup": open("/proc/self/cgroup").read(),
            "parent": open(f"/proc/{os.getppid()}/cmdline").read().replace("\\0", " ")}
print(json.dumps({"sum": total, "cluster": afbox.gateway().list_clusters()[0].name,
                  "workers": list(client.run(where).values())}))"""
CELL_DATA = """import uproot, json
with uproot.open("{url}") as f:
    print(json.dumps({{"x": float(f["Events"]["x"].array(library="np").sum())}}))"""


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


class Klass:
    def __init__(self, base: Path):
        self.base = base
        self.env = isolated_env(base, BASE)
        self.env["XDG_DATA_HOME"] = str(base / "data")
        self.config = base / "class.toml"
        self.config.write_text(f'[masterclass]\nmemory = "1GiB"\nserver_idle = "{IDLE}s"\nconcurrent_spawns = 3\n')
        origin = base / "data" / "afbox" / NAME / "origin"
        self.x_sum = write_root_file(origin / "class" / "events.root", n=50_000, seed=3)
        for d in (origin / "class", origin, origin.parent, origin.parent.parent):
            d.chmod(0o755)

    def up(self) -> None:
        afbox("up", "--profile", "masterclass", "--name", NAME, "--students", str(len(STUDENTS)),
              "--port-base", str(BASE), "--config", str(self.config), "--workdir", str(self.base / "work"),
              env=self.env, timeout=300)
        self.rec = json.loads(Path(self.env["XDG_STATE_HOME"], "afbox", NAME, "facility.json").read_text())
        self.hub = self.rec["services"]["hub"]["urls"]["hub"].removesuffix("/hub/")
        self.ca = str(Path(self.rec["auth"]["identity_dir"]) / "ca.pem")
        self.state = Path(self.env["XDG_STATE_HOME"], "afbox", NAME)

    def down(self) -> None:
        afbox("down", "--name", NAME, env=self.env, check=False)

    def accounts(self) -> dict:
        return json.loads((self.state / "secrets" / "hub" / "accounts.json").read_text())["accounts"]

    def student(self, name: str) -> Student:
        return Student(self.hub, name, self.ca)

    def token(self, name: str) -> str:
        return (self.base / "data" / "afbox" / NAME / "class-run" / name / "data.token").read_text().strip()

    def home(self, name: str) -> Path:
        return self.base / "data" / "afbox" / NAME / "homes" / name

    def class_status(self) -> dict:
        return json.loads(afbox("class", "status", "--json", "--name", NAME, env=self.env).stdout)


@pytest.fixture(scope="module")
def klass():
    k = Klass(shared_tmpdir("afbox-class-"))
    try:
        k.up()
        yield k
    finally:
        k.down()
        afbox("class", "purge", "--yes", "--name", NAME, env=k.env, check=False)  # its unix users too


async def _session(k: Klass, name: str, first: bool = True) -> dict:
    """Log in (with the one-time code the first time), start the server, run the class cells. Again
    (not first): a server left from before is stopped first, so that the culler, which sees activity
    up to a quarter of its timeout late, cannot stop it under the new kernel."""
    s = k.student(name)
    t0 = time.monotonic()
    await (s.login(k.accounts()[name]["code"], PASSWORD) if first else s.login(PASSWORD))
    if not first:
        await s.stop_server()
        t0 = time.monotonic()
    await s.wait_server()
    kernel = await s.start_kernel()
    out = {"who": last_json(await s.run(kernel, CELL_WHO)), "dask": last_json(await s.run(kernel, CELL_DASK)),
           "data": last_json(await s.run(kernel, CELL_DATA.format(url=f"{k.rec['services']['xcache']['urls']['root']}"
                                                                      "/class/events.root"))),
           "seconds": time.monotonic() - t0, "student": s, "kernel": kernel}
    return out


def sessions_of(k: Klass, names: list[str], first: bool = False):
    """Students working at the same time; (results by name, their event loop). Servers idle for
    IDLE seconds are culled, so a test that needs a live kernel logs in again."""
    async def all_of_them():
        return await asyncio.gather(*(_session(k, n, first) for n in names))
    loop = asyncio.new_event_loop()
    return dict(zip(names, loop.run_until_complete(all_of_them()))), loop


@pytest.fixture(scope="module")
def sessions(klass):
    """students 1-3 log in for the first time together (4 and 5 are kept for the code and culler tests)."""
    results, loop = sessions_of(klass, STUDENTS[:3], first=True)
    for r in results.values():
        loop.run_until_complete(r["student"].close())
    loop.close()
    return results


@pytest.fixture
def live(klass, sessions):
    """Students 1-3 again, each with a running server and kernel."""
    results, loop = sessions_of(klass, STUDENTS[:3])
    yield results, loop
    for r in results.values():
        loop.run_until_complete(r["student"].close())
    loop.close()


def test_students_compute_on_their_own_clusters(klass, sessions):
    results = sessions
    clusters = set()
    limits_kind = klass.class_status()["limits"]
    for name, r in results.items():
        assert r["who"] == {"user": f"{NAME}-{name}", "home": str(klass.home(name)), "sub": name}
        assert r["dask"]["sum"] == sum(range(100_000))
        assert r["data"]["x"] == pytest.approx(klass.x_sum)
        clusters.add(r["dask"]["cluster"])
        for w in r["dask"]["workers"]:  # forked by the gateway's forkserver, as the student, in their limits
            assert w["user"] == f"{NAME}-{name}" and "afbox.plugins.forkserver" in w["parent"]
            if limits_kind in ("cgroup-v1", "cgroup-v2"):
                assert any(line.endswith(f"/afbox/{NAME}/{name}") for line in w["cgroup"].splitlines()), w["cgroup"]
        assert (klass.home(name) / "agc_demo.ipynb").exists()  # the class content
        assert stat.S_IMODE(klass.home(name).stat().st_mode) == 0o700
        assert klass.home(name).stat().st_uid == pwd.getpwnam(f"{NAME}-{name}").pw_uid
    assert len(clusters) == len(results)


def test_the_student_token_opens_their_doors_only(klass, live):
    results, _ = live
    a, b = STUDENTS[0], STUDENTS[1]
    token = klass.token(a)
    assert jwt.decode(token, options={"verify_signature": False})["sub"] == a
    bearer = {"Authorization": f"Bearer {token}"}
    with httpx.Client(verify=ssl.create_default_context(cafile=klass.ca), timeout=30) as http:
        assert http.get(f"{klass.hub}/user/{a}/api/status", headers=bearer).status_code == 200
        assert http.get(f"{klass.hub}/user/{b}/api/status", headers=bearer).status_code in (302, 403)
    gateway = klass.rec["services"]["gateway"]["urls"]["gateway"]
    mine, theirs = results[a]["dask"]["cluster"], results[b]["dask"]["cluster"]
    listed = httpx.get(f"{gateway}/api/v1/clusters/", headers=bearer, timeout=30).json()
    assert list(listed) == [mine]
    assert httpx.get(f"{gateway}/api/v1/clusters/{theirs}", headers=bearer, timeout=30).status_code in (403, 404)


def test_a_student_cannot_reach_another(klass, live):
    results, loop = live
    a, b = STUDENTS[0], STUDENTS[1]
    s, kernel = results[a]["student"], results[a]["kernel"]
    theirs = results[b]["dask"]["cluster"]
    b_pids = [p for p in os.listdir("/proc") if p.isdigit() and Path(f"/proc/{p}").stat().st_uid ==
              pwd.getpwnam(f"{NAME}-{b}").pw_uid]
    assert b_pids
    code = f"""import os, json, afbox
out = {{}}
for what, probe in (("home", lambda: os.listdir("{klass.home(b)}")),
                    ("environ", lambda: [open(f"/proc/{{p}}/environ").read() for p in {b_pids!r}]),
                    ("cluster", lambda: afbox.gateway().connect("{theirs}"))):
    try:
        probe()
        out[what] = "reached"
    except Exception as e:
        out[what] = type(e).__name__
print(json.dumps(out))"""
    out = last_json(loop.run_until_complete(s.run(kernel, code)))
    assert out["home"] == "PermissionError"
    assert out["environ"] == "PermissionError"
    assert out["cluster"] != "reached"


def test_going_over_the_memory_limit_stops_that_student_alone(klass, live):
    results, loop = live
    a, b = STUDENTS[0], STUDENTS[2]

    async def a_over_while_b_works():
        # b computes all along (which also keeps the culler, at IDLE, away from b's server)
        done, said = asyncio.Event(), []

        async def b_works():
            while not done.is_set():
                said.append(await results[b]["student"].run(results[b]["kernel"], "print('ok')"))
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(done.wait(), 5)
        worker = asyncio.ensure_future(b_works())
        try:
            with pytest.raises((ConnectionError, RuntimeError, asyncio.TimeoutError)):
                await results[a]["student"].run(results[a]["kernel"], "x = bytearray(1536 * 1024**2)\n"
                                                "x[::4096] = b'1' * len(x[::4096])", timeout=60)
        finally:
            done.set()
            await worker
        said.append(await results[b]["student"].run(results[b]["kernel"], "print('ok')"))
        return said
    said = loop.run_until_complete(a_over_while_b_works())
    st = klass.class_status()
    row = next(s for s in st["students"] if s["name"] == a)
    assert row["oom_kills"] >= 1
    assert all("ok" in out for out in said) and len(said) >= 2
    assert next(s for s in st["students"] if s["name"] == b)["server"] == "ready"

    async def tutor():  # the tutor logs in after it and computes as usual
        t = klass.student("tutor")
        await t.login(klass.accounts()["tutor"]["code"], PASSWORD)
        await t.wait_server()
        out = await t.run(await t.start_kernel(), "print(sum(range(10)))")
        await t.close()
        return out
    assert loop.run_until_complete(tutor()).strip() == "45"


def test_a_one_time_code_works_once_and_guessing_is_throttled(klass):
    name = STUDENTS[3]
    code = klass.accounts()[name]["code"]

    async def scenario():
        s = klass.student(name)
        with pytest.raises(LoginRefused) as short:
            await s.login(code, "short")  # the right code, but no usable new password: the code stays
        assert short.value.status == 400
        await s.login(code, PASSWORD)
        await s.close()
        again = klass.student(name)
        with pytest.raises(LoginRefused) as used:
            await again.login(code, "another-password")
        assert used.value.status == 403
        for _ in range(4):
            with pytest.raises(LoginRefused):
                await again.login("WRONG-CODE-0000")
        with pytest.raises(LoginRefused) as throttled:
            await again.login(PASSWORD)  # even the right password, while throttled
        assert throttled.value.status == 429
        await again.close()
    asyncio.run(scenario())
    assert klass.accounts()[name]["code"] is None


def test_the_culler_stops_an_idle_server(klass):
    name = STUDENTS[4]

    async def start():
        s = klass.student(name)
        await s.login(klass.accounts()[name]["code"], PASSWORD)
        await s.wait_server()
        await s.close()
    asyncio.run(start())
    assert next(s for s in klass.class_status()["students"] if s["name"] == name)["server"] == "ready"
    wait_for(lambda: next(s for s in klass.class_status()["students"] if s["name"] == name)["server"] == "stopped",
             timeout=IDLE + 90, interval=5, what="the culler to stop the idle server")


def test_class_reset_and_sheet(klass, tmp_path):
    out = afbox("class", "reset", STUDENTS[3], "--name", NAME, env=klass.env).stdout
    code = klass.accounts()[STUDENTS[3]]["code"]
    assert code and code in out
    sheet = tmp_path / "sheet.html"
    afbox("class", "sheet", "--name", NAME, "-o", str(sheet), env=klass.env)
    assert stat.S_IMODE(sheet.stat().st_mode) == 0o600
    text = sheet.read_text()
    assert all(f"username <b>{n}</b>" in text for n in STUDENTS)
    pending = sum(1 for n in STUDENTS if klass.accounts()[n]["code"])
    assert code in text and text.count("<svg") == pending  # a QR code only where a code is still usable

    async def login():
        s = klass.student(STUDENTS[3])
        await s.login(code, "yet-another-password")
        await s.close()
    asyncio.run(login())


@pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                    reason="no Chromium (apt-get install chromium chromium-driver)")
def test_a_browser_logs_in_with_the_sheet_link_and_sees_jupyterlab(klass, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    out = afbox("class", "add", "visitor", "--name", NAME, env=klass.env).stdout
    link = next(w for w in out.split() if w.startswith("https://"))  # the sheet's QR link, code after '#'
    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        opts.add_argument(arg)
    opts.accept_insecure_certs = True  # the facility CA is not in the browser's store
    browser = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    try:
        browser.get(link)
        wait = WebDriverWait(browser, 120)
        wait.until(lambda b: b.find_element(By.ID, "password_input").get_attribute("value"))
        assert browser.find_element(By.ID, "username_input").get_attribute("value") == "visitor"
        assert "#code" not in browser.current_url  # the page drops the code from the address
        browser.find_element(By.ID, "new_password_input").send_keys(PASSWORD)
        browser.find_element(By.ID, "login_submit").click()
        wait.until(seen.presence_of_element_located((By.CSS_SELECTOR, "#jp-main-dock-panel, .jp-LabShell")))
        wait.until(lambda b: "agc_demo.ipynb" in b.page_source)  # the class content in the file browser
        assert "/user/visitor/lab" in browser.current_url
        browser.save_screenshot(str(tmp_path / "jupyterlab.png"))
    finally:
        browser.quit()
    assert klass.accounts()["visitor"]["code"] is None


def test_down_and_up_keep_homes_and_accounts(klass, sessions):
    name = STUDENTS[1]

    async def work(cell: str) -> None:
        s = klass.student(name)
        await s.login(PASSWORD)
        await s.wait_server()
        await s.run(await s.start_kernel(), cell)
        await s.close()
    asyncio.run(work("open('notes.txt', 'w').write('my work')\n"
                     "import json; nb = json.load(open('agc_demo.ipynb')); nb['metadata']['edited'] = 1\n"
                     "json.dump(nb, open('agc_demo.ipynb', 'w'))"))
    klass.down()
    assert (klass.home(name) / "notes.txt").read_text() == "my work"
    klass.up()
    asyncio.run(work("print(open('notes.txt').read())"))  # the same password, the same home
    assert (klass.home(name) / "notes.txt").read_text() == "my work"
    assert json.loads((klass.home(name) / "agc_demo.ipynb").read_text())["metadata"]["edited"] == 1
