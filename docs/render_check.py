"""Look at the built documentation in a real browser: every page at 1280 px and 390 px.

    python docs/render_check.py SITE_DIR SCREENSHOT_DIR

Serves SITE_DIR on 127.0.0.1, opens every page in headless Chromium (the
system's: Debian's ``chromium`` package, driven by playwright through
``executable_path``; no browser is downloaded), saves a full-page screenshot
per page and width into SCREENSHOT_DIR, and fails when, on any page:

- a code block's content is wider than the block (the text is clipped or
  hidden behind a scroll bar: ``overwrite=True`` at the end of a line was
  invisible on the quickstart);
- a table cell breaks a word across lines (``ProgressEve`` / ``nt``);
- the page itself scrolls sideways.

It first runs the same checks on a fixture page built to overflow
(``docs/render_fixture.html``) and fails unless they find both faults there,
so a check that silently stopped working cannot pass.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import shutil
import sys
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}
CHROMIUM_ARGS = [
    # Root in a container: no user namespaces for the sandbox.
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
FIXTURE = Path(__file__).resolve().parent / "render_fixture.html"

# Runs in the page: every fault, as {"kind", "where", "detail"}.
FIND_FAULTS = """
() => {
  const faults = [];
  const label = (el) => {
    const text = (el.innerText || "").trim().split("\\n")[0].slice(0, 80);
    return text;
  };
  for (const pre of document.querySelectorAll("pre")) {
    const code = pre.querySelector("code") || pre;
    const box = pre.getBoundingClientRect();
    if (box.width === 0) continue;  // hidden (a collapsed block, another tab)
    if (code.scrollWidth > code.clientWidth + 1 || pre.scrollWidth > pre.clientWidth + 1) {
      const wide = Math.max(code.scrollWidth, pre.scrollWidth);
      faults.push({kind: "code block overflows", where: label(pre),
                   detail: `${wide} px of text in ${pre.clientWidth} px`});
    }
  }
  for (const cell of document.querySelectorAll("td, th")) {
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    let node;
    while ((node = walker.nextNode())) {
      const text = node.textContent;
      // A line may end after a hyphen ("mid-" / "download"): that is a break
      // between two parts, not inside one.
      const re = /[^\\s-]+-?/g;
      let match;
      while ((match = re.exec(text))) {
        const range = document.createRange();
        range.setStart(node, match.index);
        range.setEnd(node, match.index + match[0].length);
        const tops = new Set(Array.from(range.getClientRects()).map((r) => Math.round(r.top)));
        if (tops.size > 1) {
          faults.push({kind: "table cell breaks a word", where: label(cell), detail: match[0]});
        }
      }
    }
  }
  const page = document.scrollingElement;
  if (page.scrollWidth > window.innerWidth + 1) {
    faults.push({kind: "page scrolls sideways", where: location.pathname,
                 detail: `${page.scrollWidth} px wide in a ${window.innerWidth} px window`});
  }
  return faults;
}
"""


def pages(site: Path) -> List[str]:
    """Every HTML page of the site, as a URL path ("" for the home page)."""
    found = []
    for path in sorted(site.rglob("index.html")):
        relative = path.parent.relative_to(site).as_posix()
        if relative in ("404", "search"):
            continue
        found.append("" if relative == "." else relative + "/")
    return found


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(folder: Path) -> Tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def browser_executable() -> str:
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    raise SystemExit(
        "no Chromium: install Debian's package (apt-get install -y chromium) or set CHROMIUM"
    )


Fault = Tuple[str, str, Dict[str, str]]


def check(base_url: str, paths: List[str], shots: Path) -> Iterator[Fault]:
    """Yield (page, width name, fault) for every fault; screenshot every page."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=browser_executable(), args=CHROMIUM_ARGS, headless=True
        )
        try:
            for name, (width, height) in WIDTHS.items():
                context = browser.new_context(viewport={"width": width, "height": height})
                page = context.new_page()
                for path in paths:
                    page.goto(base_url + path, wait_until="load")
                    page.evaluate("document.fonts.ready")
                    stem = (path.strip("/").replace("/", "-") or "index").replace(".html", "")
                    page.screenshot(path=str(shots / f"{stem}-{width}.png"), full_page=True)
                    for fault in page.evaluate(FIND_FAULTS):
                        yield path or "/", name, fault
                context.close()
        finally:
            browser.close()


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, help="the built site (mkdocs build --site-dir)")
    parser.add_argument("screenshots", type=Path, help="where to save one PNG per page and width")
    args = parser.parse_args(argv)
    args.screenshots.mkdir(parents=True, exist_ok=True)

    fixture_dir = args.screenshots / "fixture"
    fixture_dir.mkdir(exist_ok=True)
    shutil.copy(FIXTURE, fixture_dir / "index.html")
    server, url = serve(fixture_dir)
    try:
        kinds = {fault["kind"] for _, _, fault in check(url, [""], fixture_dir)}
    finally:
        server.shutdown()
    wanted = {"code block overflows", "table cell breaks a word"}
    if not wanted <= kinds:
        print(f"the checks missed {sorted(wanted - kinds)} on the fixture page built to fail")
        return 1
    print(f"fixture page: the checks find {', '.join(sorted(kinds))}, as they must")

    paths = pages(args.site)
    server, url = serve(args.site)
    try:
        faults = list(check(url, paths, args.screenshots))
    finally:
        server.shutdown()
    for path, name, fault in faults:
        print(f"{path} ({name}): {fault['kind']}: {fault['detail']} in {fault['where']!r}")
    shots = sorted(args.screenshots.glob("*.png"))
    print(
        f"{len(paths)} pages checked at {', '.join(f'{w}x{h}' for w, h in WIDTHS.values())}; "
        f"{len(shots)} screenshots in {args.screenshots}; {len(faults)} faults"
    )
    return 1 if faults else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
