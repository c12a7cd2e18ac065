"""The documentation site: `mkdocs build --strict` (tutorials executed) succeeds without a warning, and the
built pages render in a real headless browser (Debian's chromium driven by Playwright over a local HTTP
server): pages have their content, every tutorial's plots load, and screenshots of the landing page and of
a tutorial with its plot are written to build/docs-screenshots/."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = ROOT / "build" / "docs-screenshots"
TUTORIALS = sorted(p.stem for p in (ROOT / "docs" / "tutorials").glob("t*.py"))
# flags that work on this machine class (no network: background connections would be refused)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built as `make docs` builds it, into a temporary folder."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-5000:]
    warnings = [line for line in log.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert not warnings, warnings
    return out


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    import playwright.sync_api as playwright  # (the docs extra: make setup installs it; missing = a failure)

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} missing: scripts/setup.sh installs Debian's chromium")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_every_tutorial_is_a_page(site: Path) -> None:
    assert len(TUTORIALS) == 6
    for name in TUTORIALS:
        page = (site / "tutorials" / f"{name}.html").read_text(encoding="utf-8")
        assert '<img alt="' in page and 'src="data:image/png;base64,' in page, f"{name}: no plot in the notebook"
        assert "Traceback" not in page, name


def test_cli_reference_is_generated_from_the_parser(site: Path) -> None:
    from rlmpc.cli import build_parser

    page = (site / "reference" / "cli.html").read_text(encoding="utf-8")
    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    assert commands, "no sub-commands"
    for name, sub in commands.items():  # type: ignore[union-attr]
        assert f"rlmpc {name}" in page, name
        for action in sub._actions:
            for option in action.option_strings:
                assert option in page, f"rlmpc {name} {option}"


def test_pages_render_in_a_browser(server: str, browser: object) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    expected = {
        "index.html": "The journey",
        "getting-started.html": "comma-deps-acados",
        "theory.html": "policy_jacobian",
        "reference/cli.html": "rlmpc export",
        "reference/api/rlmpc.html": "ParametricMPC",
        "reference/api/toolkit.html": "grad_theta",
        "howto/real-board.html": "/dev/ttyACM0",
        "howto/pytest-plugin.html": "--hil-port",
        "protocol.html": "Serial protocol",
        "benchmarks.html": "Benchmarks",
    }
    for path, text in expected.items():
        response = page.goto(f"{server}/{path}")
        assert response is not None and response.ok, path
        body = page.inner_text("article")
        assert text in body, f"{path}: {text!r} not shown"
    page.close()


def test_tutorial_plots_load_and_screenshots(server: str, browser: object) -> None:
    if SCREENSHOTS.exists():
        shutil.rmtree(SCREENSHOTS)
    SCREENSHOTS.mkdir(parents=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page.goto(f"{server}/index.html")
    page.screenshot(path=str(SCREENSHOTS / "landing.png"))
    for name in TUTORIALS:
        page.goto(f"{server}/tutorials/{name}.html")
        page.wait_for_load_state("load")
        widths = page.eval_on_selector_all("article img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
        assert widths and all(w > 0 for w in widths), f"{name}: plot images {widths}"
    page.goto(f"{server}/tutorials/t1_sensitivities.html")
    plot = page.locator("article img").last  # sensitivities against finite differences
    plot.scroll_into_view_if_needed()
    page.evaluate("window.scrollBy(0, 200)")
    page.wait_for_timeout(500)  # the header's title transition
    page.screenshot(path=str(SCREENSHOTS / "tutorial_sensitivities.png"))
    page.close()
    for png in ("landing.png", "tutorial_sensitivities.png"):
        assert (SCREENSHOTS / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
