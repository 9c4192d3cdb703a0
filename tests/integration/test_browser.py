"""First contact in a real browser: headless Chromium (Debian) driven by Selenium against a real facility.

The login link under 127.0.0.1 and under localhost renders JupyterLab, and the Dask panel's plots open
(not the dashboard's 401); "+ NEW" in the panel makes a gateway cluster that computes; a notebook cell
run through the UI computes on the facility's workers; the login form takes a facility token and
refuses Jupyter's own; a fresh profile gets the dashboard's 401 page. Every step leaves a screenshot
under the test's temp dir (their paths are in any failure)."""
from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from browser import Browser, Shots, missing
from harness import afbox, isolated_env, shared_tmpdir, xrootd_available

pytestmark = pytest.mark.integration
if reason := missing():
    pytest.skip(reason, allow_module_level=True)
if not xrootd_available():
    pytest.skip("xrootd not installed (apt-get install xrootd-server xrootd-server-plugins)", allow_module_level=True)

from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402

NAME, PORT_BASE = "web", 26400
LAB, DASHBOARD = PORT_BASE + 8, PORT_BASE + 7
TIMINGS: dict[str, float] = {}
# bokeh draws its figures on canvases inside shadow roots
DRAWN = """const inside = root => !!root.querySelector('canvas') ||
  [...root.querySelectorAll('*')].some(e => e.shadowRoot && inside(e.shadowRoot));
return inside(document);"""


@pytest.fixture(scope="module")
def fac():
    base = shared_tmpdir("afbox-browser-")
    # a Jupyter token in the environment, as stock Jupyter would take: with [auth] it must open nothing
    own = secrets.token_hex(24)
    env = isolated_env(base, PORT_BASE) | {"XDG_DATA_HOME": str(base / "data"), "JUPYTER_TOKEN": own}
    out = afbox("up", "--profile", "ci", "--name", NAME, "--port-base", str(PORT_BASE), "--workdir", str(base / "work"),
                env=env, timeout=240).stdout
    link = re.search(r"JupyterLab\s+(http://\S+\?token=\S+)", out)[1]
    yield dict(env=env, link=link, token=link.split("?token=", 1)[1], own=own, base=base)
    afbox("down", "--name", NAME, env=env, check=False)
    shutil.rmtree(base, ignore_errors=True)
    print("\nbrowser timings (s):", json.dumps({k: round(v, 2) for k, v in TIMINGS.items()}))


@pytest.fixture
def browser(tmp_path):
    b = Browser(Shots(tmp_path))
    yield b
    b.close()


def on_host(link: str, host: str, reset: bool = False) -> str:
    """The login link under another host name (and, with reset, with JupyterLab's default layout)."""
    return link.replace("127.0.0.1", host, 1) + ("&reset" if reset else "")


def open_dask_panel(b: Browser) -> None:
    tab = b.css('.lm-TabBar-tab[data-id="dask-dashboard-launcher"]')
    if "lm-mod-current" not in tab.get_attribute("class"):  # a click on the open panel's tab closes it
        b.click(tab)
    b.css("#dask-dashboard-launcher .dask-DashboardListing-item")


def open_plot(b: Browser, label: str):
    """Click a plot of the Dask panel; the iframe it opens, once its page has drawn a figure."""
    route = "individual-" + label.lower().replace(" ", "-")
    b.click(b.css(f'#dask-dashboard-launcher button[value="{label}"]'))
    # a new tab, or the one JupyterLab kept from an earlier visit, brought to the front
    frame = b.wait(lambda d: next((f for f in d.find_elements(By.CSS_SELECTOR, "#jp-main-dock-panel iframe")
                                   if f.get_attribute("src").endswith(route) and f.is_displayed()), None),
                   30, f"{label} opened")
    src = frame.get_attribute("src")
    b.driver.switch_to.frame(frame)
    try:
        b.wait(lambda d: d.execute_script(DRAWN) or "token" in d.find_element(By.TAG_NAME, "body").text,
               60, f"{label} drawn")
        body = b.driver.find_element(By.TAG_NAME, "body").text
        title = b.driver.execute_script("return document.title")  # the frame's, not the page's
    finally:
        b.driver.switch_to.default_content()
    return src, title, body


