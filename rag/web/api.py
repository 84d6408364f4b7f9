"""The REST API under /api/v1: JSON over HTTP, in the web app's own process (Gradio runs on
FastAPI; launch.py mounts this app there). OpenAPI at /api/v1/openapi.json, an interactive
page at /api/v1/docs.

Access: writes (adding and removing documents) need `Authorization: Bearer TOKEN`, the
token being RAG_API_TOKEN or the config's `api_token`; without one configured, writes are
refused. Reads are open to this machine (loopback); from elsewhere they need the token
when one is configured, and the config's `api_protect_reads = true` closes them on
loopback too. Every error is JSON `{"error": "..."}` with its status (rag.errors types
carry theirs), never a traceback or an HTML page. Bodies are bounded (MAX_BODY_BYTES).
"""
from __future__ import annotations

import hmac
import ipaddress
import json
import re
import tempfile
from pathlib import Path
from typing import Iterator

from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag.batchio import answer, read_items
from rag.errors import BadInput, RagError
from rag.web.libraries import LibrarySet
from rag.web.service import MAX_BATCH_QUERIES, MAX_UPLOAD_BYTES, safe_name

MAX_BODY_BYTES = MAX_UPLOAD_BYTES                 # per request: documents and batch files
MAX_JSON_BYTES = 256 * 1024                       # search and cite bodies
BATCH_KINDS = {"application/x-ndjson": ".jsonl", "application/jsonl": ".jsonl",
               "application/json-lines": ".jsonl", "text/plain": ".txt", "text/csv": ".csv"}
_LINE = re.compile(r"^[^:]*:(\d+): (.*?)( \(skipped\))?$")


class ApiError(RagError):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.http_status = status


class SearchBody(BaseModel):
    q: str = Field(description="the question")
    k: int = Field(5, description="results to return, 1-100")
    library: list[str] | str | None = Field(None, description="library name(s); all when absent")
    source: str = Field("", description="only this file (or folder prefix)")
    article: str = Field("", description="only articles whose title or author contains this")


class CiteBody(BaseModel):
    quote: str = Field(description="the quote to locate")
    k: int = Field(3, description="related passages when the quote is not found, 1-10")


