"""The course's website (``make book``) as a reader sees it, page by page, in headless Chromium.

Every HTML page of ``build/book/html`` is served over HTTP from this machine and opened. A page passes
when it loads with no console error and no failed request, asks for nothing outside the site (every
other request is blocked and named: the site must work offline), has every equation typeset by
MathJax with no TeX error or unknown macro and no raw LaTeX left in its text, shows every image with
a size and no unrendered widget, has every animation move when Play is pressed, and when every link
into the site leads to a page that exists and to an anchor on it. A screenshot of each page's first
screen goes to ``artifacts/browser/book-*.png``. The site's search is tried once, offline.

``make test-browser`` builds the site first; run ``make book`` to rebuild it by hand.
"""

from __future__ import annotations

import functools
import http.server
import re
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import pytest
from labserver import ROOT
from views import animations_that_do_not_play

if TYPE_CHECKING:
    from playwright.sync_api import Browser

SITE = ROOT / "build" / "book" / "html"
PAGES = sorted(p.relative_to(SITE).as_posix() for p in SITE.glob("*.html")) if SITE.is_dir() else []
# What a page of the site would show if a step of the build had not happened: TeX that MathJax did not
# typeset (Sphinx writes inline math as \(...\)), dollar math MyST did not parse, a widget's text
# stand-in where the builder's HTML stand-in should be.
RAW_LEFTOVERS = re.compile(r"\\\(|\\\[|\$\$|\$\\|interactive\(children=|Loading widget")
MATHJAX_TIMEOUT_MS = 60_000


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # the requests are not the test's output
        pass


@pytest.fixture(scope="module")
def site_url() -> Iterator[str]:
    """The site served from this machine, as a reader's browser would fetch it from a web server."""
    if not (SITE / "index.html").is_file():
        pytest.fail(f"No site in {SITE.relative_to(ROOT)}: run `make book` (`make test-browser` does).",
                    pytrace=False)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(SITE)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.ids.update(value for name, value in attrs if name in ("id", "name") and value)


@functools.cache
def anchors_of(page: Path) -> frozenset[str]:
    """The ids (and named anchors) of a page of the site, as written by the build."""
    parser = _Ids()
    parser.feed(page.read_text(encoding="utf-8"))
    return frozenset(parser.ids)


def broken_links(hrefs: list[str], base: str) -> list[str]:
    """Each link into the site (``base``) that leads to no file of the site, or to no anchor on its page."""
    broken = []
    for href in sorted(set(hrefs)):
        if not href.startswith(base):
            continue  # another site: a link out is the reader's choice, and nothing the page loads
        parts = urlsplit(href)
        path = unquote(parts.path).lstrip("/") or "index.html"
        target = SITE / path
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            broken.append(f"{href} (no file {path})")
        elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in anchors_of(target):
            broken.append(f"{href} (no anchor #{parts.fragment} on {path})")
    return broken


def test_the_site_has_every_lab() -> None:
    """The build wrote a page for the home page, the guide and each solution notebook."""
    labs = sorted(p.stem for p in (ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
    missing = [name for name in ["index", "instructor_guide", *labs] if f"{name}.html" not in PAGES]
    assert not missing, f"{SITE.relative_to(ROOT)} has no page for {missing}: run `make book`"


@pytest.mark.parametrize("name", PAGES)
def test_page(name: str, browser: Browser, site_url: str, artifacts: Path) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    problems: list[str] = []
    outside: list[str] = []

    def route(request_route) -> None:  # every request: the site's own files go through, nothing else
        url = request_route.request.url
        if url.startswith(site_url) or url.startswith("data:"):
            request_route.continue_()
        else:
            outside.append(url)
            request_route.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
    page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url} ({req.failure})")
            if req.url.startswith(site_url) else None)
    page.on("response", lambda resp: problems.append(f"HTTP {resp.status}: {resp.url}") if resp.status >= 400 else None)
    try:
        page.goto(site_url + name, wait_until="load")
        maths = page.locator(".math").count()
        if maths:
            page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                                   timeout=MATHJAX_TIMEOUT_MS)
            page.evaluate("() => MathJax.startup.promise")
        typeset = page.locator(".math mjx-container").count()
        # A TeX error is an merror node; an unknown macro is drawn as its own name in red (MathJax's
        # noundefined package). The course colours no math, so red text in an equation is an error.
        tex_errors = page.eval_on_selector_all(
            "mjx-merror, mjx-container [style*='color: red']",
            "nodes => nodes.map(n => n.matches('mjx-merror') ? (n.getAttribute('data-mjx-error') || 'TeX error') "
            ": 'an unknown macro (drawn in red)')")
        # Every image decoded, off-screen ones included, before its size is read.
        empty_images = page.evaluate("""async () => {
            const images = [...document.images];
            await Promise.all(images.map(img => img.decode().catch(() => null)));
            return images.filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.src.slice(0, 120));
        }""")
        text = page.evaluate("""() => {
            const clone = document.querySelector('main, body').cloneNode(true);
            clone.querySelectorAll('pre, code, script, style, mjx-container, .math').forEach(n => n.remove());
            return clone.innerText;
        }""")
        hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
        stuck = animations_that_do_not_play(page, page.locator("main"))
        page.screenshot(path=artifacts / f"book-{Path(name).stem}.png")
    finally:
        context.close()
    leftovers = sorted(set(RAW_LEFTOVERS.findall(text)))
    assert not outside, f"{name} asked for files outside the site (it must work offline): {outside}"
    assert not problems, f"{name}: " + "; ".join(problems)
    assert typeset == maths, f"{name}: MathJax typeset {typeset} of its {maths} equations"
    assert not tex_errors, f"{name}: TeX errors in its equations: {tex_errors}"
    assert not leftovers, f"{name} shows untypeset or unrendered text: {leftovers}"
    assert not empty_images, f"{name}: images that did not load: {empty_images}"
    assert not stuck, f"{name}: {stuck}"
    assert not broken_links(hrefs, site_url), f"{name}: broken links: {broken_links(hrefs, site_url)}"


def test_search_finds_a_lab(browser: Browser, site_url: str) -> None:
    """The site's search works offline: a term that only Lab 08 teaches finds Lab 08's page first."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(site_url + "search.html?q=adaLN")
        page.wait_for_selector("#search-results li a", timeout=MATHJAX_TIMEOUT_MS)
        first = page.locator("#search-results li a").first
        assert "Lab 08" in first.inner_text() and "08_latent" in (first.get_attribute("href") or "")
    finally:
        context.close()