def clusters(b: Browser) -> dict[str, str]:
    """The Dask panel's CLUSTERS list: title -> its text."""
    out = {}
    for item in b.driver.find_elements(By.CSS_SELECTOR, "li.dask-ClusterListingItem"):
        try:
            out[item.find_element(By.CSS_SELECTOR, ".dask-ClusterListingItem-title").text] = item.text
        except StaleElementReferenceException:  # the list re-rendered meanwhile: the caller asks again
            return {}
    return out


def gateway_item(b: Browser):
    return b.wait(lambda d: next((i for i in d.find_elements(By.CSS_SELECTOR, "li.dask-ClusterListingItem")
                                  if i.text.startswith("GatewayCluster")), None), 30, "the gateway cluster's entry")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_login_link_opens_jupyterlab_and_the_dask_panel_plots(fac, browser, host):
    with browser.step(f"login-link-{host}"):
        TIMINGS[f"link_to_rendered_lab_{host}"] = browser.open_lab(on_host(fac["link"], host))
    with browser.step("dask-panel"):
        open_dask_panel(browser)
        labels = [e.get_attribute("value") for e in browser.driver.find_elements(
            By.CSS_SELECTOR, "#dask-dashboard-launcher .dask-DashboardListing-item button")]
        assert "Task Stream" in labels and "Progress" in labels, labels
    with browser.step("task-stream"):
        src, title, body = open_plot(browser, "Task Stream")
        # under JupyterLab's own origin, whatever host name it was opened by
        assert src == f"http://{host}:{LAB}/proxy/dask/default/individual-task-stream", src
        assert title == "Dask: TaskStream" and "token" not in body, (title, body[:300])
    with browser.step("clusters-list"):
        listed = browser.wait(lambda d: clusters(browser), 30, "the CLUSTERS list")
        assert "default" in listed and "Number of Workers: 2" in listed["default"], listed
    with browser.step("no-news-question"):
        # an offline facility neither asks about Jupyter news nor fetches it
        page = browser.driver.find_element(By.TAG_NAME, "body").text
        assert "Jupyter news" not in page, page[-500:]
        settings = browser.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch('/lab/api/settings/@jupyterlab/apputils-extension:notification').then(r => r.json())"
            ".then(j => done(j.settings))")
        assert settings == {"fetchNews": "false", "checkForUpdates": False}, settings


def test_new_cluster_from_the_dask_panel_computes(fac, browser):
    with browser.step("lab"):
        browser.open_lab(on_host(fac["link"], "localhost", reset=True))
        open_dask_panel(browser)
        browser.wait(lambda d: "default" in clusters(browser), 30, "the facility's own cluster listed")
    with browser.step("new-cluster"):
        browser.click(browser.css('jp-button[data-command="dask:launch-cluster"]'))
        listed = browser.wait(lambda d: next((t for k, t in clusters(browser).items() if k.startswith("GatewayCluster")
                                              and "Number of Workers: 1" in t), None), 120, "a gateway cluster, 1 worker")
        assert "gateway://" in listed and "/proxy/dask-gateway/clusters/" in listed, listed
        browser.click(gateway_item(browser))  # in view for the screenshot, and the panel's active cluster
    with browser.step("computes"):
        # the cluster is the logged-in user's: their token lists it at the gateway, and it computes
        code = ("import afbox; g = afbox.gateway(%r); [c] = g.list_clusters();"
                "cl = g.connect(c.name).get_client(); print(cl.submit(sum, [1, 2, 3]).result()); cl.close()" % NAME)
        p = subprocess.run([sys.executable, "-c", code], env=fac["env"], capture_output=True, text=True, timeout=120)
        assert p.stdout.strip().splitlines()[-1:] == ["6"], p.stderr
    with browser.step("its-dashboard"):
        src, title, body = open_plot(browser, "Workers")
        assert "/proxy/dask-gateway/clusters/" in src and title.startswith("Dask: ") and "token" not in body, (src, title)
    with browser.step("shutdown"):
        browser.click(gateway_item(browser).find_element(By.CSS_SELECTOR, ".dask-ClusterListingItem-stop"))
        browser.wait(lambda d: (lambda c: c and not any(k.startswith("GatewayCluster") for k in c))(clusters(browser)),
                     60, "the gateway cluster gone")


