"""Headless Chromium driven over the DevTools protocol on a pipe: stdlib only, no webdriver, no network.

Chromium started with ``--remote-debugging-pipe`` reads protocol messages from file descriptor 3 and
writes replies and events to descriptor 4, each a JSON object ended by a NUL byte. That is all the
viewer needs to check a page the way a person would see it: load it, collect console errors and
uncaught exceptions, run a line of JavaScript (to pick a filter, or await a row's texts), and save a
screenshot. Used by the
slow browser test and by ``ilr view --screenshot``.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Self

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
]


class BrowserError(RuntimeError):
    """Chromium is missing, died, or answered a command with an error."""


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable on PATH (``$ILR_CHROMIUM`` wins), else None."""
    explicit = os.environ.get("ILR_CHROMIUM")
    if explicit:
        return explicit
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


class Browser:
    """One headless Chromium with one page. ``errors`` collects console errors and uncaught exceptions."""

    def __init__(self, executable: str | None = None, *, width: int = 1400, height: int = 1000) -> None:
        self.executable = executable or find_chromium()
        if self.executable is None:
            raise BrowserError(
                "no Chromium found: install it (Debian: `apt-get install -y chromium`, or `make browser`) or "
                "set ILR_CHROMIUM to its path"
            )
        self.size = (width, height)
        self.errors: list[str] = []
        self._next_id = 0
        self._buffer = b""
        self._events: list[dict[str, Any]] = []

    def __enter__(self) -> Self:
        self._profile = tempfile.TemporaryDirectory(prefix="ilr-chromium-")
        # Commands go parent -> Chromium's fd 3, replies come back on its fd 4. The child's ends are moved
        # above fd 10 first, so placing them on 3 and 4 can never overwrite one with the other.
        child_in, self._write_fd = os.pipe()
        self._read_fd, child_out = os.pipe()
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (child_in, child_out)]
        os.close(child_in)
        os.close(child_out)
        w, h = self.size

        def wire_pipes() -> None:  # in the child, before exec; dup2 makes 3 and 4 inheritable
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        try:
            self._proc = subprocess.Popen(
                [self.executable, *FLAGS, f"--user-data-dir={self._profile.name}", f"--window-size={w},{h}"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                close_fds=False,  # Python's own descriptors are close-on-exec anyway; 3 and 4 must survive
                preexec_fn=wire_pipes,  # noqa: PLW1509 - nothing else runs between fork and exec
            )
        finally:
            for fd in high:
                os.close(fd)
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            session=True,
            width=w,
            height=h,
            deviceScaleFactor=1,
            mobile=False,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.call("Browser.close")
        except BrowserError:
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        os.close(self._write_fd)
        os.close(self._read_fd)
        self._profile.cleanup()

    # --- protocol ----------------------------------------------------------------------------------
    def _send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._write_fd, data) :]

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise BrowserError("Chromium did not answer in time")
            chunk = os.read(self._read_fd, 1 << 20)
            if not chunk:
                raise BrowserError(f"Chromium exited (code {self._proc.poll()})")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message = json.loads(raw)
        if "id" not in message:
            self._note(message)
        return message

    def _note(self, event: dict[str, Any]) -> None:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            self.errors.append(f"console.{params['type']}: {args}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            text = details.get("exception", {}).get("description") or details.get("text")
            self.errors.append(f"uncaught: {text}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            self.errors.append(f"log: {entry.get('text')} {entry.get('url', '')}".strip())
        self._events.append(event)

    def call(
        self, method: str, *, session: bool = False, timeout: float = 60.0, **params: Any
    ) -> dict[str, Any]:
        """Send one command and wait for its reply (events that arrive meanwhile are recorded)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        self._send(message)
        deadline = time.monotonic() + timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})

    def _wait_event(self, method: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self._events):
                if event.get("method") == method:
                    return self._events.pop(i)
            self._receive(deadline)

    # --- what a test needs -------------------------------------------------------------------------
    def open(self, page: str | Path) -> None:
        """Load a local file and wait for its load event."""
        self._events.clear()
        url = Path(page).resolve().as_uri()
        self.call("Page.navigate", session=True, url=url)
        self._wait_event("Page.loadEventFired")

    def evaluate(self, expression: str, *, await_promise: bool = False) -> Any:
        """The value of a JavaScript expression in the page (exceptions become BrowserError); with
        ``await_promise``, the value a returned promise settles to (a row whose texts decode first)."""
        result = self.call(
            "Runtime.evaluate",
            session=True,
            expression=expression,
            returnByValue=True,
            awaitPromise=await_promise,
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r} raised: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")

    def screenshot(self, path: str | Path, *, full_page: bool = False) -> Path:
        """Save a PNG of the viewport (or the whole page)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
        data = self.call("Page.captureScreenshot", session=True, **params)["data"]
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(data))
        return out
