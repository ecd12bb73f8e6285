"""The HTML report in a real browser: it renders, logs no console error (a CSP violation
is one), runs no injected script, makes no network request, and looks right.

Headless Chromium is driven over the DevTools protocol on ``--remote-debugging-pipe``
(fd 3 in, fd 4 out, NUL-terminated JSON): no websocket library and no extra package, and
every event the page causes is seen, not grepped from a log. A self-test first proves the
harness would notice a request, a console error, a CSP violation and an alert() at all, so
the real checks cannot pass by being blind. Screenshots of the report (screen and print
media) go to ``test-artifacts/`` at the repository root, which CI keeps.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, require_tool
from test_render import sample_analysis

from forensics.report import render as render_report

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-default-apps", "--mute-audio",
         "--hide-scrollbars", "--remote-debugging-pipe")
TIMEOUT = 30.0


class Browser:
    """Just enough of the DevTools protocol: commands with replies, and a log of events."""

    def __init__(self, chromium: str, profile: Path) -> None:
        cmd_r, self._cmd_w = os.pipe()
        self._res_r, res_w = os.pipe()
        # Move the child's ends above 10 first, so placing them on 3 and 4 cannot clobber.
        hi_r, hi_w = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10), fcntl.fcntl(res_w, fcntl.F_DUPFD, 10)
        os.close(cmd_r)
        os.close(res_w)

        def to_3_and_4() -> None:
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        self.proc = subprocess.Popen(
            [chromium, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(3, 4), preexec_fn=to_3_and_4)
        os.close(hi_r)
        os.close(hi_w)
        self._buf = b""
        self._next = 0
        self.events: list[dict[str, Any]] = []
        self.session: str | None = None

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from Chromium")
            ready, _, _ = select.select([self._res_r], [], [], left)
            if ready:
                chunk = os.read(self._res_r, 1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium closed the DevTools pipe")
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: bool = True) -> dict:
        self._next += 1
        msg: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._event(reply)

    def _event(self, msg: dict[str, Any]) -> None:
        self.events.append(msg)
        if msg.get("method") == "Page.javascriptDialogOpening":
            # Answer at once, or the page would block on the dialog.
            self.send("Page.handleJavaScriptDialog", {"accept": True})

    def wait_for(self, method: str, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            self._event(self._read_message(deadline))

    def drain(self, seconds: float) -> None:
        """Collect events for a moment (late console messages, lazy requests)."""
        deadline = time.monotonic() + seconds
        try:
            while True:
                self._event(self._read_message(deadline))
        except TimeoutError:
            pass

    def open_page(self, url: str) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)
        self.session = self.send("Target.attachToTarget",
                                 {"targetId": target["targetId"], "flatten": True},
                                 session=False)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False})
        self.events.clear()
        self.send("Page.navigate", {"url": url})
        self.wait_for("Page.loadEventFired")
        self.drain(0.5)

    def evaluate(self, expression: str) -> Any:
        res = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return res.get("result", {}).get("value")

    def screenshot(self, path: Path, media: str = "screen") -> None:
        self.send("Emulation.setEmulatedMedia", {"media": media})
        size = self.send("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": 1280, "height": min(int(size["height"]) + 1, 16000),
                "scale": 1}
        shot = self.send("Page.captureScreenshot",
                         {"format": "png", "captureBeyondViewport": True, "clip": clip})
        path.write_bytes(base64.b64decode(shot["data"]))
        self.send("Emulation.setEmulatedMedia", {"media": ""})

    def close(self) -> None:
        try:
            self.send("Browser.close", session=False)
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()
            self.proc.wait(timeout=10)
        finally:
            os.close(self._cmd_w)
            os.close(self._res_r)

    # What the page did ------------------------------------------------------
    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events
                if e.get("method") == "Network.requestWillBeSent"]

    def problems(self) -> list[str]:
        """Console errors and warnings, uncaught exceptions and browser log errors."""
        out = []
        for e in self.events:
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning",
                                                                      "assert"):
                out.append(f"console.{p['type']}: "
                           + " ".join(str(a.get("value", a.get("description")))
                                      for a in p.get("args", [])))
            elif m == "Runtime.exceptionThrown":
                out.append(f"exception: {p['exceptionDetails'].get('text')}")
            elif m == "Log.entryAdded" and p["entry"].get("level") in ("error", "warning"):
                out.append(f"log {p['entry'].get('source')}: {p['entry'].get('text')}")
        return out

    def dialogs(self) -> list[str]:
        return [e["params"].get("message", "") for e in self.events
                if e.get("method") == "Page.javascriptDialogOpening"]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    chromium = require_tool("chromium")
    b = Browser(chromium, tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield b
    finally:
        b.close()


@pytest.fixture(scope="module")
def report_html(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report")
    html = render_report(sample_analysis(root), "html")
    path = root / "report.html"
    path.write_text(html, encoding="utf-8")
    return path


def _keep(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    ignore = ARTIFACTS / ".gitignore"
    if not ignore.exists():  # keep CI's artifacts out of git without touching the root
        ignore.write_text("*\n", encoding="utf-8")
    return ARTIFACTS / name


def test_harness_sees_requests_errors_and_dialogs(browser: Browser, tmp_path: Path) -> None:
    canary = tmp_path / "canary.html"
    canary.write_text('<!DOCTYPE html><html><body><img src="http://127.0.0.1:9/x.png">'
                      '<script>console.error("canary"); alert("canary")</script></body></html>')
    browser.open_page(canary.as_uri())
    assert "http://127.0.0.1:9/x.png" in browser.requests()
    assert any("canary" in p for p in browser.problems())
    assert browser.dialogs() == ["canary"]


def test_harness_sees_csp_violations(browser: Browser, report_html: Path,
                                     tmp_path: Path) -> None:
    tampered = tmp_path / "tampered.html"
    tampered.write_text(report_html.read_text(encoding="utf-8").replace(
        "</body>", "<script>document.title='pwned'</script></body>"), encoding="utf-8")
    browser.open_page(tampered.as_uri())
    assert any("Content Security Policy" in p for p in browser.problems())
    assert browser.evaluate("document.title") != "pwned"


def test_report_renders_cleanly_offline(browser: Browser, report_html: Path) -> None:
    browser.open_page(report_html.as_uri())
    assert browser.problems() == []
    assert browser.dialogs() == []
    assert [u for u in browser.requests() if u != report_html.as_uri()] == []
    # The page is what we meant: verdict, ranked sites, charts drawn, our script ran.
    assert browser.evaluate("document.querySelector('.verdict h1').textContent").startswith(
        "Connection leak detected (high).")
    first = "document.querySelector('table.sites tbody tr td:nth-child(2)').textContent"
    assert "handleTransfer" in browser.evaluate(first)
    assert browser.evaluate("document.querySelectorAll('svg.chart').length") == 4
    assert browser.evaluate("document.querySelector('table.sortable th').tabIndex") == 0
    assert browser.evaluate("document.querySelectorAll('img, iframe, object').length") == 0
    # Hostile text arrived as text: visible, not parsed.
    assert "<script>alert(1)</script>" in browser.evaluate("document.body.textContent")
    browser.screenshot(_keep("report.png"))
    browser.screenshot(_keep("report-print.png"), media="print")
    _keep("report.html").write_text(report_html.read_text(encoding="utf-8"), encoding="utf-8")


def test_sorting_by_a_column(browser: Browser, report_html: Path) -> None:
    browser.open_page(report_html.as_uri())
    ranks = ("Array.from(document.querySelectorAll('table.sites tbody tr'))"
             ".map(r => r.cells[0].textContent.trim()).join(',')")
    assert browser.evaluate(ranks) == "1,2,3"
    browser.evaluate("document.querySelector('table.sites th').click()")  # ascending
    browser.evaluate("document.querySelector('table.sites th').click()")  # descending
    assert browser.evaluate(ranks) == "3,2,1"
    score = "document.querySelectorAll('table.sites th')[5]"
    browser.evaluate(f"{score}.click()")
    assert browser.evaluate(ranks) == "3,2,1"  # scores 1.0 < 40.25 < 91.5
    assert browser.problems() == []