def test_a_notebook_cell_computes_on_the_facility_workers(fac, browser):
    code = ("import distributed; c = distributed.Client(); "
            "print(c.submit(lambda x: (distributed.get_worker().name, 7 * x), 6).result())")
    with browser.step("notebook"):
        browser.open_lab(on_host(fac["link"], "127.0.0.1", reset=True))
        browser.click(browser.css('.jp-LauncherCard[data-category="Notebook"]'))
        browser.wait(lambda d: "Idle" in d.find_element(By.ID, "jp-main-statusbar").text, 90, "the kernel idle")
    with browser.step("typed"):
        for _ in range(10):  # the first cell is drawn anew while the notebook settles
            try:
                cell = browser.css(".jp-Notebook .jp-Cell .cm-content")
                cell.click()
                cell.send_keys(code)
                break
            except StaleElementReferenceException:
                continue
        assert browser.css(".jp-Notebook .jp-Cell .cm-content").text == code
    with browser.step("ran"):
        ActionChains(browser.driver).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()
        out = browser.css(".jp-Notebook .jp-Cell .jp-OutputArea-output", 90).text
        assert re.fullmatch(r"\('dask-worker-[12]', 42\)", out), out


def test_login_form_takes_a_facility_token_and_refuses_jupyters_own(fac, browser):
    def submit(token: str) -> None:
        field = browser.css("#password_input")
        field.clear()
        field.send_keys(token)
        browser.click(browser.css("#login_submit"))

    with browser.step("login-form"):
        browser.driver.get(f"http://127.0.0.1:{LAB}/lab")
        browser.css("#password_input")
        assert browser.driver.title == "Log in to this afbox facility"
        hint = browser.css("#afbox-login-hint").text
        assert "afbox token" in hint and "afbox up" in hint and "jupyter server list" not in hint, hint
    with browser.step("jupyters-own-token-refused"):
        submit(fac["own"])
        assert browser.css("#afbox-login-error").text == "Invalid credentials"
        r = httpx.get(f"http://127.0.0.1:{LAB}/api/status", headers={"Authorization": f"token {fac['own']}"})
        assert r.status_code == 403
    with browser.step("facility-token-accepted"):
        submit(fac["token"])
        browser.wait_lab()
    with browser.step("dashboards-open-too"):
        open_dask_panel(browser)
        _, title, body = open_plot(browser, "Workers")
        assert title.startswith("Dask: ") and "dask-worker-1" in body and "token" not in body, body[:300]


def test_a_fresh_profile_gets_the_dashboards_401_page(fac, browser):
    url = f"http://127.0.0.1:{DASHBOARD}/status"
    with browser.step("dashboard-401"):
        browser.driver.get(url)
        assert browser.driver.title == "Dask dashboard: log in first"
        text = browser.css("h1").text + browser.driver.find_element(By.TAG_NAME, "body").text
        assert "needs a facility token" in text and "afbox up" in text and "$(" not in text, text
        assert httpx.get(url, headers={"Accept": "text/html"}).status_code == 401
    with browser.step("proxied-dashboard-asks-to-log-in"):
        browser.driver.get(f"http://localhost:{LAB}/proxy/dask/default/status")
        browser.css("#password_input")
        assert "/login" in browser.driver.current_url


def test_screenshots_are_kept_under_the_tests_temp_dir(tmp_path):
    """The evidence a failure points at: files named after their steps, in order."""
    class Page:
        def save_screenshot(self, path):
            Path(path).write_bytes(b"\x89PNG")

    shots = Shots(tmp_path)
    with shots.step(Page(), "first"):
        pass
    with pytest.raises(AssertionError, match=r"step 'second' failed: ValueError: boom\nscreenshots:\n  .*01-first.png"):
        with shots.step(Page(), "second"):
            raise ValueError("boom")
    assert [p.name for p in shots.paths] == ["01-first.png", "02-second-FAILED.png"]
