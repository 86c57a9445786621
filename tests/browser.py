"""Open built pages in headless Chromium, offline, and report what a reader sees.

The system Chromium (Debian's ``chromium`` package) is driven over the DevTools protocol on a pipe
(``--remote-debugging-pipe``: no port, no browser download, no Python dependency). The browser is
offline: every host name resolves to nothing and every http(s) request goes to a proxy on a closed
loopback port, so nothing leaves the machine. Each request a page makes is recorded
(``Network.requestWillBeSent``), so a page that asks for anything outside the site (a CDN script, a
web font, an image) is reported by URL, whether or not the page would still look right without it.

Used by tests/test_book.py and, as a script, by ``make screenshots``:

    python tests/browser.py _build/html _build/screenshots
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
SITE_SCHEMES = ("file:", "data:", "blob:", "about:")  # what a page of a site on disk may load
VIEWPORT = {"width": 1280, "height": 900}

# Runs in the page once it has loaded: waits for MathJax's first typeset, the images and the fonts,
# then measures. A page whose MathJax never loaded (a CDN script, offline) has no MathJax.startup.
INSPECT_JS = r"""
(async () => {
  const settle = (p, ms) => Promise.race([p, new Promise(r => setTimeout(r, ms))]);
  const mj = window.MathJax;
  const mathjaxLoaded = !!(mj && mj.startup && mj.startup.promise);
  if (mathjaxLoaded) await settle(mj.startup.promise, 20000);
  for (const img of document.images) img.loading = "eager";
  await settle(Promise.all([...document.images].map(img => img.complete ? null
    : new Promise(r => { img.addEventListener("load", r); img.addEventListener("error", r); }))), 10000);
  await settle(document.fonts.ready, 5000);

  // Text a reader reads: text outside code, scripts and typeset math, folded solutions included
  // (a reader unfolds them). Raw TeX or a raw Markdown table here is what the reader would see.
  const skip = "pre, code, script, style, textarea, mjx-container, .highlight";
  const root = document.querySelector("main") || document.body;
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const text = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (n.parentElement && !n.parentElement.closest(skip)) text.push(n.textContent);
  }
  const shown = el => el.checkVisibility({opacityProperty: true, visibilityProperty: true})
    && el.getBoundingClientRect().height > 0;
  const maths = [...document.querySelectorAll("span.math, div.math")];
  const solutions = [...document.querySelectorAll(".admonition, details")].filter(el => {
    const title = el.matches("details") ? el.querySelector("summary") : el.querySelector(".admonition-title");
    return title && /solution/i.test(title.textContent);
  });
  const folded = el => el.matches("details") ? !el.open
    : [...el.children].filter(c => !c.matches(".admonition-title")).every(c => !shown(c));
  return {
    mathjax_loaded: mathjaxLoaded,
    math_elements: maths.length,
    math_untypeset: maths.filter(m => !m.querySelector("mjx-container")).length,
    mjx_containers: document.querySelectorAll("mjx-container").length,
    mjx_errors: [...document.querySelectorAll("mjx-merror")].map(e => e.textContent).slice(0, 5),
    reader_text: text.join(""),
    output_tables: document.querySelectorAll(".cell_output table").length,
    images: [...document.images].map(img => ({src: img.currentSrc || img.src,
                                             ok: img.complete && img.naturalWidth > 0})),
    output_images: document.querySelectorAll(".cell_output img").length,
    colab_links: [...document.querySelectorAll("a[href*='colab.research.google.com']")].map(a => a.href),
    solutions: solutions.length,
    solutions_unfolded: solutions.filter(el => !folded(el)).map(el => el.id || el.textContent.slice(0, 60)),
  };
})()
"""


def find_chromium() -> str | None:
    """The Chromium executable: $CHROMIUM if set, else the first of CHROMIUM_NAMES on PATH."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


