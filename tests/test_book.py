"""The HTML book: it builds from the executed notebooks, and every page renders in a browser.

The book is built from scratch into a temporary folder (``book.build``: Sphinx + myst-nb, no
notebook is executed), served from 127.0.0.1 and opened in headless Chromium (Debian's
``chromium``, driven over the DevTools protocol by ``book/browser.py``). Each page must show:
typeset math (MathJax, served by the site itself), every figure and plot loaded, every
cross-reference, equation reference and citation resolved, and nothing fetched from anywhere
but the local server.

Skipped, with the reason, when the book's dependencies (``pip install -e '.[book]'``) or
Chromium (``apt-get install chromium``) are missing -- except under CI (``CI=true``), where
that is a failure: CI installs both. Marker: ``book`` (``pytest -m "not book"`` leaves it out).
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from chapterkit import notebook_sources

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = [nb for nb in (md.with_suffix(".ipynb") for md in notebook_sources()) if nb.is_file()]  # executed ones
if str(ROOT) not in sys.path:  # `book/` is a folder of the repository, not an installed package
    sys.path.insert(0, str(ROOT))
PAGES = ["index.html", *(f"notebooks/{nb.stem}.html" for nb in NOTEBOOKS), "bibliography.html"]

pytestmark = pytest.mark.book

# Collects, once MathJax has finished, everything the checks below look at.
INSPECT_JS = r"""
(async () => {
  const article = document.querySelector("article.bd-article") || document.querySelector("main")
                  || document.body;
  const skip = "pre, code, script, style, mjx-container, .cell_input, .highlight, .MathJax";
  // visible prose only: no code, no rendered math, no program output
  const texts = [];
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (!n.parentElement.closest(skip)) texts.push(n.nodeValue);
  }
  const images = await Promise.all([...document.images].map(async (img) => {
    let decoded = true;
    try { await img.decode(); } catch (e) { decoded = false; }
    return {src: img.getAttribute("src"), url: img.currentSrc || img.src,
            width: img.naturalWidth, height: img.naturalHeight, decoded,
            ok: img.complete && decoded && img.naturalWidth > 0 && img.naturalHeight > 0,
            output: img.closest(".cell_output") !== null,
            figure: img.closest("figure") !== null};
  }));
  const objects = [...document.querySelectorAll("object")].map((o) => ({
    data: o.getAttribute("data"),
    ok: !!(o.contentDocument && o.contentDocument.documentElement
           && o.contentDocument.documentElement.getBoundingClientRect().width > 0)}));
  const math = [...article.querySelectorAll(".math")];
  return {
    title: document.title,
    text: texts.join(" "),
    mathjax: !!(window.MathJax && MathJax.version),
    mathjaxVersion: window.MathJax && MathJax.version,
    mathNodes: math.length,
    mathUnrendered: math.filter((m) => !m.querySelector("mjx-container"))
                        .map((m) => m.textContent.slice(0, 80)),
    mjxContainers: document.querySelectorAll("mjx-container").length,
    mathErrors: [...document.querySelectorAll("mjx-merror")]
                  .map((e) => e.getAttribute("data-mjx-error") || e.textContent),
    images, objects,
    figures: article.querySelectorAll("figure").length,
    outputImages: images.filter((i) => i.output).length,
    problematic: [...article.querySelectorAll(".problematic, .system-message, .system-messages")]
                   .map((e) => e.textContent.slice(0, 120)),
    // a cross-reference Sphinx could not resolve keeps its xref class but gets no link
    unresolved: [...article.querySelectorAll(".xref")].filter((e) => !e.closest("a"))
                  .map((e) => e.textContent.slice(0, 80)),
    citations: [...article.querySelectorAll("a[href*='bibliography.html#']")]
                 .map((a) => a.textContent),
    // sphinxcontrib-bibtex renders a citation of an unknown key as an empty "()"
    badCitations: [...article.querySelectorAll(".bibtex-citation")]
                    .filter((e) => !e.querySelector("a")).map((e) => e.outerHTML.slice(0, 120)),
    links: [...document.querySelectorAll("a[href]")].map((a) => a.href),  // nav included
    // code and program output wider than the book's column (cut off, or hidden behind a scrollbar)
    overflowing: [...article.querySelectorAll("div.cell pre")]
                   .filter((p) => p.scrollWidth > p.clientWidth + 1)
                   .map((p) => p.textContent.split("\n").reduce((a, b) => (b.length > a.length ? b : a))
                                 .slice(0, 80)),
  };
})()
"""

# Text that means some MyST markup reached the reader unrendered.
LEFTOVERS = [
    (re.compile(r"\?\?"), "'??' (an unresolved reference)"),
    (re.compile(r"\{(numref|ref|eq|cite(:[a-z]+)?|doc|term|download|math)\}"), "a raw MyST role"),
    (re.compile(r"\{(figure|math|note|bibliography|code-cell|toctree)\}"), "a raw MyST directive"),
    (re.compile(r"\$\$"), "raw $$ (display math not typeset)"),
    (re.compile(r"\\\(|\\\[|\\begin\{"), "raw LaTeX delimiters"),
    (re.compile(r"\$[^$\s][^$]*?\\[a-zA-Z]+[^$]*?\$"), "raw $...$ inline math"),
    (re.compile(r"```|:::"), "a raw code fence"),
]


def _source_counts(nb_path: Path) -> dict:
    """What a notebook page must show: plots in its outputs, figures, math, citations."""
    nb = json.loads(nb_path.read_text(encoding="utf-8"))
    plots = figures = math = cites = 0
    for cell in nb["cells"]:
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if cell["cell_type"] == "markdown":
            figures += len(re.findall(r"(?:```|:::)\{figure\}", src))
            math += len(re.findall(r"\$", src))
            cites += len(re.findall(r"\{cite(?::[a-z]+)?\}", src))
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if any(k.startswith("image/") for k in data) and "text/html" not in data:
                plots += 1
    return {"plots": plots, "figures": figures, "math": math, "cites": cites}


def _unavailable(reason: str):
    """Skip -- except under CI (CI=true), where a missing install step must not pass unseen."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} -- CI must install it (see .ci/run)")
    pytest.skip(reason)


