"""Headless Chromium, driven over the DevTools protocol on a pipe, for the book's checks.

No Python package beyond the standard library and no downloaded browser: Debian's ``chromium``
(``apt-get install chromium``) is started with ``--remote-debugging-pipe``, which speaks the
Chrome DevTools protocol as NUL-terminated JSON on file descriptors 3 (commands) and 4 (replies).

    with serve(site_dir) as base, Browser() as browser:
        page = browser.new_page()
        page.goto(base + "/index.html")
        page.settle()                       # MathJax typeset, every image loaded
        page.evaluate("document.title")
        page.screenshot("index.png")        # the whole page

The browser resolves no host name (``--host-resolver-rules``): a page that tries to fetch from
the internet fails visibly, and every request it made is listed in ``page.requests``.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import functools
import http.server
import json
import math
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

# Not problems of the book: the browser asks every site for /favicon.ico, and
# pydata-sphinx-theme logs this on a first visit, before the reader has picked light or dark.
IGNORED_FAILURES = ("/favicon.ico",)
IGNORED_CONSOLE = ("Got invalid theme mode",)

CANDIDATES = ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome")

FLAGS = [
    "--headless",
    "--no-sandbox",  # we may run as root (CI)
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
    "--force-color-profile=srgb",
    # offline: only the local server is reachable, nothing else resolves
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
    "--remote-debugging-pipe",
]


def find_chromium() -> str | None:
    """Path of a Chromium executable ($CHROMIUM, else chromium on PATH), or None."""
    name = os.environ.get("CHROMIUM")
    if name:
        return shutil.which(name) or (name if os.access(name, os.X_OK) else None)
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class CDPError(RuntimeError):
    """The browser answered a DevTools command with an error, or did not answer in time."""


class Browser:
    """One headless Chromium process; ``new_page()`` opens tabs. Use as a context manager."""

    def __init__(self, executable: str | None = None, timeout: float = 60.0):
        exe = executable or find_chromium()
        if not exe:
            raise FileNotFoundError(
                "no Chromium found: install Debian's package (apt-get install chromium) or set CHROMIUM=/path/to/chrome"
            )
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="book-chromium-")
        self.log_path = Path(self.profile).with_suffix(".log")
        # pipes: we write commands to cmd_w (the browser's fd 3), read replies from res_r (fd 4).
        # Their browser-side ends are moved above fd 10 so that bash's redirections cannot clash
        # (dash, Debian's /bin/sh, does not take descriptors above 9).
        cmd_r, cmd_w = os.pipe()
        res_r, res_w = os.pipe()
        child_r = fcntl.fcntl(cmd_r, fcntl.F_DUPFD, 10)
        child_w = fcntl.fcntl(res_w, fcntl.F_DUPFD, 10)
        os.close(cmd_r)
        os.close(res_w)
        script = f'exec "$@" 3<&{child_r} 4>&{child_w} {child_r}<&- {child_w}>&-'
        args = [exe, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"]
        self._log = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(
                [shutil.which("bash") or "/bin/bash", "-c", script, "bash", *args],
                pass_fds=(child_r, child_w),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
        finally:
            os.close(child_r)
            os.close(child_w)
        self._w = cmd_w
        self._r = res_r
        self._next_id = 0
        self._replies: dict[int, dict] = {}
        self._listeners: dict[str | None, list] = {}
        self._cond = threading.Condition()
        self._closed = False
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()
        try:
            self.version = self.send("Browser.getVersion")["product"]
        except Exception:
            self.close(keep_log=True)
            raise

    # -- protocol ------------------------------------------------------------------------------
    def _read_loop(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._r, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                break
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self._cond:
                        self._replies[msg["id"]] = msg
                        self._cond.notify_all()
                else:
                    for callback in list(self._listeners.get(msg.get("sessionId"), ())):
                        callback(msg["method"], msg.get("params", {}))
                    with self._cond:
                        self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def send(
        self, method: str, params: dict | None = None, session: str | None = None, timeout: float | None = None
    ) -> dict:
        """Send one DevTools command and wait for its result."""
        with self._cond:
            self._next_id += 1
            msg_id = self._next_id
        msg = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        data = json.dumps(msg).encode() + b"\0"
        try:
            while data:
                data = data[os.write(self._w, data) :]
        except OSError as e:
            raise CDPError(f"{method}: the browser has gone ({e}); see {self.log_path}") from e
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._cond:
            while msg_id not in self._replies:
                left = deadline - time.monotonic()
                if self._closed:
                    raise CDPError(f"{method}: the browser exited; see {self.log_path}")
                if left <= 0:
                    raise CDPError(f"{method}: no answer in {timeout or self.timeout:.0f} s")
                self._cond.wait(left)
            reply = self._replies.pop(msg_id)
        if "error" in reply:
            raise CDPError(f"{method}: {reply['error'].get('message')} {reply['error']}")
        return reply.get("result", {})

    def wait_for(self, predicate, timeout: float | None = None, what: str = "an event") -> None:
        """Block until ``predicate()`` is true (re-checked whenever a message arrives)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise CDPError(f"timed out waiting for {what}")
                self._cond.wait(min(left, 0.5))

    # -- pages -----------------------------------------------------------------------------------
    def new_page(self, width: int = 1280, height: int = 900) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})
        return Page(self, target, session["sessionId"], width, height)

    def close(self, keep_log: bool = False) -> None:
        """Shut the browser down; its log is kept (and its path printed) if keep_log."""
        if self.proc.poll() is None:
            with contextlib.suppress(Exception):
                self.send("Browser.close", timeout=5)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for fd in (self._w, self._r):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._log.close()
        shutil.rmtree(self.profile, ignore_errors=True)
        if keep_log:
            print(f"chromium's log: {self.log_path}")
        else:
            with contextlib.suppress(OSError):
                self.log_path.unlink()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(keep_log=exc_type is not None)


