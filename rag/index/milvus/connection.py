"""Where the Milvus index lives and one client per place, with failures as typed one-line errors.

A URI that is a local path ending in `.db` runs milvus-lite in this process (a folder;
one process at a time holds its lock); `http(s)://host:19530` is a Milvus server or
cluster. The token is never written to disk: it comes from `--milvus-token` or
`RAG_MILVUS_TOKEN` each time.

Writes are serialised (`WRITE_LOCK`): concurrent inserts from several threads silently
lost 100-200 of 400 confirmed rows in milvus-lite (issue 14), so the builder never writes
from two threads and checks counts after every write.
"""
from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from rag import settings
from rag.errors import BackendError, RagError, require

DEFAULT_COLLECTION = "rag"
CONNECT_TIMEOUT_S = 10.0
WRITE_LOCK = threading.RLock()
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,180}")
_clients: dict[tuple[str, str], object] = {}
_clients_lock = threading.Lock()
_override: dict[str, str] = {}


@dataclass(frozen=True)
class Target:
    uri: str
    token: str = ""
    collection: str = DEFAULT_COLLECTION    # the alias; physical collections are <alias>_gNNNNNN

    @property
    def lite(self) -> bool:
        return is_lite(self.uri)


def is_lite(uri: str) -> bool:
    return not re.match(r"^[a-z]+://", uri) and uri.endswith(".db")


def normalise_uri(uri: str) -> str:
    """A milvus-lite path made absolute (the manifest must name it from any working folder)."""
    uri = uri.strip()
    if not uri:
        raise BackendError("no Milvus URI: give --milvus-uri PATH.db or http://host:19530 "
                           "(or set RAG_MILVUS_URI)")
    if is_lite(uri):
        return str(Path(uri).expanduser().resolve())
    if not re.match(r"^(https?|tcp|grpc)://[^\s/]+(:\d+)?/?$", uri):
        raise BackendError(f"not a Milvus URI: {uri!r}; use a local path ending in .db "
                           f"(embedded) or http://host:19530 (server)")
    return uri.rstrip("/")


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name or ""):
        raise BackendError(f"not a valid Milvus collection name: {name!r} (letters, digits and "
                           f"underscores, starting with a letter)")
    return name


def use(uri: str | None = None, token: str | None = None, collection: str | None = None) -> None:
    """Process-wide choice from command-line flags (they win over RAG_MILVUS_* and the manifest)."""
    for key, value in (("uri", uri), ("token", token), ("collection", collection)):
        if value:
            _override[key] = value


def resolve(manifest: dict | None = None, uri: str | None = None, token: str | None = None,
            collection: str | None = None) -> Target:
    """Arguments > flags (`use`) > RAG_MILVUS_* > what the manifest recorded."""
    s = settings.get()
    m = (manifest or {}).get("milvus") or {}
    uri = uri or _override.get("uri") or s.milvus_uri or m.get("uri") or ""
    token = token or _override.get("token") or s.milvus_token or ""
    name = collection or _override.get("collection") or s.milvus_collection or m.get("alias") \
        or DEFAULT_COLLECTION
    return Target(normalise_uri(uri), token, check_name(name))


def _error(target: Target, e: BaseException) -> BackendError:
    text = f"{type(e).__name__}: {e}"
    low = text.lower()
    where = f"Milvus at {target.uri}"
    if "locked" in low or "holds the lock" in low or "open local milvus failed" in low:
        return BackendError(f"the embedded Milvus database {target.uri} is open in another process "
                            f"(milvus-lite serves one process at a time); stop that process, or "
                            f"use a Milvus server (--milvus-uri http://host:19530) for several")
    if any(w in low for w in ("auth", "credential", "token", "password", "permission denied",
                              "unauthenticated")):
        return BackendError(f"{where} refused the token; check --milvus-token or RAG_MILVUS_TOKEN")
    if any(w in low for w in ("fail connecting", "unavailable", "deadline", "connection refused",
                              "failed to connect", "timeout")):
        return BackendError(f"cannot reach {where}; check the address and that the server is running")
    return BackendError(f"{where} failed: {str(e).splitlines()[0][:300] if str(e) else type(e).__name__}")


def client(target: Target):
    """The one client of this process for `target` (milvus-lite: one server thread per path)."""
    key = (target.uri, target.token)
    with _clients_lock:
        c = _clients.get(key)
        if c is not None:
            return c
        pymilvus = require("pymilvus", "milvus", "the Milvus backend")
        # query_iterator warns on every page that milvus-lite has no MVCC timestamp to give
        logging.getLogger("pymilvus").setLevel(logging.ERROR)
        if target.lite:
            require("milvus_lite", "milvus", "an embedded Milvus database (*.db)")
            # the in-process server logs a traceback for each RPC it lacks (query_iterator asks
            # for a timestamp first, then carries on without): not the user's business
            logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
            Path(target.uri).parent.mkdir(parents=True, exist_ok=True)
        try:
            c = pymilvus.MilvusClient(uri=target.uri, token=target.token, timeout=CONNECT_TIMEOUT_S)
            c.list_collections()          # fails here, not in the middle of a search, when refused
        except Exception as e:  # noqa: BLE001 - every driver failure becomes one typed line
            raise _error(target, e) from None
        _clients[key] = c
        return c


def call(target: Target, fn, *args, **kwargs):
    """Run a client call; a driver failure becomes one BackendError line."""
    try:
        return fn(*args, **kwargs)
    except RagError:
        raise
    except Exception as e:  # noqa: BLE001
        raise _error(target, e) from None


def release(uri: str | None = None) -> None:
    """Close clients (of one URI, or all) and stop milvus-lite's server for them, which is what
    frees the `.db` folder's lock (`close()` alone does not)."""
    with _clients_lock:
        keys = [k for k in _clients if uri is None or k[0] == uri]
        for k in keys:
            c = _clients.pop(k)
            try:
                c.close()
            except Exception:  # noqa: BLE001 - closing a dead connection
                pass
    for k in keys:
        if is_lite(k[0]):
            try:
                from milvus_lite.server_manager import server_manager_instance

                server_manager_instance.release_server(k[0])
            except Exception:  # noqa: BLE001
                pass
