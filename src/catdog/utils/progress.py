"""Progress lines for the steps that can take more than a few seconds: decoding, feature passes, exports.

A step that ends within `first` seconds prints nothing; a longer one logs a line after `first` seconds, then
every `every` seconds, and one when it ends."""

import logging
import threading
import time
from contextlib import contextmanager

log = logging.getLogger("catdog")


class Progress:
    """`total` items of work (`advance` may be called from several threads)."""

    def __init__(self, what: str, total: int, unit: str = "images", first: float = 3.0, every: float = 10.0,
                 logger: logging.Logger = log):
        self.what, self.total, self.unit, self.every, self.log = what, total, unit, every, logger
        self.done, self.start = 0, time.monotonic()
        self.next_line, self.reported = self.start + first, False
        self._lock = threading.Lock()

    def advance(self, n: int = 1) -> None:
        with self._lock:
            self.done += n
            now = time.monotonic()
            if now < self.next_line or self.done >= self.total:
                return
            self.next_line, self.reported = now + self.every, True
            elapsed = now - self.start
            left = elapsed * (self.total - self.done) / max(self.done, 1)
            self.log.info("%s: %d of %d %s (%d%%), %.0f s, about %.0f s left", self.what, self.done, self.total,
                          self.unit, 100 * self.done // max(self.total, 1), elapsed, left)

    def close(self) -> None:
        now = time.monotonic()
        if self.reported or now >= self.next_line:
            self.log.info("%s: %d %s in %.0f s", self.what, self.done, self.unit, now - self.start)


@contextmanager
def working(what: str, first: float = 3.0, every: float = 10.0, logger: logging.Logger = log):
    """A step that cannot count its work (an export): "what (N s so far)" while it runs, "what: done in N s"."""
    start, finished = time.monotonic(), threading.Event()
    reported = []

    def heartbeat():
        wait = first
        while not finished.wait(wait):
            logger.info("%s (%.0f s so far)", what, time.monotonic() - start)
            reported.append(1)
            wait = every

    thread = threading.Thread(target=heartbeat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        finished.set()
        thread.join()
        if reported:
            logger.info("%s: done in %.0f s", what, time.monotonic() - start)
