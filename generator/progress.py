"""What a running load shows and how it is stopped: the progress line and the stop signal."""

from __future__ import annotations

import signal
import sys
import threading
import time

PROGRESS_TTY_S = 0.5
PROGRESS_LOG_S = 5.0


class Progress:
    """A live line on a TTY; one log line every few seconds otherwise; nothing when disabled."""

    def __init__(self, enabled: bool, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and self.stream.isatty()
        self.every = PROGRESS_TTY_S if self.tty else PROGRESS_LOG_S
        self.t0 = time.monotonic()
        self.next = self.t0 + self.every
        self.last_total, self.last_t = 0, self.t0

    def tick(self, sent: dict[str, int], failed: int, force: bool = False, pending: int = 0) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now < self.next and not force:
            return
        self.next = now + self.every
        total = sum(sent.values())
        rate = (total - self.last_total) / max(now - self.last_t, 1e-9)
        self.last_total, self.last_t = total, now
        per_topic = "  ".join(f"{t}={n:,}" for t, n in sorted(sent.items()))
        # acked = handed to Kafka and acknowledged by it; the rest is queued/in flight (or failed).
        acked = total - pending - failed
        line = (f"{now - self.t0:7.1f}s  {rate:10,.0f} msg/s  total={total:,}  {per_topic}  acked={acked:,}  "
                f"errors={failed}")
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def done(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


class StopSignal:
    """Ctrl-C / SIGTERM ask the loop to stop at the next batch boundary (so the ledger stays exact)."""

    def __init__(self, event=None):
        self.event = event
        self.flag = False

    def __call__(self) -> bool:
        return self.flag or (self.event is not None and self.event.is_set())

    def install(self):
        def handler(signum, frame):   # noqa: ARG001
            self.flag = True
        if threading.current_thread() is not threading.main_thread():
            return lambda: None   # signals reach only the main thread; an embedding caller stops us otherwise
        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        return lambda: [signal.signal(s, h) for s, h in old.items()]
