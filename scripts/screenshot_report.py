"""Render a study's ``report.html`` headless and save its first screen as a PNG: the report as a reader
first sees it. Optional, not part of the test suite.

    python scripts/screenshot_report.py RESULTS_DIR/report/report.html [--out first_screen.png]
        [--width 1280] [--height 900]

Uses Debian's Chromium (``apt-get install -y chromium``, about 270 MB); as root it runs with
``--no-sandbox``. Prints the PNG's path; exits 2 with one line when Chromium or the page is missing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def browser() -> str | None:
    """The first Chromium-like browser on PATH, or None."""
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def screenshot(page: Path, out: Path, width: int, height: int, timeout_s: float = 120) -> Path:
    """Render ``page`` at ``width`` × ``height`` CSS pixels into ``out``; return ``out``.

    Raises:
        FileNotFoundError: no browser on PATH.
        RuntimeError: the browser ended without writing the PNG.
    """
    exe = browser()
    if exe is None:
        raise FileNotFoundError(
            "no Chromium on PATH: install it with `apt-get install -y chromium` (~270 MB)"
        )
    with tempfile.TemporaryDirectory(prefix="leafbn-chromium-") as profile:
        command = [
            exe, "--headless", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
            f"--window-size={width},{height}", f"--screenshot={out.resolve()}", page.resolve().as_uri(),
        ]  # fmt: skip
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.insert(1, "--no-sandbox")  # Chromium refuses to run as root inside its sandbox
        out.unlink(missing_ok=True)
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    if not out.is_file():
        raise RuntimeError(
            f"{exe} wrote no screenshot (exit {done.returncode}): {done.stderr.strip()[-300:]}"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/screenshot_report.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "page", type=Path, help="a report.html (or a study folder holding report/report.html)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="the PNG (default: first_screen.png beside it)"
    )
    parser.add_argument("--width", type=int, default=1280, help="viewport width, CSS pixels (default 1280)")
    parser.add_argument("--height", type=int, default=900, help="viewport height, CSS pixels (default 900)")
    args = parser.parse_args(argv)
    page = args.page / "report" / "report.html" if args.page.is_dir() else args.page
    if not page.is_file():
        print(f"error: {page}: no such report.html (write it with study/report.py)", file=sys.stderr)
        return 2
    if not (100 <= args.width <= 8000 and 100 <= args.height <= 8000):
        print(
            f"error: --width/--height {args.width}x{args.height}: each must be in 100..8000", file=sys.stderr
        )
        return 2
    try:
        path = screenshot(page, args.out or page.with_name("first_screen.png"), args.width, args.height)
    except (FileNotFoundError, RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
