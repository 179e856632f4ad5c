"""Fixtures for the real-browser tests: a JupyterLab server started by ``make lab`` and a
headless Chromium driven by Playwright.

Run them with ``make test-browser``, which installs the ``browser`` extra and Debian's chromium
first. They live outside ``tests/`` so that ``make test`` (and CI) never collects them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from labserver import ROOT, LabServer, LabServerError, running_lab

if TYPE_CHECKING:  # Playwright is an optional extra: imported for real inside the fixture
    from playwright.sync_api import Browser, Page

ARTIFACTS = ROOT / "artifacts" / "browser"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Headless Chromium in a container: no sandbox (we may be root), no GPU, and none of the
# background connections to Google, which this machine's network refuses many at a time.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The first start of a server on a busy 2-core machine is slow; a stale .venv makes
# `make lab` re-install first, which takes longer still.
SERVER_START_TIMEOUT_S = float(os.environ.get("LABS_BROWSER_SERVER_TIMEOUT", "300"))
# Playwright's wait for an element, a navigation or an assertion, in milliseconds: generous
# for 2 busy cores.
DEFAULT_TIMEOUT_MS = 90_000


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "full: only in `make test-browser-all` (every lab), not in CI's "
                                       "`make test-browser`")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """``artifacts/browser/``, emptied of the previous run's screenshots and logs."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in [*ARTIFACTS.glob("*.png"), *ARTIFACTS.glob("*.log")]:
        old.unlink()
    shutil.rmtree(ARTIFACTS / "work", ignore_errors=True)  # notebook copies and checkpoints
    return ARTIFACTS


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory: pytest.TempPathFactory, artifacts: Path) -> Iterator[LabServer]:
    """JupyterLab from ``make lab``, on a free port with a random token, for the whole run."""
    failure = None
    try:
        with running_lab(tmp_path_factory.mktemp("jupyter"), artifacts / "jupyter-server.log",
                         SERVER_START_TIMEOUT_S) as server:
            yield server
    except LabServerError as err:
        failure = str(err)
    if failure:  # outside the `except`, so pytest shows the message, not a chain of tracebacks
        pytest.fail(failure, pytrace=False)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium under Playwright (never a browser that Playwright downloads)."""
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        pytest.fail("Playwright is missing: run `make test-browser`, which installs the "
                    "`browser` extra (pip install -e '.[browser]').", pytrace=False)
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"No Chromium at {CHROMIUM}: run `make test-browser` (it installs Debian's "
                    "`chromium`), or point CHROMIUM at a Chrome/Chromium executable.",
                    pytrace=False)
    expect.set_options(timeout=DEFAULT_TIMEOUT_MS)  # assertions wait as long as actions do
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def console() -> list[str]:
    """The browser console's errors and warnings during one test, for its failure messages."""
    return []


@pytest.fixture
def page(browser: Browser, console: list[str], request: pytest.FixtureRequest,
         artifacts: Path) -> Iterator[Page]:
    """A fresh browser tab with its own cookies; its console log is saved next to the
    screenshots."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    tab = context.new_page()
    tab.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}")
           if msg.type in ("error", "warning") else None)
    tab.on("pageerror", lambda exc: console.append(f"uncaught: {exc}"))
    try:
        yield tab
    finally:
        (artifacts / f"console-{request.node.name}.log").write_text("\n".join(console) + "\n")
        context.close()
