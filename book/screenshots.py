"""PNG screenshots of every page of the built book, for reviewers.

    python -m book.screenshots                        # _build/book/html -> screenshots/*.png
    python -m book.screenshots --site DIR --out DIR --width 1280

Each page is served from 127.0.0.1, opened in headless Chromium (Debian's ``chromium``),
left to finish (images loaded, MathJax typeset) and captured whole. Build the book first
(``make book``); ``make screenshots`` does both.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from book.browser import Browser, find_chromium, serve
from book.build import DEFAULT_OUT, ROOT


def site_pages(site: Path) -> list[str]:
    """The book's own pages, in reading order: landing page, notebooks, back matter."""
    pages = ["index.html"]
    pages += sorted(p.relative_to(site).as_posix() for p in (site / "notebooks").glob("*.html"))
    pages += sorted(p.name for p in site.glob("*.html") if p.name not in {"index.html", "genindex.html", "search.html"})
    return pages


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--site", type=Path, default=DEFAULT_OUT / "html", help="the built book")
    p.add_argument("--out", type=Path, default=ROOT / "screenshots", help="where PNGs go")
    p.add_argument("--width", type=int, default=1280, help="viewport width in CSS pixels")
    args = p.parse_args(argv)
    if not (args.site / "index.html").is_file():
        print(f"screenshots: no book at {args.site}: run `make book` first", file=sys.stderr)
        return 1
    if not find_chromium():
        print("screenshots: Chromium not found: apt-get install chromium", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with serve(args.site) as base, Browser() as browser:
        page = browser.new_page(width=args.width)
        for rel in site_pages(args.site):
            page.goto(f"{base}/{rel}")
            page.settle()
            name = rel.removesuffix(".html").replace("/", "-") + ".png"
            written = page.screenshot(args.out / name)
            problems = page.problems()
            parts = f" (+{len(written) - 1} more parts: the page is long)" if len(written) > 1 else ""
            print(f"  {rel} -> {written[0]}{parts}" + (f"  ({'; '.join(problems)})" if problems else ""))
    print(f"screenshots: {args.out} ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
