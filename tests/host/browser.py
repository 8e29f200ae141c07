"""A headless Chromium for the tests: Debian's chromium driven by Selenium through Debian's
chromium-driver, fully offline (no driver download, no network use by the page).

    reason = unavailable()            # None, or why no browser can run here (a skip reason)
    with chromium() as driver:
        seconds = open_page(driver, path)   # waits for document.body.dataset.ready == "1"
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

INSTALL = "apt-get install chromium chromium-driver; pip install selenium (the test extra)"
CHROMIUM = ("chromium", "chromium-browser")
DRIVER = ("chromedriver",)


def _which(names: tuple[str, ...]) -> str | None:
    for name in names:
        found = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None)
        if found:
            return found
    return None


def unavailable() -> str | None:
    """Why a headless Chromium cannot be driven here, or None when it can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return f"selenium is not installed: {INSTALL}"
    if _which(CHROMIUM) is None:
        return f"chromium is not installed: {INSTALL}"
    if _which(DRIVER) is None:
        return f"chromedriver is not installed: {INSTALL}"
    return None


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A headless Chromium WebDriver with a fixed window size, quit afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")      # Selenium Manager: never download anything
    options = webdriver.ChromeOptions()
    options.binary_location = _which(CHROMIUM) or ""
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--force-device-scale-factor=1",
                "--allow-file-access-from-files", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=_which(DRIVER) or ""))
    try:
        driver.set_page_load_timeout(300)
        yield driver
    finally:
        driver.quit()


def open_page(driver: Any, path: Path, timeout: float = 120.0) -> float:
    """Load a file:// page and wait until its script says it is ready; the seconds it took."""
    began = time.monotonic()
    driver.get(Path(path).resolve().as_uri())
    while driver.execute_script("return document.body && document.body.dataset.ready") != "1":
        if time.monotonic() - began > timeout:
            errors = [e for e in _console(driver) if e.get("level") == "SEVERE"]
            raise TimeoutError(f"{path} not ready after {timeout:.0f} s; console errors: {errors}")
        time.sleep(0.02)
    return time.monotonic() - began


def _console(driver: Any) -> list[dict[str, Any]]:
    try:
        return list(driver.get_log("browser"))
    except Exception:       # not every driver keeps the console log
        return []
