#!/usr/bin/env python3
"""文库检索 · 引文溯源: the web app over a rag index (Gradio).

    python app.py [--index DIR] [--corpus DIR] [--host 127.0.0.1] [--port 7860]

On start the index of the corpus is built or brought up to date (incremental; quick when
nothing changed), then the page is served. Tabs: 检索 Search, 引文溯源 Citation lookup,
批量 Batch, 文库 Library. API endpoints (gradio_client): /search and /cite (JSON), /batch
(files); undocumented: /search_html and /cite_html (the page's own rendered HTML) and
/library_add, /library_remove, /library_rescan (what the Library tab's buttons do).
Optional login: RAG_AUTH=user:pass, or RAG_AUTH_FILE=path with one user:pass per line.

This file is the entry point only: rag.web (service, ui, launch) does the rest.
"""
import os
import sys

# Before anything loads the embedding engine: spinning OpenMP workers starve the web server
# (and each other) on a busy machine; passive waiting keeps query latency flat.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rag.web.launch import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