class Browser:
    """One headless Chromium, offline, with one tab; ``inspect(url)`` returns what a page shows."""

    def __init__(self, executable: str, timeout: float = 30.0):
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def pipes_to_fd3_fd4() -> None:  # the DevTools pipe: the browser reads fd 3, writes fd 4
            # via fds >= 10 first, so that neither dup2 overwrites the other pipe's end
            read = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD_CLOEXEC, 10)
            write = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD_CLOEXEC, 10)
            os.dup2(read, 3)  # dup2 clears close-on-exec: fds 3 and 4 reach Chromium, nothing else does
            os.dup2(write, 4)

        args = [executable, "--headless", "--remote-debugging-pipe", f"--user-data-dir={self._profile.name}",
                "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9",
                "--disable-gpu", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--hide-scrollbars", "--mute-audio", "about:blank"]
        if os.geteuid() == 0:
            args.insert(2, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        self._log = Path(self._profile.name) / "chromium.log"  # its stderr, quoted when it dies
        with self._log.open("wb") as log:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=log, close_fds=False, preexec_fn=pipes_to_fd3_fd4)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._messages: queue.Queue = queue.Queue()
        self._events: list[dict] = []
        self._next_id = 0
        threading.Thread(target=self._read, daemon=True).start()
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for method in ("Page.enable", "Network.enable", "Runtime.enable"):
            self.call(method, session=self.session)
        self.call("Emulation.setDeviceMetricsOverride", session=self.session, deviceScaleFactor=1,
                  mobile=False, **VIEWPORT)

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self._from_browser, 1 << 16):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for message in messages:
                self._messages.put(json.loads(message))
        self._messages.put(None)  # the browser closed the pipe

    def _next(self, deadline: float) -> dict:
        try:
            message = self._messages.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError(f"Chromium sent nothing for {self.timeout:.0f} s") from None
        if message is None:
            log = self._log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"Chromium exited (code {self.proc.wait(timeout=10)}); its last words:\n{log}")
        return message

    def call(self, method: str, session: str | None = None, **params) -> dict:
        """Send one DevTools command and return its result; events that arrive meanwhile are kept."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        try:
            os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        except BrokenPipeError:
            self._messages.put(None)  # the browser is gone: report it with its log below
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._next(deadline)
            if reply.get("id") != self._next_id:
                self._events.append(reply)
            elif "error" in reply:
                raise RuntimeError(f"{method}: {reply['error']}")
            else:
                return reply["result"]

    def _wait_event(self, method: str) -> None:
        deadline = time.monotonic() + self.timeout
        while not any(e.get("method") == method for e in self._events):
            self._events.append(self._next(deadline))

    def open(self, url: str) -> list[str]:
        """Load url and return every URL the page requested (itself, scripts, images, fonts, ...)."""
        self._events.clear()
        self.call("Page.navigate", session=self.session, url=url)
        self._wait_event("Page.loadEventFired")
        return [e["params"]["request"]["url"] for e in self._events
                if e.get("method") == "Network.requestWillBeSent"]

    def inspect(self, url: str) -> dict:
        """Load url and measure it (see INSPECT_JS); 'offsite' lists requests outside the site."""
        self.open(url)
        result = self.call("Runtime.evaluate", session=self.session, expression=INSPECT_JS,
                           awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{url}: {result['exceptionDetails']}")
        report = result["result"]["value"]
        requests = [e["params"]["request"]["url"] for e in self._events
                    if e.get("method") == "Network.requestWillBeSent"]
        requests += [e["params"]["url"] for e in self._events
                     if e.get("method") == "Network.webSocketCreated"]
        report["requests"] = requests
        report["offsite"] = sorted({u for u in requests if not u.startswith(SITE_SCHEMES)})
        return report

    def screenshot(self, path: Path) -> None:
        """The first screen (the viewport) of the page now open, as PNG."""
        data = self.call("Page.captureScreenshot", session=self.session, format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_browser)
        self._profile.cleanup()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def inspect_all(executable: str, urls: list[str], browsers: int = 2) -> dict[str, dict]:
    """``Browser.inspect`` for each url, spread over a few browsers that run at once.

    Typesetting a chapter's math costs about 2 s of CPU in one renderer thread; two browsers use
    both cores of a 2-core machine and halve the wall time of the whole check.
    """
    shares = [urls[i::browsers] for i in range(browsers)]

    def run(share: list[str]) -> dict[str, dict]:
        with Browser(executable) as browser:
            return {url: browser.inspect(url) for url in share}

    with ThreadPoolExecutor(browsers) as pool:
        results = list(pool.map(run, [share for share in shares if share]))
    reports = {url: report for result in results for url, report in result.items()}
    return {url: reports[url] for url in urls}


def screenshot_pages(html: Path) -> list[Path]:
    """The intro page and each chapter page of a built site."""
    return [html / "book" / "intro.html", *sorted((html / "notebooks").glob("[0-9][0-9]_*.html"))]


def main(argv: list[str]) -> int:
    html = Path(argv[0] if argv else "_build/html").resolve()
    out = Path(argv[1] if len(argv) > 1 else "_build/screenshots")
    if not (html / "book" / "intro.html").exists():
        print(f"no built site at {html}: run `make book` first", file=sys.stderr)
        return 2
    executable = find_chromium()
    if executable is None:
        print("no Chromium found: install Debian's `chromium` package or set $CHROMIUM", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    with Browser(executable) as browser:
        for page in screenshot_pages(html):
            report = browser.inspect(page.as_uri())
            png = out / f"{page.stem}.png"
            browser.screenshot(png)
            print(f"{png}  math {report['mjx_containers']}/{report['math_elements']} typeset, "
                  f"offsite requests {len(report['offsite'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
