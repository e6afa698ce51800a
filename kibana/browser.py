"""Headless Chromium, for looking at the HTML report the way a person would (tests, screenshot)."""

from __future__ import annotations

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


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


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


def dump_dom(target: Path | str) -> tuple[str, list[str]]:
    """The DOM after the page's scripts ran, and the console messages."""
    return run(target, "--dump-dom")


def screenshot(target: Path | str, png: Path, width: int = 1400, height: int = 2400) -> list[str]:
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    _, console = run(target, f"--screenshot={png}", f"--window-size={width},{height}")
    if not png.exists():
        raise RuntimeError(f"chromium wrote no screenshot to {png}")
    return console
