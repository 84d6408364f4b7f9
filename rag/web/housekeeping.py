"""What the running app keeps, bounded: temporary files (uploads, batch results) by age and
total size, Gradio sessions by count and idle time, and uploads only from the app's own page.

Why (issue 16, findings 2 and 3): a 1,000-question batch left ~300 MB that stayed until
the app stopped (results stored twice: the batch folder and Gradio's cache), uploads were
never removed, an upload with `Origin: http://evil.example` was accepted, and every raw
HTTP API call made a Gradio session (~0.15 MB of copied page config) that was kept, up to
10,000 of them. Now:

* results are written inside Gradio's cache folder (the app's temp folder), so Gradio
  serves them without a second copy;
* `TempFolder.sweep` removes every upload and batch result older than RAG_TEMP_TTL
  (default 1 hour), then the oldest ones until the folder is under RAG_TEMP_MAX_MB
  (default 1024 MB); it runs every SWEEP_EVERY_S and before each batch; while the folder
  is still over the limit, uploads are refused (HTTP 507) and batches say so;
* `OriginGuard` refuses a POST/PUT/PATCH/DELETE whose Origin is not the app's own
  host (cross-site uploads and API calls from a browser); clients that send no Origin
  (curl, gradio_client, scripts) are unaffected;
* `bound_sessions` keeps at most MAX_SESSIONS Gradio sessions, and `SessionSweeper` drops
  those idle for SESSION_IDLE_S.
"""
from __future__ import annotations

import json
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from rag import settings

SWEEP_EVERY_S = 60.0
BUSY_S = 10.0                # an entry written in the last seconds may still be in use
MAX_SESSIONS = 100           # Gradio sessions kept (Gradio's default: 10,000); ~0.15 MB each
SESSION_IDLE_S = 1800.0      # a session unused this long is dropped (recreated on next use)
ANALYTICS_EVENTS = 1000      # Gradio's per-event timing records kept (its default: 10,000)
UPLOAD_PATHS = ("/gradio_api/upload", "/upload")
UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def temp_ttl_s() -> float:
    return float(settings.get().temp_ttl)


def temp_max_bytes() -> int:
    return int(settings.get().temp_max_mb) * 2**20


@dataclass
class Entry:
    path: Path
    size: int
    newest: float            # newest mtime of anything inside


@dataclass
class SweepReport:
    removed: int
    freed: int
    total: int               # bytes left

    def __str__(self) -> str:
        return (f"temp folder: removed {self.removed} entries ({self.freed / 2**20:.1f} MB), "
                f"{self.total / 2**20:.1f} MB left")


