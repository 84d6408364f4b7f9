"""Optional login: RAG_AUTH=user:pass, or RAG_AUTH_FILE with one user:pass per line."""
from __future__ import annotations

import hmac
import threading
from pathlib import Path
from typing import Callable

from rag import settings
from rag.errors import RagError


def load_auth() -> list[tuple[str, str]] | None:
    pairs: list[tuple[str, str]] = []
    env = settings.get().auth
    if env:
        user, sep, pw = env.partition(":")
        if not sep or not user or not pw:
            raise RagError("RAG_AUTH must be user:password")
        pairs.append((user, pw))
    path = settings.get().auth_file
    if path:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise RagError(f"cannot read RAG_AUTH_FILE {path}: {e.strerror or e}") from None
        for no, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, pw = line.partition(":")
            if not sep or not user or not pw:
                raise RagError(f"{path}:{no}: expected user:password")
            pairs.append((user, pw))
        if not pairs:
            raise RagError(f"RAG_AUTH_FILE {path} has no user:password lines")
    return pairs or None


def make_auth(pairs: list[tuple[str, str]]) -> Callable[[str, str], bool]:
    def check(user: str, password: str) -> bool:
        ok = False
        for u, p in pairs:       # compare all, in constant time, so timing says nothing
            ok |= hmac.compare_digest(u.encode(), (user or "").encode()) & \
                hmac.compare_digest(p.encode(), (password or "").encode())
        return ok
    return check




# ------------------------------------------------------------------- login throttling

FREE_FAILURES = 5          # failed logins a client may make before it is slowed down
MAX_DELAY_S = 300.0        # the longest wait between attempts (doubles per failure: 1, 2, 4 … s)
MAX_CLIENTS = 10_000       # clients remembered (oldest forgotten first): bounded memory
LOGIN_PATHS = ("/login", "/login/")


class LoginThrottle:
    """Failed logins per client (peer address): after FREE_FAILURES, each further attempt
    must wait 2^(n - FREE_FAILURES) s (at most MAX_DELAY_S) after the last failure, else it
    is refused with 429 and a Retry-After header, without checking the password. A success
    forgets the client. Why (issue 16, finding 8): 100 wrong passwords took 1.3 s and the
    right one was then accepted; now the 100th attempt comes after hours, not seconds."""

    def __init__(self, free: int = FREE_FAILURES, max_delay_s: float = MAX_DELAY_S,
                 max_clients: int = MAX_CLIENTS, clock: Callable[[], float] | None = None) -> None:
        import collections
        import time

        self.free, self.max_delay_s, self.max_clients = free, max_delay_s, max_clients
        self.clock = clock or time.monotonic
        self._failures: collections.OrderedDict[str, tuple[int, float]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def wait_s(self, client: str) -> float:
        """Seconds this client must still wait before its next attempt (0: may try now)."""
        with self._lock:
            n, last = self._failures.get(client, (0, 0.0))
        if n < self.free:
            return 0.0
        delay = min(self.max_delay_s, 2.0 ** (n - self.free))
        return max(0.0, last + delay - self.clock())

    def failed(self, client: str) -> None:
        with self._lock:
            n, _ = self._failures.pop(client, (0, 0.0))
            self._failures[client] = (n + 1, self.clock())
            while len(self._failures) > self.max_clients:
                self._failures.popitem(last=False)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


class LoginThrottleMiddleware:
    """ASGI middleware applying a LoginThrottle to Gradio's POST /login."""

    def __init__(self, app, throttle: LoginThrottle | None = None) -> None:
        self.app = app
        self.throttle = throttle or LoginThrottle()

    async def __call__(self, scope, receive, send) -> None:
        if scope.get("type") != "http" or scope.get("method") != "POST" \
                or not scope.get("path", "").endswith(LOGIN_PATHS):
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("?", 0))[0]
        wait = self.throttle.wait_s(client)
        if wait > 0:
            import json
            import math

            body = json.dumps({"detail": f"too many failed logins from {client}: "
                                         f"wait {math.ceil(wait)} s before trying again"}).encode()
            await send({"type": "http.response.start", "status": 429,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"retry-after", str(math.ceil(wait)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        status = {}

        async def watch(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, receive, watch)
        code = status.get("code", 500)
        if code in (400, 401, 403):
            self.throttle.failed(client)
        elif code < 400:
            self.throttle.succeeded(client)
