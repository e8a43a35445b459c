"""`ilr view RUN_DIR`: write a run's viewer page (every question, one column per model), optionally with a
headless-Chromium screenshot."""

from __future__ import annotations

import argparse
from pathlib import Path

from experiments.reports.viewer import PAGE_NAME, Steps, write_viewer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dir", type=Path, help="a folder written by `ilr eval --out`, `ilr train` or `ilr compare`"
    )
    parser.add_argument("--out", type=Path, default=None, help=f"page to write (default RUN_DIR/{PAGE_NAME})")
    parser.add_argument(
        "--steps",
        default=":",
        metavar="START:STOP",
        help="training steps to show (default all, up to a page budget; e.g. 100:200, :50, none)",
    )
    parser.add_argument(
        "--screenshot",
        type=Path,
        default=None,
        metavar="PNG",
        help="also render the page in headless Chromium and save a screenshot (needs chromium installed)",
    )


def run(args: argparse.Namespace) -> int:
    page = write_viewer(args.run_dir, args.out, Steps.parse(args.steps))
    print(f"wrote {page} (open it in any browser; it needs no server or network)")
    if args.screenshot is not None:
        from experiments.reports.viewer_browser import Browser

        with Browser() as browser:
            browser.open(page)
            browser.screenshot(args.screenshot)
        print(f"wrote {args.screenshot}")
    return 0
