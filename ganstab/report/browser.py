"""Open a report in headless Chromium over the DevTools pipe: console errors, images, a full-page screenshot.

Used by the browser test and to make the README's screenshot (`python -m ganstab.report.browser
REPORT.html OUT.png`). Nothing here is needed to write a report; it only checks how one renders.
The browser is driven through `--remote-debugging-pipe` (JSON messages separated by NUL bytes
on file descriptors 3 and 4), so no port is opened and no network is used.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

BROWSER_NAMES: tuple[str, ...] = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS: tuple[str, ...] = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--no-default-browser-check", "--hide-scrollbars", "--mute-audio",
    "--disable-extensions", "--disable-dev-shm-usage",
)

_IMAGES_JS = """JSON.stringify(Array.from(document.images).map(i => ({
  src: i.getAttribute('src') || '', complete: i.complete, width: i.naturalWidth, height: i.naturalHeight,
  alt: i.alt})))"""
_SECTIONS_JS = "JSON.stringify(Array.from(document.querySelectorAll('section[id]')).map(s => s.id))"


class BrowserError(RuntimeError):
    """The browser could not be started or did not answer."""


@dataclass
class PageCheck:
    """What the browser saw: images (src prefix, loaded, natural size), console errors, section ids."""

    images: list[dict[str, Any]] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    section_ids: list[str] = field(default_factory=list)
    title: str = ""
    height: int = 0
    screenshot: Optional[Path] = None


def find_browser() -> Optional[str]:
    """Path of a Chromium-family browser on PATH, or None."""
    for name in BROWSER_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _high_fd(fd: int) -> int:
    """A duplicate of `fd` numbered 10 or more (the original is closed)."""
    import fcntl

    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return high


class _Pipe:
    """A DevTools connection over the browser's fd 3 (commands in) and fd 4 (messages out)."""

    def __init__(self, browser: str, user_data_dir: str) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # move the child's ends above 9 so that placing them on 3 and 4 cannot clobber one with the other
        to_browser_r, from_browser_w = (_high_fd(to_browser_r), _high_fd(from_browser_w))
        command = [browser, *FLAGS, f"--user-data-dir={user_data_dir}", "--remote-debugging-pipe", "about:blank"]

        def place_fds() -> None:  # runs in the child between fork and exec; os.pipe fds are close-on-exec
            os.dup2(to_browser_r, 3)
            os.dup2(from_browser_w, 4)

        self.proc = subprocess.Popen(command, preexec_fn=place_fds, close_fds=False, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next_id = 0
        self._messages: "queue.Queue[Optional[dict]]" = queue.Queue()
        self.events: list[dict] = []
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read(self) -> None:
        buffer = b""
        with os.fdopen(self._from_browser, "rb", buffering=0) as stream:
            while True:
                chunk = stream.read(1 << 16)
                if not chunk:
                    break
                buffer += chunk
                while b"\0" in buffer:
                    raw, buffer = buffer.split(b"\0", 1)
                    try:
                        self._messages.put(json.loads(raw))
                    except json.JSONDecodeError:
                        continue
        self._messages.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.decode("utf-8", "replace").rstrip())

    def send(self, method: str, params: Optional[dict] = None, session: Optional[str] = None,
             timeout: float = 30.0) -> dict:
        """Send one command and wait for its result (events seen meanwhile are kept in `events`)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        try:
            os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        except BrokenPipeError:
            self.proc.wait(timeout=10)
            tail = " | ".join(self.stderr[-3:])
            raise BrowserError(f"the browser exited (status {self.proc.returncode}) before {method}: {tail}") from None
        deadline = time.monotonic() + timeout
        while True:
            item = self._get(deadline, method)
            if item.get("id") == self._next_id:
                if "error" in item:
                    raise BrowserError(f"{method}: {item['error'].get('message')}")
                return item.get("result", {})
            self.events.append(item)

    def wait_event(self, name: str, timeout: float = 30.0) -> dict:
        """Wait for an event by method name (also returns one that already arrived)."""
        for event in self.events:
            if event.get("method") == name:
                return event
        deadline = time.monotonic() + timeout
        while True:
            item = self._get(deadline, name)
            self.events.append(item)
            if item.get("method") == name:
                return item

    def _get(self, deadline: float, what: str) -> dict:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise BrowserError(f"no answer from the browser for {what}")
        try:
            item = self._messages.get(timeout=remaining)
        except queue.Empty:
            raise BrowserError(f"no answer from the browser for {what}") from None
        if item is None:
            tail = " | ".join(self.stderr[-3:])
            raise BrowserError(f"the browser closed the connection during {what}: {tail}")
        return item

    def close(self) -> None:
        """Ask the browser to quit, then make sure it has."""
        try:
            self.send("Browser.close", timeout=5.0)
        except (BrowserError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        try:
            os.close(self._to_browser)
        except OSError:
            pass


def _console_errors(events: list[dict]) -> list[str]:
    errors = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            errors.append("Uncaught " + str(details.get("exception", {}).get("description") or details.get("text")))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append("console.error: " + " ".join(str(a.get("value", a.get("description", "")))
                                                       for a in params.get("args", [])))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            errors.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}".strip())
    return errors


def check_page(html_path: str | Path, screenshot: Optional[str | Path] = None, width: int = 1280,
               max_height: int = 16000, timeout: float = 60.0, browser: Optional[str] = None) -> PageCheck:
    """Load a local HTML file in headless Chromium; report its images, console errors and sections; screenshot it."""
    browser = browser or find_browser()
    if browser is None:
        raise BrowserError("no chromium found; install it with 'apt-get install chromium'")
    url = Path(html_path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="ganstab-chromium-") as profile:
        pipe = _Pipe(browser, profile)
        try:
            target = pipe.send("Target.createTarget", {"url": "about:blank"}, timeout=timeout)["targetId"]
            session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                pipe.send(f"{domain}.enable", session=session)
            pipe.send("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=session)
            pipe.send("Page.navigate", {"url": url}, session=session, timeout=timeout)
            pipe.wait_event("Page.loadEventFired", timeout=timeout)

            def evaluate(expression: str) -> Any:
                result = pipe.send("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                                   session=session)
                return result.get("result", {}).get("value")

            check = PageCheck(images=json.loads(evaluate(_IMAGES_JS)), section_ids=json.loads(evaluate(_SECTIONS_JS)),
                              title=str(evaluate("document.title")))
            check.height = int(evaluate("Math.ceil(document.documentElement.scrollHeight)") or 0)
            if screenshot is not None:
                height = max(1, min(check.height, max_height))
                pipe.send("Emulation.setDeviceMetricsOverride",
                          {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=session)
                shot = pipe.send("Page.captureScreenshot", {"format": "png", "fromSurface": True}, session=session,
                                 timeout=timeout)
                path = Path(screenshot)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(base64.b64decode(shot["data"]))
                check.screenshot = path
            time.sleep(0.2)  # let late console messages arrive
            pipe.send("Runtime.evaluate", {"expression": "1"}, session=session)
            check.console_errors = _console_errors(pipe.events)
        finally:
            pipe.close()
    return check


def main(argv: Optional[list[str]] = None) -> int:
    """`python -m ganstab.report.browser REPORT.html OUT.png [WIDTH [MAX_HEIGHT]]`: screenshot and check a report."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2:
        print("usage: python -m ganstab.report.browser REPORT.html OUT.png [WIDTH [MAX_HEIGHT]]", file=sys.stderr)
        return 2
    width = int(args[2]) if len(args) > 2 else 1280
    max_height = int(args[3]) if len(args) > 3 else 16000
    check = check_page(args[0], args[1], width=width, max_height=max_height)
    broken = [i["alt"] for i in check.images if not (i["complete"] and i["width"] > 0)]
    print(f"{len(check.images)} images ({len(broken)} not loaded), {len(check.console_errors)} console errors, "
          f"page height {check.height}px; screenshot {check.screenshot}")
    for error in check.console_errors:
        print(f"console: {error}")
    return 1 if broken or check.console_errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
