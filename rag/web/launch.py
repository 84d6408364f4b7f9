"""Start the web app: bring the index up to date, then serve the page (and its API)."""
from __future__ import annotations

import argparse
import atexit
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from rag import settings
from rag.embed import show_progress
from rag.errors import IndexBusy, RagError
from rag.index import default_index_dir, read_current, read_manifest
from rag.web import render as ui
from rag.web.auth import load_auth, make_auth
from rag.web.housekeeping import SessionSweeper, TempFolder, bound_sessions
from rag.web.libraries import libraries_for, read_config
from rag.web.live import LiveIndex
from rag.web.service import MAX_UPLOAD_BYTES, SEARCH_CONCURRENCY, Service, _say, update_index


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="文库检索 · 引文溯源 web app")
    p.add_argument("--index", default=None, help="index folder (default: index/, or $RAG_INDEX)")
    p.add_argument("--corpus", default=None,
                   help="folder of documents to index and manage (default: the corpus the index was "
                        "built from, else $RAG_CORPUS or seeds)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--config", default=None,
                   help="rag.toml naming several libraries ([[library]] name, corpus, index); "
                        "each is built or updated at start (overrides --index/--corpus)")
    from rag.cli.common import add_backend

    add_backend(p)            # --backend milvus --milvus-uri URI ... (docs/scale-out.md)
    return p.parse_args(argv)


def prepare_index(corpus: Path | None, index_dir: Path, **options) -> None:
    """Build or update the index of the corpus (incremental), printing progress."""
    if corpus is None or not corpus.is_dir():
        if read_current(index_dir) is None:
            raise RagError(f"no corpus folder {corpus} and no index in {index_dir}; "
                           f"start with --corpus DIR")
        _say(f"warning: corpus folder {corpus} not found; serving the existing index {index_dir} "
             f"(adding/removing documents disabled)")
        return
    _say(f"检查索引 checking index {index_dir} for corpus {corpus} …")
    try:
        report = update_index(corpus, index_dir, lambda m: _say("  " + m), progress=show_progress(),
                              **options)
    except RagError as e:
        if isinstance(e, IndexBusy) and read_current(index_dir) is not None:
            _say(f"warning: {e}; serving the current index, it is reloaded when that build finishes")
            return
        raise
    _say(report.summary())


def guards(demo, temp: TempFolder) -> list:
    """ASGI middleware of the app (issue 16): same-origin writes and bounded uploads, login
    throttling, defaults for raw API calls."""
    from starlette.middleware import Middleware

    from rag.web.apidefaults import ApiDefaults
    from rag.web.auth import LoginThrottleMiddleware
    from rag.web.housekeeping import OriginGuard

    return [Middleware(OriginGuard, temp=temp), Middleware(LoginThrottleMiddleware),
            Middleware(ApiDefaults, demo=demo)]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        from rag.cli.common import use_backend

        use_backend(args)
        index_dir = Path(args.index) if args.index else default_index_dir()
        if args.corpus:
            corpus: Path | None = Path(args.corpus)
        else:
            m = read_manifest(index_dir) if index_dir.exists() else None
            corpus = Path(m["corpus"]) if m else Path(settings.get().corpus)
        config = read_config(args.config) if args.config else None
        if config is not None:                      # the first library is served as before
            index_dir, corpus = config.libraries[0].index, config.libraries[0].corpus
        auth = load_auth()
        prepare_index(corpus, index_dir, **(config.libraries[0].options if config else {}))
        live = LiveIndex(index_dir, log=_say)
        snap = live.get()
        _say(f"索引就绪 index ready: {snap.generation}, {snap.index.size} chunks"
             + ("" if snap.citer is not None else " (citation lookup unavailable: rag.cite missing)"))
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    workdir = Path(tempfile.mkdtemp(prefix="rag-app-"))
    atexit.register(shutil.rmtree, workdir, True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))    # `kill` too cleans the folder up
    # uploads and batch results in one folder, Gradio's cache: results are served without a
    # second copy, and housekeeping removes both after RAG_TEMP_TTL (rag.web.housekeeping)
    os.environ["GRADIO_TEMP_DIR"] = str(workdir)
    temp = TempFolder(workdir)
    svc = Service(live, index_dir, corpus if corpus and corpus.is_dir() else None, workdir)
    import gradio as gr

    from rag.web.ui import build_ui

    svc.temp = temp
    try:
        libs = libraries_for(config, svc, workdir, _say,
                             lambda c: prepare_index(c.corpus, c.index, **c.options))
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    demo = build_ui(svc, libs)
    demo.queue(default_concurrency_limit=SEARCH_CONCURRENCY, max_size=256)
    limits = bound_sessions(demo)             # rag.web.housekeeping: no unbounded per-session state
    theme = gr.themes.Soft(primary_hue="indigo", neutral_hue="slate",
                           font=["system-ui", "PingFang SC", "Noto Sans CJK SC", "Microsoft YaHei",
                                 "sans-serif"],
                           font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Noto Sans Mono CJK SC",
                                      "monospace"])
    try:
        _app, url, _share = demo.launch(
            server_name=args.host, server_port=args.port, share=False, inbrowser=False,
            auth=make_auth(auth) if auth else None, auth_message="请登录 Please sign in",
            allowed_paths=[str(workdir)], max_file_size=MAX_UPLOAD_BYTES,
            theme=theme, css=ui.CSS, head=ui.HEAD, footer_links=["api"], show_error=False,
            enable_monitoring=False, prevent_thread_lock=True, quiet=True, ssr_mode=False,
            app_kwargs={"middleware": guards(demo, temp)}, **limits)
    except OSError as e:
        print(f"error: cannot serve on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 2
    from rag.web.api import mount_api

    mount_api(_app, libs, config)
    temp.start(log=_say)
    SessionSweeper(demo).start()
    _say(f"网页已就绪 ready: {url}" + ("  (login required)" if auth else ""))
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        demo.close()
    return 0