def _ids(html_file: Path) -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', html_file.read_text(encoding="utf-8")))


# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def book(tmp_path_factory):
    """A fresh build of the book: (html folder, warning lines)."""
    from book import build

    missing = build.missing_dependencies()
    if missing:
        _unavailable(f"book dependencies not installed ({', '.join(missing)}): pip install -e '.[book]'")
    if not NOTEBOOKS:
        pytest.fail("no executed notebooks notebooks/NN-slug.ipynb to build the book from")
    html, warnings = build.build(tmp_path_factory.mktemp("book"), quiet=True)
    return html, warnings


@pytest.fixture(scope="module")
def site(book):
    """(base URL, Browser) with the built book served on 127.0.0.1."""
    from book.browser import Browser, find_chromium, serve

    if not find_chromium():
        _unavailable("Chromium not installed (apt-get install chromium); set CHROMIUM= to use another Chrome")
    html, _ = book
    with serve(html) as base, Browser() as browser:
        yield base, browser


def test_sphinx_build_is_clean(book):
    """No warnings at all: an unknown label, citation, role, directive or image is one."""
    html, warnings = book
    assert (html / "index.html").is_file()
    assert not warnings, "Sphinx warnings:\n" + "\n".join(warnings)


def test_toc_follows_notebook_order(book):
    html, _ = book
    index = (html / "index.html").read_text(encoding="utf-8")
    toc = index[index.index('class="toctree-wrapper') :]
    hrefs = re.findall(r'<li class="toctree-l1"><a class="reference internal" href="([^"#]+)"', toc)
    chapter = [h for h in hrefs if h.startswith("notebooks/")]
    assert chapter == [f"notebooks/{nb.stem}.html" for nb in NOTEBOOKS]
    assert hrefs[-1] == "bibliography.html"
    for nb in NOTEBOOKS:
        assert (html / "notebooks" / f"{nb.stem}.html").is_file()


