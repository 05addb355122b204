"""Render RUN_DIR/report/index.html in headless Chromium: every image decodes, nothing is blank.

    python scripts/check_report.py runs/ml-100k

The page records on <body data-images-loaded="ok/total"> how many of its <img> decoded with a
non-zero natural width (a tiny inline script, see tslrec.reporting.html); this reads that back
from the rendered DOM, then takes a screenshot and checks that its pixels vary. Exit status 0 if
both checks pass, 1 if one fails, 2 if Chromium or the report is missing.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from matplotlib.image import imread

CHROMIUM = "chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000"]
WINDOW = "1400,3000"
MIN_PIXEL_STD = 0.02  # of [0, 1] intensities; a blank or single-colour page is ~0


def chromium(*args: str) -> str:
    done = subprocess.run(
        [CHROMIUM, *FLAGS, *args], capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout


def images_loaded(page: Path) -> tuple[int, int]:
    """(decoded, total) <img> elements, as the page's own load script counted them."""
    dom = chromium("--dump-dom", page.as_uri())
    found = re.search(r'data-images-loaded="(\d+)/(\d+)"', dom)
    if not found:
        raise SystemExit("FAIL: the page never set data-images-loaded (script did not run)")
    return int(found[1]), int(found[2])


def screenshot_std(page: Path, png: Path) -> float:
    """Standard deviation of the screenshot's pixel intensities."""
    chromium(f"--screenshot={png}", f"--window-size={WINDOW}", page.as_uri())
    return float(np.asarray(imread(png))[..., :3].std())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run directory with report/index.html")
    parser.add_argument("--screenshot", type=Path, help="keep the screenshot at this path")
    args = parser.parse_args()
    page = args.run_dir.resolve() / "report" / "index.html"
    if shutil.which(CHROMIUM) is None:
        print("chromium not found; install it with: sudo apt-get install -y chromium")
        return 2
    if not page.is_file():
        print(f"{page}: no report (run `tslrec report` first)")
        return 2
    ok, total = images_loaded(page)
    with tempfile.TemporaryDirectory() as tmp:
        png = args.screenshot.resolve() if args.screenshot else Path(tmp) / "report.png"
        std = screenshot_std(page, png)
    print(f"images decoded: {ok}/{total}")
    print(f"screenshot {WINDOW}: pixel std {std:.3f} (blank below {MIN_PIXEL_STD})")
    passed = total > 0 and ok == total and std >= MIN_PIXEL_STD
    print("OK" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