class TempFolder:
    """The app's temporary folder: uploads (`<hash>/<name>`, Gradio's layout) and batch
    results (`batch/<id>/`), each an entry removed as a whole."""

    def __init__(self, root: Path, ttl_s: float | None = None, max_bytes: int | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.root = Path(root)
        self.ttl_s = temp_ttl_s() if ttl_s is None else ttl_s
        self.max_bytes = temp_max_bytes() if max_bytes is None else max_bytes
        self.clock = clock
        self._lock = threading.Lock()
        self.total = 0
        self._stop = threading.Event()

    def entries(self) -> list[Entry]:
        out = []
        if not self.root.is_dir():
            return out
        for child in self.root.iterdir():
            if child.name == "batch" and child.is_dir():
                out.extend(_entry(p) for p in child.iterdir())
            else:
                out.append(_entry(child))
        return [e for e in out if e is not None]

    def sweep(self) -> SweepReport:
        """Remove expired entries, then the oldest until the total is under the limit."""
        with self._lock:
            now = self.clock()
            entries = sorted(self.entries(), key=lambda e: e.newest)
            removed = freed = 0
            kept = []
            for e in entries:
                if now - e.newest > self.ttl_s and _remove(e.path):
                    removed, freed = removed + 1, freed + e.size
                else:
                    kept.append(e)
            total = sum(e.size for e in kept)
            for e in list(kept):              # oldest first
                if total <= self.max_bytes:
                    break
                if now - e.newest < BUSY_S:
                    continue
                if _remove(e.path):
                    removed, freed, total = removed + 1, freed + e.size, total - e.size
            self.total = total
            return SweepReport(removed, freed, total)

    def full(self) -> bool:
        """Over the size limit even after sweeping."""
        return self.sweep().total > self.max_bytes

    def start(self, every_s: float = SWEEP_EVERY_S, log: Callable[[str], None] | None = None) -> None:
        def loop() -> None:
            while not self._stop.wait(every_s):
                try:
                    r = self.sweep()
                    if r.removed and log:
                        log(str(r))
                except OSError as e:              # never let housekeeping stop the app
                    if log:
                        log(f"warning: temp folder sweep failed: {e}")

        threading.Thread(target=loop, name="rag-housekeeping", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()


def _entry(p: Path) -> Entry | None:
    try:
        st = p.lstat()
        if not p.is_dir() or p.is_symlink():
            return Entry(p, st.st_size, st.st_mtime)
        size, newest = 0, None                 # age of a folder: its newest file's
        for dirpath, _dirs, files in os.walk(p):
            for f in files:
                try:
                    fs = os.lstat(os.path.join(dirpath, f))
                except OSError:
                    continue
                size += fs.st_size
                newest = fs.st_mtime if newest is None else max(newest, fs.st_mtime)
        return Entry(p, size, st.st_mtime if newest is None else newest)
    except OSError:
        return None


def _remove(p: Path) -> bool:
    try:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
        return True
    except FileNotFoundError:
        return True
    except OSError:
        return False


# ------------------------------------------------------------------ HTTP guards

def same_origin(origin: str, host: str, forwarded_host: str = "") -> bool:
    """Whether a browser's Origin header names the host the request was sent to."""
    if origin in ("", "null"):
        return False
    netloc = urlsplit(origin).netloc.lower()
    return bool(netloc) and netloc in {h.strip().lower() for h in (host, *forwarded_host.split(",")) if h}


class OriginGuard:
    """ASGI middleware: a state-changing request from another site's page is refused (403);
    an upload while the temp folder is over its limit is refused (507)."""

    def __init__(self, app, temp: TempFolder | None = None) -> None:
        self.app = app
        self.temp = temp

    async def __call__(self, scope, receive, send) -> None:
        if scope.get("type") != "http" or scope.get("method") not in UNSAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        origin = headers.get("origin")
        if origin is not None and not same_origin(origin, headers.get("host", ""),
                                                  headers.get("x-forwarded-host", "")):
            await _json(send, 403, f"cross-origin request refused: Origin {origin[:100]} is not this app")
            return
        path = scope.get("path", "")
        if self.temp is not None and path.endswith(UPLOAD_PATHS) and self.temp.total > self.temp.max_bytes \
                and self.temp.full():
            await _json(send, 507, "temporary folder full: uploads are refused until older results "
                                   "expire; retry later")
            return
        await self.app(scope, receive, send)


async def _json(send, status: int, message: str) -> None:
    body = json.dumps({"error": message, "detail": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


# ------------------------------------------------------------------ Gradio sessions

def bound_sessions(demo, max_sessions: int = MAX_SESSIONS) -> dict:
    """Gradio keeps one session state (a copy of the page config, ~0.1 MB) per session hash,
    and every raw HTTP call has a new one; keep at most `max_sessions` (least recently used
    go). Returns the keyword arguments for `demo.launch` (launch sets the capacity again,
    so setting the attribute alone is not enough), and bounds the queue's per-event
    analytics (10,000 by default) to ANALYTICS_EVENTS."""
    os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", str(ANALYTICS_EVENTS))
    demo.state_session_capacity = max_sessions
    if getattr(demo, "_queue", None) is not None:
        demo._queue.ANALYTICS_MAX_EVENTS = min(demo._queue.ANALYTICS_MAX_EVENTS, ANALYTICS_EVENTS)
    return {"state_session_capacity": max_sessions}


class SessionSweeper:
    """Drops Gradio sessions idle for SESSION_IDLE_S (they are recreated on the next event)."""

    def __init__(self, demo, idle_s: float = SESSION_IDLE_S) -> None:
        self.demo, self.idle_s = demo, idle_s

    def sweep(self) -> int:
        import datetime

        holder = getattr(self.demo, "state_holder", None)
        if holder is None:
            return 0
        cutoff = datetime.datetime.now() - datetime.timedelta(seconds=self.idle_s)
        dropped = 0
        with holder.lock:
            for sid, used in list(holder.time_last_used.items()):
                if used < cutoff:
                    holder.session_data.pop(sid, None)
                    holder.time_last_used.pop(sid, None)
                    dropped += 1
        # The queue keeps an (empty) set of event ids per session ever seen: drop those of
        # sessions without pending messages (finished raw calls); ~0.3 KB a call otherwise.
        q = getattr(self.demo, "_queue", None)
        ids, pending = getattr(q, "pending_event_ids_session", None), getattr(q, "pending_messages_per_session", None)
        if ids is not None and pending is not None:
            try:
                for sid, events in list(ids.items()):
                    if not events and sid not in pending:
                        ids.pop(sid, None)
            except RuntimeError:            # changed by the server meanwhile: next time
                pass
        return dropped

    def start(self, every_s: float = SWEEP_EVERY_S) -> None:
        def loop() -> None:
            while True:
                time.sleep(every_s)
                try:
                    self.sweep()
                except Exception:  # noqa: BLE001 - a Gradio internals change must not stop the app
                    return

        threading.Thread(target=loop, name="rag-sessions", daemon=True).start()