def test_site_is_self_contained(book):
    """No page loads a script, style sheet, font or image from outside the site."""
    html, _ = book
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert list((html / "_static" / "mathjax" / "output" / "chtml" / "fonts").rglob("*.woff"))
    external = re.compile(
        r"<(?:script|link|img|object|iframe|source)\b[^>]*?"
        r'\b(?:src|href|data)="(?:https?:)?//',
        re.I,
    )
    for page in html.rglob("*.html"):
        if "_sources" in page.parts:
            continue
        text = page.read_text(encoding="utf-8")
        hits = [m.group(0) for m in external.finditer(text)]
        assert not hits, f"{page.relative_to(html)} loads from the network: {hits[:3]}"
        if 'class="math' in text:
            assert "_static/mathjax/tex-chtml.js" in text, f"{page.relative_to(html)}: no MathJax"


def _load_problems(info: dict, base: str, requests, failed, errors) -> list[str]:
    """Nothing from the network, nothing missing, no script errors, every image and figure loaded."""
    from book.browser import IGNORED_CONSOLE, IGNORED_FAILURES

    problems = []
    outside = [u for u in requests if not u.startswith((base + "/", "data:", "blob:", "about:"))]
    failed = [f for f in failed if not any(i in f for i in IGNORED_FAILURES)]
    errors = [e for e in errors if not e.startswith(IGNORED_CONSOLE)]
    broken_images = [i["src"] for i in info["images"] if not i["ok"]]
    broken_objects = [o["data"] for o in info["objects"] if not o["ok"]]
    for found, message in ((outside, "requested from outside the site"), (failed, "failed loads"),
                           (errors, "script errors"), (broken_images, "broken images"),
                           (broken_objects, "broken <object> figures")):
        if found:
            problems.append(f"{message}: {found}")
    return problems


def _math_problems(info: dict) -> list[str]:
    """MathJax (the site's own copy) typeset every math node, without errors."""
    checks = []
    if info["mathNodes"]:
        checks += [
            (info["mathjax"], "math on the page but MathJax did not load"),
            (str(info["mathjaxVersion"]).startswith("3."), f"MathJax {info['mathjaxVersion']}"),
            (not info["mathUnrendered"], f"math not typeset: {info['mathUnrendered']}"),
            (info["mjxContainers"] >= info["mathNodes"],
             f"{info['mathNodes']} math nodes, {info['mjxContainers']} typeset"),
        ]
    checks.append((not info["mathErrors"], f"TeX errors: {info['mathErrors']}"))
    return [message for ok, message in checks if not ok]


def _reference_problems(info: dict, base: str, html: Path) -> list[str]:
    """Nothing unresolved, no raw markup, every internal link lands on an anchor."""
    checks = [
        (not info["problematic"], f"docutils/MyST errors: {info['problematic']}"),
        (not info["unresolved"], f"unresolved references: {info['unresolved']}"),
        (not info["badCitations"], f"unresolved citations: {info['badCitations']}"),
    ]
    problems = [message for ok, message in checks if not ok]
    for pattern, what in LEFTOVERS:
        for m in pattern.finditer(info["text"]):
            context = info["text"][max(0, m.start() - 60) : m.end() + 60].split()
            problems.append(f"{what}: ...{' '.join(context)}...")
    ids: dict[Path, set[str]] = {}
    for url in info["links"]:
        parts = urlsplit(url)
        if not url.startswith(base + "/"):
            continue
        target = html / unquote(parts.path).lstrip("/")
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            problems.append(f"link to a missing page: {url}")
        elif parts.fragment and target.suffix == ".html":
            ids.setdefault(target, _ids(target))
            if unquote(parts.fragment) not in ids[target]:
                problems.append(f"dangling anchor: {url}")
    return problems


