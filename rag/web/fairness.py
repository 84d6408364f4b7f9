"""Fair and bounded search requests: what one request may cost, and whose turn is next.

Why (issue 16, finding 1): a 4,000-character query cost 1.9-2.6 s of encoder time (every
510-token window was encoded), and Gradio's queue is first-come first-served, so 8 clients
looping on such queries at k=100 made a normal query wait 21-24 s. Now:

* one request's cost is bounded: a query is encoded as its first window only
  (rag.embed.windows.QUERY_WINDOWS; 4,000 characters: 0.25 s instead of 1.9 s on 2 cores),
  and k adds ~0.5 ms per result (k=100 at 4,000 characters: 0.31 s in all, CMRC index);
* `estimate` turns (text length, k) into milliseconds with those measured constants; a
  request above HEAVY_MS is heavy;
* `FairQueue` runs at most SLOTS requests at once and at most HEAVY_SLOTS heavy ones: light
  requests go first, and within each class clients take turns (round robin), so a normal
  query never waits behind a pile of heavy ones, and heavy ones still all get served;
* a client (address, or user when logged in) may have at most PER_CLIENT_WAITING light and
  as many heavy requests waiting, and at most MAX_WAITING wait in all: beyond, a request is refused at once with
  `Overloaded` (HTTP 429) instead of holding a server thread;
* a request that waited MAX_WAIT_S is refused the same way.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from rag.errors import Overloaded

# Measured on the 2-core machine (bench/bench_abuse.py, /tmp cost probes): one query's
# encoder call is ~12 ms plus ~0.3 ms per character up to one window (~780 Chinese
# characters = 510 tokens); each result adds ~0.5 ms (reading, best sentence, context).
BASE_MS = 12.0
MS_PER_CHAR = 0.3
WINDOW_CHARS = 780
MS_PER_RESULT = 0.5
HEAVY_MS = 100.0            # ~300 characters at k=10: a normal question is far below

SLOTS = 4                   # requests running at once (threads of the search group)
HEAVY_SLOTS = 1             # of which heavy: one, so light ones always find a free core
PER_CLIENT_WAITING = 8      # requests one client may have waiting
MAX_WAITING = 24            # requests waiting in all (Gradio's search group has WORKERS threads)
MAX_WAIT_S = 60.0
WORKERS = MAX_WAITING + SLOTS   # Gradio concurrency limit of the search group


@dataclass(frozen=True)
class Cost:
    ms: float

    @property
    def heavy(self) -> bool:
        return self.ms >= HEAVY_MS


def estimate(text: str, k: int) -> Cost:
    """The expected cost of searching `text` for `k` results (ms on 2 cores)."""
    chars = min(len(text or ""), WINDOW_CHARS)
    return Cost(BASE_MS + MS_PER_CHAR * chars + MS_PER_RESULT * max(int(k), 0))


@dataclass
class _Ticket:
    client: str
    heavy: bool
    chosen: bool = False


class FairQueue:
    """Admission of search requests: light first, clients in turn, heavy ones bounded."""

    def __init__(self, slots: int = SLOTS, heavy_slots: int = HEAVY_SLOTS,
                 per_client: int = PER_CLIENT_WAITING, max_waiting: int = MAX_WAITING,
                 max_wait_s: float = MAX_WAIT_S) -> None:
        self.slots, self.heavy_slots = slots, heavy_slots
        self.per_client, self.max_waiting, self.max_wait_s = per_client, max_waiting, max_wait_s
        self._cv = threading.Condition()
        self._running = 0
        self._heavy_running = 0
        # per lane: client -> its waiting tickets, clients in turn order
        self._lanes: dict[bool, OrderedDict[str, deque[_Ticket]]] = {False: OrderedDict(), True: OrderedDict()}
        self._waiting_by_client: dict[tuple[str, bool], int] = {}   # (client, heavy) -> waiting
        self.served = {False: 0, True: 0}
        self.refused = 0

    # ---- public
    @contextmanager
    def turn(self, client: str, cost: Cost) -> Iterator[None]:
        """Wait for this request's turn, run the body, free the slot."""
        t = _Ticket(client or "?", cost.heavy)
        with self._cv:
            waiting = sum(self._waiting_by_client.values())
            if self._waiting_by_client.get((t.client, t.heavy), 0) >= self.per_client \
                    or waiting >= self.max_waiting:
                self.refused += 1
                raise Overloaded("server busy: too many requests waiting; retry in a few seconds")
            self._enqueue(t)
            self._dispatch()
            deadline = time.monotonic() + self.max_wait_s
            while not t.chosen:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._drop(t)
                    self.refused += 1
                    raise Overloaded(f"server busy: waited {self.max_wait_s:.0f} s without a turn; "
                                     f"retry later")
                self._cv.wait(left)
        try:
            yield
        finally:
            with self._cv:
                self._running -= 1
                if t.heavy:
                    self._heavy_running -= 1
                self.served[t.heavy] += 1
                self._dispatch()

    def snapshot(self) -> dict:
        with self._cv:
            return {"running": self._running, "heavy_running": self._heavy_running,
                    "waiting": sum(self._waiting_by_client.values()), "refused": self.refused,
                    "served_light": self.served[False], "served_heavy": self.served[True]}

    # ---- internals (called with the lock held)
    def _enqueue(self, t: _Ticket) -> None:
        self._lanes[t.heavy].setdefault(t.client, deque()).append(t)
        key = (t.client, t.heavy)
        self._waiting_by_client[key] = self._waiting_by_client.get(key, 0) + 1

    def _drop(self, t: _Ticket) -> None:
        q = self._lanes[t.heavy].get(t.client)
        if q is not None and t in q:
            q.remove(t)
            if not q:
                del self._lanes[t.heavy][t.client]
            self._unwait((t.client, t.heavy))

    def _unwait(self, key: tuple[str, bool]) -> None:
        n = self._waiting_by_client.get(key, 0) - 1
        if n > 0:
            self._waiting_by_client[key] = n
        else:
            self._waiting_by_client.pop(key, None)

    def _pop(self, heavy: bool) -> _Ticket | None:
        lane = self._lanes[heavy]
        if not lane:
            return None
        client, q = next(iter(lane.items()))
        t = q.popleft()
        del lane[client]
        if q:
            lane[client] = q            # to the back: the other clients go first
        self._unwait((client, heavy))
        return t

    def _dispatch(self) -> None:
        woke = False
        while self._running < self.slots:
            t = self._pop(False)
            if t is None and self._heavy_running < self.heavy_slots:
                t = self._pop(True)
            if t is None:
                break
            t.chosen = True
            self._running += 1
            if t.heavy:
                self._heavy_running += 1
            woke = True
        if woke:
            self._cv.notify_all()


def client_id(request: object) -> str:
    """Who a request comes from: the logged-in user, else the peer address."""
    user = getattr(request, "username", None)
    if user:
        return f"user:{user}"
    client = getattr(request, "client", None)
    host = getattr(client, "host", None)
    return f"ip:{host}" if host else "?"
