"""The demo page end to end in headless Chromium (Playwright): pick, localize, click a bar to seek, upload, errors.

Needs Debian's chromium (/usr/bin/chromium) and the playwright Python package; skipped
with the reason when either is missing, failed instead when MOMENTLOC_REQUIRE_BROWSER=1.
The screenshot is kept under artifacts/screenshots/.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("av", reason="PyAV is the [video] extra")
pytest.importorskip("fastapi", reason="FastAPI is the [serve] extra")

from test_server import make_predictor, make_videos  # noqa: E402 - the same small predictor and videos

SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium() -> str:
    """The browser binary, or skip (fail when the browser is required)."""
    path = os.environ.get("MOMENTLOC_CHROMIUM") or "/usr/bin/chromium"
    found = path if os.access(path, os.X_OK) else shutil.which("chromium")
    reason = None
    if not found:
        reason = f"chromium not found at {path} (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            reason = "the playwright package is not installed (pip install playwright; no browser download needed)"
    if reason:
        if os.environ.get("MOMENTLOC_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


@pytest.fixture(scope="module")
def binary() -> str:
    """Checked before the server starts, so a skip costs nothing."""
    return _chromium()


@pytest.fixture(scope="module")
def server(binary, tmp_path_factory):
    """uvicorn on a free 127.0.0.1 port in a thread, serving two synthetic videos."""
    import uvicorn

    from momentloc.server.app import create_app

    root = make_videos(tmp_path_factory.mktemp("page") / "videos")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(make_predictor(), root, max_upload_mb=5), host="127.0.0.1",
                                        port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    yield {"url": f"http://127.0.0.1:{port}/", "root": root}
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def page(binary, server):
    """A fresh headless Chromium page on the demo."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=binary, headless=True, args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": 1280, "height": 820})
        tab.set_default_timeout(30_000)
        messages: list[str] = []
        tab.on("pageerror", lambda err: messages.append(str(err)))
        tab.goto(server["url"])
        yield tab, messages
        browser.close()


def test_localize_click_to_seek_upload_and_errors(page, server) -> None:
    tab, js_errors = page
    tab.wait_for_function("document.querySelectorAll('#video-select option').length >= 2")
    tab.select_option("#video-select", "colours.webm")
    tab.wait_for_function("document.getElementById('player').readyState >= 1")  # the browser decoded the header
    assert tab.evaluate("document.getElementById('player').duration") == pytest.approx(6.0, abs=0.1)

    tab.fill("#query", "the screen turns red")
    tab.fill("#topk", "4")
    tab.click("#go")
    tab.wait_for_function("document.querySelectorAll('#timeline .bar').length === 4")
    assert "4 moments" in tab.text_content("#status")
    assert tab.locator("#results tbody tr").count() == 4

    bar = tab.locator("#timeline .bar").nth(1)
    start = float(bar.get_attribute("data-start"))
    left = tab.evaluate("parseFloat(document.querySelectorAll('#timeline .bar')[1].style.left)")
    assert left == pytest.approx(100 * start / 6.0, abs=0.5)  # the bar sits where its moment starts
    tab.evaluate("document.getElementById('player').muted = true")
    bar.click()
    tab.wait_for_function(f"Math.abs(document.getElementById('player').currentTime - {start}) < 0.6")
    assert "active" in (bar.get_attribute("class") or "")
    tab.evaluate("document.getElementById('player').pause()")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / "page.png"
    tab.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    tab.set_input_files("#upload", str(server["root"] / "sub" / "short.webm"))
    tab.wait_for_function("document.getElementById('video-select').value === 'short.webm'")
    assert (server["root"] / "short.webm").is_file() and "Uploaded as short.webm" in tab.text_content("#status")

    tab.fill("#query", "zebra xylophone")
    tab.click("#go")
    tab.wait_for_function("document.getElementById('status').className === 'error'")
    message = tab.text_content("#status")
    assert "no known words" in message and str(server["root"]) not in message
    assert js_errors == []