def _offline_docs(api: FastAPI) -> None:
    """The interactive docs page (Swagger UI) with its scripts served from the
    `swagger-ui-bundle` package: FastAPI's default loads them from a CDN, which left the
    page blank on machines without internet."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from starlette.requests import Request
    from starlette.staticfiles import StaticFiles

    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:             # the page is optional: openapi.json stays available
        return
    api.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @api.get("/docs", include_in_schema=False)
    async def docs(request: Request):
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(openapi_url=f"{root}/openapi.json", title="rag REST API",
                                   swagger_js_url=f"{root}/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}/docs-assets/swagger-ui.css",
                                   swagger_favicon_url=f"{root}/docs-assets/favicon-32x32.png")


def create_api(libs: LibrarySet, token: str = "", protect_reads: bool = False) -> FastAPI:
    api = FastAPI(title="rag REST API", version="1",
                  description="检索 search, 引文溯源 citation lookup, 批量 batch and 文库 libraries. "
                              "Writes need `Authorization: Bearer <RAG_API_TOKEN>`.",
                  openapi_url="/openapi.json", docs_url=None, redoc_url=None)
    _offline_docs(api)

    # ---- errors: JSON, never HTML or a traceback
    @api.exception_handler(RagError)
    async def _rag_error(_req, e: RagError):
        return JSONResponse({"error": str(e)}, status_code=getattr(e, "http_status", 400))

    @api.exception_handler(RequestValidationError)
    async def _invalid(_req, e: RequestValidationError):
        first = (e.errors() or [{}])[0]
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid')}".strip(": ")}, status_code=400)

    @api.exception_handler(StarletteHTTPException)
    async def _http(_req, e: StarletteHTTPException):
        return JSONResponse({"error": str(e.detail)}, status_code=e.status_code)

    @api.exception_handler(Exception)
    async def _unexpected(_req, e: Exception):
        print(f"error: unexpected {type(e).__name__} in the API: {e}", flush=True)
        return JSONResponse({"error": f"internal error ({type(e).__name__})"}, status_code=500)

    # ---- access
    def bearer_ok(request: Request) -> bool:
        got = request.headers.get("authorization", "")
        scheme, _, value = got.partition(" ")
        return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(),
                                                                                   token.encode())

    def can_read(request: Request) -> None:
        if not token or bearer_ok(request):
            return
        if protect_reads or not _loopback(request):
            raise ApiError("this API needs Authorization: Bearer <token>", 401)

    def can_write(request: Request) -> None:
        if not token:
            raise ApiError("writes are disabled: the server has no API token (set RAG_API_TOKEN "
                           "or api_token in the config)", 401)
        if not bearer_ok(request):
            raise ApiError("writes need Authorization: Bearer <token>", 401)

    # ---- search and cite
    def do_search(q, k, library, source, article) -> dict:
        query, results, ms, _t = libs.search(q, k, library, source or None, article or None)
        return {"query": query, "generations": ms.generations, "results": results}

    @api.get("/search", summary="Ranked passages for a question")
    def search_get(request: Request, q: str = Query(..., description="the question"),
                   k: str = Query("5", description="results, 1-100"),
                   library: list[str] = Query([], description="library name; repeat for several; all when absent"),
                   source: str = "", article: str = "") -> dict:
        can_read(request)
        return do_search(q, _number(k, "k"), library or None, source, article)

    @api.post("/search", summary="Ranked passages for a question (JSON body)")
    def search_post(request: Request, body: SearchBody) -> dict:
        can_read(request)
        return do_search(body.q, body.k, body.library, body.source, body.article)

    @api.post("/cite", summary="Where a quote comes from, in every library")
    def cite(request: Request, body: CiteBody) -> dict:
        can_read(request)
        d, _ms = libs.cite(body.quote, body.k)
        return d

    # ---- batch
    @api.post("/batch", summary="Answer many questions; NDJSON streamed back, one line per question",
              description="Body: application/x-ndjson or application/jsonl lines {\"id\", \"query\"}, "
                          "text/plain one question a line, text/csv with an id,query header, or "
                          "multipart/form-data with a `file`. Query parameters: k, library (repeatable). "
                          "A bad line is answered in place with {\"line\", \"error\"}.")
    async def batch(request: Request, k: str = "10", library: list[str] = Query([])):
        can_read(request)
        kk = _number(k, "k")
        searcher = libs.searcher(library or None)
        path, name = await _spool_batch(request)
        try:
            from rag.search import check_k

            check_k(kk)
            read_items(path, name=name, on_error=lambda _m: None).close()   # refuses a bad file at once
        except BaseException:
            path.parent.joinpath(path.name).unlink(missing_ok=True)
            _rmdir(path.parent)
            raise
        return StreamingResponse(_stream(path, name, searcher, kk), media_type="application/x-ndjson")

    # ---- libraries
    @api.get("/libraries", summary="The libraries: documents, chunks, embedder, generation")
    def libraries(request: Request) -> dict:
        can_read(request)
        groups = libs.groups()
        out = []
        for name in libs.names():
            lib = libs.get(name)
            snap = lib.snapshot()
            c = snap.manifest.get("counts", {})
            out.append({"name": name, "documents": c.get("files"), "chunks": c.get("chunks"),
                        "generation": snap.generation,
                        "embedder": snap.manifest.get("embedder", {}).get("spec"),
                        "editable": lib.service.corpus is not None,
                        "searchable_with": next((g for g in groups if name in g), [name])})
        return {"libraries": out}

    @api.get("/libraries/{name}/documents", summary="The documents of a library")
    def documents(request: Request, name: str) -> dict:
        can_read(request)
        lib = libs.get(name)
        store = lib.snapshot().index.store
        arts: dict[str, list] = {}
        for a in store.articles():
            arts.setdefault(a["source"], []).append(
                {"article": a["article"], "title": a["title"], "author": a["author"], "chunks": a["chunks"]})
        return {"library": name, "documents": [
            {"source": s, "sha256": sha, "chunks": sum(x["chunks"] for x in arts.get(s, [])),
             "articles": arts.get(s, [])} for s, sha, _enc in store.files()]}

    @api.post("/libraries/{name}/documents", status_code=201, summary="Add a document and update the index",
              description="multipart/form-data with a `file`, or the raw bytes with ?name=FILE.")
    async def add_document(request: Request, name: str, filename: str | None = Query(None, alias="name")):
        can_write(request)
        lib = libs.get(name)
        svc = lib.service
        if svc.corpus is None:
            raise ApiError(f"library {name!r} has no corpus folder: documents cannot be added", 409)
        data, upload_name = await _read_upload(request, filename)
        safe = safe_name(upload_name or "")
        if safe is None:
            raise BadInput(f"not an accepted document name: {upload_name!r}")
        if (svc.corpus / safe).exists():
            raise ApiError(f"{safe} is already in library {name!r}; remove it first to replace it", 409)
        return await run_in_threadpool(_add, svc, safe, data)

    @api.delete("/libraries/{name}/documents/{file:path}", summary="Remove a document and update the index")
    def remove_document(request: Request, name: str, file: str) -> dict:
        can_write(request)
        lib = libs.get(name)
        svc = lib.service
        if svc.corpus is None:
            raise ApiError(f"library {name!r} has no corpus folder: documents cannot be removed", 409)
        known = {s for s, _sha, _enc in lib.snapshot().index.store.files()}
        if file not in known:
            raise ApiError(f"no document {file!r} in library {name!r}", 404)
        log: list[str] = []
        removed = svc.remove_documents([file], log.append)
        if not removed:
            raise ApiError(f"{file!r} could not be removed: " + "; ".join(log), 409)
        summary = svc.reindex(log.append, only=removed)
        return {"library": name, "removed": removed, "generation": lib.snapshot().generation,
                "summary": summary}

    return api


# ------------------------------------------------------------------ helpers

def _number(value: str, what: str):
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise BadInput(f"{what} must be a whole number, not {str(value)[:24]!r}") from None
    return int(f) if f.is_integer() else f


def _loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


async def _bounded_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(f"request body is {int(declared) / 2**20:.1f} MB; the limit is {limit // 2**20} MB", 413)
    buf = bytearray()
    async for part in request.stream():
        buf += part
        if len(buf) > limit:
            raise ApiError(f"request body is larger than the {limit // 2**20} MB limit", 413)
    return bytes(buf)


async def _read_upload(request: Request, name: str | None) -> tuple[bytes, str | None]:
    """(bytes, file name) of a multipart `file` or of a raw body."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    data = await _bounded_body(request)
    if ctype == "multipart/form-data":
        request._body = data                       # starlette parses the form from the cached body
        form = await request.form(max_files=1, max_fields=8)
        up = form.get("file")
        if up is None or isinstance(up, str):
            raise BadInput("multipart body needs a `file` part")
        content = await up.read()
        await form.close()
        return content, name or up.filename
    if not data:
        raise BadInput("empty request body")
    return data, name


