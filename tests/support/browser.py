"""Headless Chromium (the distribution's package, with its chromedriver) through Selenium, for
the explorer's browser tests and the documentation's screenshots."""

from __future__ import annotations

import shutil

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
DRIVER = "chromedriver"


def missing() -> str | None:
    """Why a headless browser cannot run here, or None when it can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    if not any(shutil.which(name) for name in CHROMIUM):
        return "no Chromium (Debian: apt-get install chromium chromium-driver; .ci/run installs them)"
    if not shutil.which(DRIVER):
        return "no chromedriver (Debian: apt-get install chromium-driver; .ci/run installs it)"
    return None


def headless_chromium(width: int = 1360, height: int = 1000):
    """A Selenium WebDriver on headless Chromium; the caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = next(shutil.which(n) for n in CHROMIUM if shutil.which(n))
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--window-size={width},{height}", "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which(DRIVER)), options=options)


def full_page_screenshot(driver, path) -> None:
    """The whole page as a PNG (the window grown to the page's height first)."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, min(max(height + 40, 600), 4000))
    driver.save_screenshot(str(path))
