"""Headless Chromium screenshots of every page at 1440x900: `python scripts/screenshots.py URL OUTDIR`.

Set PULSE_USER / PULSE_PASSWORD to sign in first.

Used to look at the pages as a person does (see README). Waits for the graphs to render.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.common.by import By

PAGES = ["/", "/groups", "/products", "/customers", "/forecast", "/operations"]


def driver() -> webdriver.Chrome:
    opts = Options()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--window-size=1440,900", "--hide-scrollbars"):
        opts.add_argument(flag)
    opts.binary_location = "/usr/bin/chromium"
    return webdriver.Chrome(options=opts)


def main(base: str, outdir: str, pages: list[str], wait: float) -> None:
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    d = driver()
    try:
        if os.environ.get("PULSE_USER"):
            d.get(base.rstrip("/") + "/login")
            d.find_element(By.ID, "username").send_keys(os.environ["PULSE_USER"])
            d.find_element(By.ID, "password").send_keys(os.environ["PULSE_PASSWORD"])
            d.find_element(By.ID, "login-submit").click()
            time.sleep(1)
        for page in pages:
            d.get(base.rstrip("/") + page)
            time.sleep(wait)
            height = d.execute_script("return document.body.scrollHeight")
            d.set_window_size(1440, max(900, min(height, 3000)))
            time.sleep(0.5)
            name = (page.strip("/") or "overview") + ".png"
            d.save_screenshot(str(out / name))
            print(out / name, height)
            d.set_window_size(1440, 900)
    finally:
        d.quit()


if __name__ == "__main__":
    pages = sys.argv[3].split(",") if len(sys.argv) > 3 else PAGES
    main(sys.argv[1], sys.argv[2], pages, float(sys.argv[4]) if len(sys.argv) > 4 else 6)