async def _spool_batch(request: Request) -> tuple[Path, str]:
    """The batch body in a temporary file (bounded), with the name its kind calls for."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        data, name = await _read_upload(request, None)
        suffix = Path(name or "").suffix.lower()
        if suffix not in (".jsonl", ".txt", ".csv"):
            raise BadInput(f"unsupported batch file type {suffix or '(none)'}; use .jsonl, .txt or .csv")
    elif ctype in BATCH_KINDS:
        data, suffix = await _bounded_body(request), BATCH_KINDS[ctype]
    else:
        raise ApiError(f"unsupported content type {ctype or '(none)'}; send application/x-ndjson, "
                       f"application/jsonl, text/plain, text/csv or multipart/form-data", 415)
    folder = Path(tempfile.mkdtemp(prefix="rag-api-batch-"))
    path = folder / f"batch{suffix}"
    path.write_bytes(data)
    return path, f"batch{suffix}"


def _rmdir(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def _stream(path: Path, name: str, searcher, k: int) -> Iterator[bytes]:
    """One NDJSON line per question, in order; bad lines answered in place; the spooled
    file removed when done (or when the client goes away)."""
    read_errors: list[tuple[int, str]] = []
    bad: dict[int, str] = {}
    count = 0

    def on_error(msg: str) -> None:
        m = _LINE.match(msg)
        read_errors.append((int(m.group(1)), m.group(2)) if m else (0, msg))

    def items():
        nonlocal count
        for it in read_items(path, name=name, on_error=on_error):
            count += 1
            if count > MAX_BATCH_QUERIES:
                raise BadInput(f"more than {MAX_BATCH_QUERIES} questions; split the file")
            it.extra["__errors"] = read_errors[:]     # read errors met before this item
            read_errors.clear()
            yield it

    def line(obj: dict) -> bytes:
        return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8")

    def on_bad(it, e: RagError) -> None:
        bad[it.line] = str(e)

    try:
        for group, records in answer(items(), searcher, k, on_bad, size=16):
            recs = iter(records)
            for it in group:
                for no, why in it.extra.pop("__errors", []):
                    yield line({"line": no, "error": why})
                if it.line in bad:
                    yield line({"id": it.id, "line": it.line, "error": bad.pop(it.line)})
                    continue
                rec = next(recs)
                rec.pop("__errors", None)
                yield line(rec)
        for no, why in read_errors:
            yield line({"line": no, "error": why})
    except RagError as e:
        yield line({"error": str(e)})
    finally:
        path.unlink(missing_ok=True)
        _rmdir(path.parent)


def _add(svc, safe: str, data: bytes) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="rag-api-doc-"))
    src = folder / safe
    try:
        src.write_bytes(data)
        log: list[str] = []
        added = svc.add_documents([str(src)], log.append)
        if not added:
            raise BadInput("; ".join(log) or f"{safe} was not added")
        try:
            summary = svc.reindex(log.append)
        except BaseException:
            (svc.corpus / added[0]).unlink(missing_ok=True)    # not indexed: not added either
            raise
    finally:
        src.unlink(missing_ok=True)
        _rmdir(folder)
    return {"added": added, "generation": svc.live.get().generation, "summary": summary}


def mount_api(app, libs: LibrarySet, config=None) -> None:
    """Serve the API under /api/v1 of the running Gradio app (ahead of Gradio's own routes)."""
    from starlette.routing import Mount

    from rag import settings

    token = settings.get().api_token or (config.api_token if config else "")
    api = create_api(libs, token, bool(config and config.protect_reads))
    app.router.routes.insert(0, Mount("/api/v1", app=api))
