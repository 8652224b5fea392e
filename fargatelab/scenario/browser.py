"""A real headless browser for the steps a workshop does in one: open a page, let its scripts run, look at it.

Chromium (Debian's ``chromium``, or ``$FARGATE_LABS_CHROMIUM``) renders the page; the DOM it ends with tells
whether the page came alive (the 2048 board has its first tiles), and its screenshot goes into the report.
A name that is not in public DNS (a local ALB) is mapped to its address with Chromium's own
``--host-resolver-rules``, as a user would start their browser.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

__all__ = ["Page", "find_browser", "open_page"]


def find_browser() -> str | None:
    """The Chromium to use: ``$FARGATE_LABS_CHROMIUM``, else ``chromium`` (or ``chromium-browser``) on PATH."""
    return (os.environ.get("FARGATE_LABS_CHROMIUM") or shutil.which("chromium")
            or shutil.which("chromium-browser"))


@dataclass(frozen=True)
class Page:
    dom: str
    screenshot: Path


def _chromium(browser: str, url: str, hostname: str, address: str | None, *extra: str,
              budget: int = 4000) -> list[str]:
    args = [browser, "--headless", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
            "--window-size=560,760", f"--virtual-time-budget={budget}"]
    if os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium's sandbox refuses root
    if address:
        args.append(f"--host-resolver-rules=MAP {hostname} {address}")
    return [*args, *extra, url]


def open_page(url: str, hostname: str, address: str | None, screenshot: Path, browser: str,
              timeout: float = 60, ready: Callable[[str], bool] = lambda dom: True) -> Page:
    """Open ``url`` (for ``hostname``, served at ``address`` when given), let its scripts run until the DOM
    is ``ready`` (three looks, each letting the scripts run twice as long as the one before: on a busy
    machine the page's scripts may not have run within the first), and return that DOM and a screenshot."""
    profile = screenshot.parent / f".chromium-{screenshot.stem}"
    common = (f"--user-data-dir={profile}",)
    for budget in (4000, 8000, 16000):
        dom = subprocess.run(_chromium(browser, url, hostname, address, *common, "--dump-dom", budget=budget),
                             capture_output=True, text=True, timeout=timeout)
        if dom.returncode != 0:
            raise RuntimeError(f"{browser} could not open {url}: {dom.stderr.strip().splitlines()[-1:]}")
        if ready(dom.stdout):
            break
    shot = subprocess.run(_chromium(browser, url, hostname, address, *common, f"--screenshot={screenshot}",
                                    budget=budget), capture_output=True, text=True, timeout=timeout)
    shutil.rmtree(profile, ignore_errors=True)
    if shot.returncode != 0 or not screenshot.exists():
        raise RuntimeError(f"{browser} took no screenshot of {url}: {shot.stderr.strip().splitlines()[-1:]}")
    return Page(dom.stdout, screenshot)