# Waits until the page is fully rendered: lazy images forced to load, every image settled,
# web fonts loaded, MathJax's first typeset finished (if the page loads MathJax).
SETTLE_JS = r"""
(async () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  for (const img of document.images) img.loading = "eager";
  await Promise.all([...document.images].map((img) => img.complete ? null :
    new Promise((r) => { img.addEventListener("load", r); img.addEventListener("error", r); })));
  const wantsMath = document.querySelector(".math, script[src*='mathjax']") !== null;
  let waited = 0;
  while (wantsMath && !(window.MathJax && MathJax.startup && MathJax.startup.promise)
         && waited < 15000) { await sleep(50); waited += 50; }
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) await MathJax.startup.promise;
  await document.fonts.ready;
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  return true;
})()
"""


class Page:
    """A tab. Records what it requested, what failed to load, and its script errors."""

    def __init__(self, browser: Browser, target: str, session: str, width: int, height: int):
        self.browser, self.target, self.session = browser, target, session
        self.width, self.height = width, height
        self.requests: list[str] = []  # every URL requested since the last goto()
        self.failed: list[str] = []  # "URL: reason" for failed loads and HTTP errors
        self.errors: list[str] = []  # uncaught exceptions and console.error messages
        self._urls: dict[str, str] = {}
        self._loaded = 0
        browser._listeners.setdefault(session, []).append(self._on_event)
        for domain in ("Page", "Network", "Runtime"):
            self.send(f"{domain}.enable")
        self._viewport(height)

    def send(self, method: str, params: dict | None = None, timeout: float | None = None) -> dict:
        return self.browser.send(method, params, self.session, timeout)

    def _on_event(self, method: str, params: dict) -> None:
        if method == "Page.loadEventFired":
            self._loaded += 1
        elif method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            self._urls[params["requestId"]] = url
            self.requests.append(url)
        elif method == "Network.responseReceived":
            status = params["response"]["status"]
            if status >= 400:
                self.failed.append(f"{params['response']['url']}: HTTP {status}")
        elif method == "Network.loadingFailed":
            url = self._urls.get(params["requestId"], "?")
            self.failed.append(f"{url}: {params.get('errorText')}")
        elif method == "Runtime.exceptionThrown":
            d = params["exceptionDetails"]
            self.errors.append(d.get("exception", {}).get("description") or d.get("text", ""))
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", [])))

    def problems(self) -> list[str]:
        """Failed loads and script errors since the last goto(), less the ignorable ones."""
        return [f for f in self.failed if not any(i in f for i in IGNORED_FAILURES)] + [
            e for e in self.errors if not e.startswith(IGNORED_CONSOLE)
        ]

    def goto(self, url: str, timeout: float | None = None) -> None:
        """Navigate and wait for the load event; the request/failure/error logs start afresh."""
        self.requests, self.failed, self.errors, self._urls = [], [], [], {}
        loaded = self._loaded
        reply = self.send("Page.navigate", {"url": url})
        if reply.get("errorText"):
            raise CDPError(f"cannot open {url}: {reply['errorText']}")
        self.browser.wait_for(lambda: self._loaded > loaded, timeout, f"{url} to load")

    def evaluate(self, expression: str, timeout: float | None = None):
        """The value of a JavaScript expression (promises are awaited), as JSON data."""
        reply = self.send(
            "Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True}, timeout
        )
        if "exceptionDetails" in reply:
            d = reply["exceptionDetails"]
            raise CDPError(d.get("exception", {}).get("description") or d.get("text"))
        return reply["result"].get("value")

    def settle(self, timeout: float | None = None) -> None:
        """Wait until images, fonts and MathJax are done (see SETTLE_JS)."""
        self.evaluate(SETTLE_JS, timeout)

    def screenshot(self, path: str | os.PathLike, full_page: bool = True, max_height: int = 30000) -> list[Path]:
        """Write PNGs of the page: the whole length, in parts of at most max_height CSS pixels
        (``path`` itself, or ``stem-1.png``, ``stem-2.png``, ... for a longer page). Returns them.

        For the whole page the viewport is made as tall as the page (or as one part), so that
        sticky headers and sidebars are drawn once, where they belong; it is restored afterwards.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        height = total = self.height
        if full_page:
            total = max(self.height, math.ceil(self.send("Page.getLayoutMetrics")["cssContentSize"]["height"]))
            height = min(total, max_height)
            self._viewport(height)
            self.evaluate("new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
        tops = list(range(0, total, height)) if full_page else [0]
        paths = [path] if len(tops) == 1 else [path.with_name(f"{path.stem}-{i}{path.suffix}")
                                               for i in range(1, len(tops) + 1)]
        try:
            for top, out in zip(tops, paths):
                params = {"format": "png"}
                if len(tops) > 1:  # one part of the page, drawn beyond the viewport where needed
                    params |= {"captureBeyondViewport": True,
                               "clip": {"x": 0, "y": top, "width": self.width,
                                        "height": min(height, total - top), "scale": 1}}
                data = self.send("Page.captureScreenshot", params, timeout=120)["data"]
                out.write_bytes(base64.b64decode(data))
        finally:
            if full_page:
                self._viewport(self.height)
        return paths

    def _viewport(self, height: int) -> None:
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": self.width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@contextlib.contextmanager
def serve(directory: str | os.PathLike):
    """Serve ``directory`` on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
