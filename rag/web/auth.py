"""Optional login: RAG_AUTH=user:pass, or RAG_AUTH_FILE with one user:pass per line."""
from __future__ import annotations

import hmac
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