def _content_problems(info: dict, page: str) -> list[str]:
    """What the notebook holds is on its page: plots from the outputs, figures, math, citations; and
    its code fits the column (1280-pixel window)."""
    checks = []
    if page.startswith("notebooks/"):
        want = _source_counts(ROOT / "notebooks" / (Path(page).stem + ".ipynb"))
        checks += [
            (info["outputImages"] >= want["plots"],
             f"{want['plots']} plots in the notebook's outputs, {info['outputImages']} shown"),
            (info["figures"] >= want["figures"], f"{want['figures']} figures in the notebook, {info['figures']} shown"),
            (not want["math"] or info["mathNodes"] > 0, "the notebook has math, the page none"),
            (len(info["citations"]) >= want["cites"],
             f"{want['cites']} citations in the notebook, {len(info['citations'])} linked"),
        ]
    checks.append((not info["overflowing"], f"code wider than the column: {info['overflowing'][:3]}"))
    if page == "bibliography.html":
        checks.append((
            "Hochreiter" in info["text"] and "Long short-term memory" in info["text"],
            "the reference list is missing entries",
        ))
    return [message for ok, message in checks if not ok]


@pytest.mark.parametrize("page", PAGES)
def test_page_renders(site, book, page):
    base, browser = site
    html, _ = book
    tab = browser.new_page()
    try:
        tab.goto(f"{base}/{page}")
        tab.settle()
        info = tab.evaluate(INSPECT_JS)
        requests, failed, errors = tab.requests, tab.failed, tab.errors
    finally:
        browser.send("Target.closeTarget", {"targetId": tab.target})
    problems = (_load_problems(info, base, requests, failed, errors) + _math_problems(info)
                + _reference_problems(info, base, html) + _content_problems(info, page))
    assert not problems, f"{page}:\n  " + "\n  ".join(problems)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")  # IHDR width, height


def test_screenshot(site, tmp_path):
    """The reviewers' screenshot command works: a full-page PNG of the landing page, and a page
    longer than one PNG may be comes whole, in parts (notebook 05 was cut at 30,000 pixels)."""
    base, browser = site
    tab = browser.new_page()
    try:
        tab.goto(f"{base}/index.html")
        tab.settle()
        pngs = tab.screenshot(tmp_path / "index.png")
        tab.goto(f"{base}/notebooks/05-gated-rnns.html")
        tab.settle()
        total = tab.evaluate("document.documentElement.scrollHeight")
        parts = tab.screenshot(tmp_path / "05.png", max_height=4000)
    finally:
        browser.send("Target.closeTarget", {"targetId": tab.target})
    assert pngs == [tmp_path / "index.png"] and pngs[0].stat().st_size > 10_000 and _png_size(pngs[0])[0] == 1280
    assert len(parts) == -(-total // 4000) > 1 and parts[0].name == "05-1.png"
    sizes = [_png_size(p) for p in parts]
    assert all(w == 1280 for w, _ in sizes) and all(h == 4000 for _, h in sizes[:-1])
    assert sum(h for _, h in sizes) == total  # the whole page, nothing cut


def test_tables_a_notebook_prints_render_as_tables(book):
    """A table a cell displays as Markdown (notebook 05's scoreboard) is an HTML table in the book,
    not a paragraph of pipes (myst-nb renders text/markdown outputs as CommonMark, without tables,
    unless told otherwise)."""
    html, _ = book
    pipe_text = re.compile(r"<p>\s*\|[^<]*\|[^<]*\|")
    for page in PAGES:
        found = pipe_text.search((html / page).read_text(encoding="utf-8"))
        assert not found, f"{page}: a Markdown table rendered as text: {found.group(0)[:80]!r}"
    page = (html / "notebooks/05-gated-rnns.html").read_text(encoding="utf-8")
    tables = re.findall(r"<table.*?</table>", page, re.S)
    assert any("parameters" in t and "LSTM" in t and "test perplexity" in t for t in tables), \
        "notebook 05's scoreboard is not an HTML table"
