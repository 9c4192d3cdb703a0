"""A real headless Chromium (Debian's `chromium` + `chromium-driver`) driven by Selenium, with a fresh
profile each time, and screenshots of each step kept as evidence (their paths named in any failure)."""
from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from pathlib import Path

CHROMIUM = ("chromium", "chromium-browser")
INSTALL = "apt-get install chromium chromium-driver (./install.sh --dev)"


def missing() -> str | None:
    """Why no browser test can run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install -e '.[dev]'"
    if not any(shutil.which(c) for c in CHROMIUM):
        return f"Chromium is not installed: {INSTALL}"
    if not shutil.which("chromedriver"):
        return f"chromedriver is not installed: {INSTALL}"
    return None


def chromium(profile: Path, width: int = 1400, height: int = 1100):
    """A headless Chromium with its own empty profile; nothing is downloaded (driver and browser from
    the system)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = next(shutil.which(c) for c in CHROMIUM if shutil.which(c))
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", f"--user-data-dir={profile}", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    driver.set_page_load_timeout(60)
    return driver


class Shots:
    """Screenshots of one test, numbered in the order taken, under the test's temp dir."""

    def __init__(self, root: Path):
        self.root, self.paths = root, []

    def take(self, driver, name: str) -> Path:
        path = self.root / f"{len(self.paths) + 1:02d}-{name}.png"
        driver.save_screenshot(str(path))
        self.paths.append(path)
        return path

    @contextlib.contextmanager
    def step(self, driver, name: str):
        """One step: a screenshot after it; on failure one of the failed state, and every screenshot's
        path in the error."""
        try:
            yield
        except Exception as e:
            with contextlib.suppress(Exception):
                self.take(driver, f"{name}-FAILED")
            listing = "\n  ".join(str(p) for p in self.paths)
            raise AssertionError(f"step {name!r} failed: {type(e).__name__}: {e}\nscreenshots:\n  {listing}") from e
        self.take(driver, name)


class Browser:
    """A fresh profile, its driver and its screenshots."""

    def __init__(self, shots: Shots):
        self.profile = Path(tempfile.mkdtemp(prefix="afbox-chromium-"))
        self.driver = chromium(self.profile)
        self.shots = shots

    def step(self, name: str):
        return self.shots.step(self.driver, name)

    def wait(self, condition, timeout: float = 60, what: str = ""):
        from selenium.webdriver.support.ui import WebDriverWait
        return WebDriverWait(self.driver, timeout, poll_frequency=0.2).until(condition, what)

    def css(self, selector: str, timeout: float = 60):
        """The first element matching selector, once there."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as EC
        return self.wait(EC.presence_of_element_located((By.CSS_SELECTOR, selector)), timeout, selector)

    def click(self, element) -> None:
        """Into view first: long side panels hide buttons below their fold."""
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
        element.click()

    def open_lab(self, url: str, timeout: float = 90) -> float:
        """Open url and wait until JupyterLab has rendered (its splash gone, its main area showing a
        tab); the seconds that took."""
        t0 = time.monotonic()
        self.driver.get(url)
        self.wait_lab(timeout)
        return time.monotonic() - t0

    def wait_lab(self, timeout: float = 90) -> None:
        self.wait(lambda d: not d.find_elements("css selector", "#jupyterlab-splash")
                  and d.find_elements("css selector", ".jp-LabShell #jp-main-dock-panel .lm-TabBar-tab"),
                  timeout, "JupyterLab rendered")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.driver.quit()
        shutil.rmtree(self.profile, ignore_errors=True)
