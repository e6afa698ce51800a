"""Headless Chromium, for looking at the HTML report the way a person would (tests, screenshot)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--enable-logging=stderr", "--v=0")
# Chromium logs every console message of the page (log, warning, error, uncaught exception) as
# "[pid:tid:date:INFO:CONSOLE(line)] "message", source: url (line)" on stderr with these flags.
CONSOLE = re.compile(r":CONSOLE[:(]\d*\)?\]\s*(.*)")
# The width the report is laid out for (its charts are drawn at their panels' size at this width).
WIDTH = 1400
DEBIAN_PACKAGE = "chromium"


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def ensure_chromium() -> str:
    """Chromium's path, installing Debian's package first when there is none (root and apt-get
    needed). Raises RuntimeError saying what failed, never returns without a browser."""
    found = find_chromium()
    if found:
        return found
    if not shutil.which("apt-get"):
        raise RuntimeError(f"no Chromium and no apt-get to install it: install Chromium ({' or '.join(CANDIDATES)})")
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        raise RuntimeError(f"no Chromium; installing it needs root: sudo apt-get install -y {DEBIAN_PACKAGE}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    steps = (["apt-get", "update", "-qq"],
             ["apt-get", "install", "-y", "-qq", "--no-install-recommends", DEBIAN_PACKAGE])
    for cmd in steps:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"'{' '.join(cmd)}' did not finish within 20 minutes") from None
        if proc.returncode != 0:
            raise RuntimeError(f"'{' '.join(cmd)}' failed with exit code {proc.returncode}:\n"
                               f"{(proc.stdout + proc.stderr)[-1500:]}")
    found = find_chromium()
    if not found:
        raise RuntimeError(f"apt-get installed '{DEBIAN_PACKAGE}' but no {' / '.join(CANDIDATES)} is on PATH")
    return found


def run(target: Path | str, *args: str, timeout: float = 90.0) -> tuple[str, list[str]]:
    """Load ``target`` (a file path or URL) headless; return (stdout, console messages)."""
    exe = find_chromium()
    if not exe:
        raise FileNotFoundError("no Chromium found (apt-get install chromium)")
    url = Path(target).resolve().as_uri() if not str(target).startswith(("http:", "https:", "file:")) else str(target)
    with tempfile.TemporaryDirectory(prefix="churnstream-chromium-") as profile:
        proc = subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", *args, url], capture_output=True,
                              text=True, timeout=timeout)
    console = [m.group(1) for line in proc.stderr.splitlines() if (m := CONSOLE.search(line))]
    if proc.returncode != 0:
        raise RuntimeError(f"chromium exited with {proc.returncode}: {proc.stderr[-800:]}")
    return proc.stdout, console


def dump_dom(target: Path | str, width: int = WIDTH, height: int = 1000) -> tuple[str, list[str]]:
    """The DOM after the page's scripts ran (laid out in a window of that size), and the console
    messages."""
    return run(target, f"--window-size={width},{height}", "--dump-dom")


def page_height(target: Path | str, width: int = WIDTH) -> int:
    """The height of the whole page laid out at ``width`` (the report writes it into its DOM)."""
    dom, _ = dump_dom(target, width)
    m = re.search(r'data-page-height="(\d+)"', dom)
    if not m:
        raise RuntimeError("the page did not report its height (data-page-height)")
    return int(m.group(1))


def screenshot(target: Path | str, png: Path, width: int = WIDTH, height: int | None = None) -> list[str]:
    """A PNG of the page at ``width``; the whole page when ``height`` is not given."""
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    height = height or page_height(target, width)
    _, console = run(target, f"--screenshot={png}", f"--window-size={width},{height}")
    if not png.exists():
        raise RuntimeError(f"chromium wrote no screenshot to {png}")
    return console
