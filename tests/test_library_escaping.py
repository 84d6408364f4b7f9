"""Issue 16, finding 6: every field of the Library tab is escaped, checked in a real browser.

The tab's HTML (rag.web.render.library_html, what the app puts in the tab) is built with a
script payload in every manifest field, every article field, the file name, its encoding
and the corpus path, then loaded into Debian's Chromium together with the page's own
scripts (render.HEAD). No payload may run (no dialog, no onerror counter, no injected
element) and each must be shown as text.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from rag.web import render

CHROMIUM = Path("/usr/bin/chromium")


def payload(field: str) -> str:
    return (f'<img src=x onerror="window.__xss=(window.__xss||[]).concat([\'{field}\'])">'
            f'<script>alert("{field}")</script>"\'><b class="injected">{field}</b>${{7*7}}{{{{x}}}}`')


def manifest_with_payloads() -> dict:
    return {
        "embedder": {"spec": payload("spec"), "id": payload("id"), "dim": payload("dim")},
        "counts": {"files": payload("files"), "chunks": payload("chunks")},
        "generation": payload("generation"), "created": payload("created"),
        "build_seconds": payload("build_seconds"), "chunker": payload("chunker"),
        "ann": payload("ann"), "corpus": payload("corpus"),
    }


ARTICLE_FIELDS = ("article", "title", "author", "affiliation", "chunks", "start", "end")


def tab_html(corpus: str = "") -> str:
    source = payload("source")
    articles = [{"source": source, **{f: payload(f) for f in ARTICLE_FIELDS}}]
    files = [(source, "sha", payload("encoding")), (payload("source2"), "sha", "utf-8")]
    return render.library_html(articles, files, manifest_with_payloads(), corpus, pending=[payload("pending")])


def test_every_library_field_is_escaped_in_the_markup():
    for corpus in ("", payload("corpus_arg")):
        html = tab_html(corpus)
        assert "<img" not in html and "<script" not in html and "<b " not in html
        assert "${" not in html and "{{" not in html and "`" not in html
        for field in ("spec", "id", "dim", "files", "chunks", "generation", "created", "build_seconds",
                      "chunker", "ann", "source", "source2", "encoding", "pending", *ARTICLE_FIELDS):
            assert f"&lt;b class=&quot;injected&quot;&gt;{field}&lt;/b&gt;" in html, field


@pytest.mark.skipif(not CHROMIUM.exists(),
                    reason="Debian Chromium not installed (/usr/bin/chromium); apt-get install -y chromium")
def test_library_tab_runs_no_payload_in_chromium():
    sync_api = pytest.importorskip("playwright.sync_api")
    page_html = (f"<!doctype html><html><head><meta charset='utf-8'>{render.HEAD}</head><body>"
                 f"<div id='tab'>{tab_html()}</div><div id='tab2'>{tab_html(payload('corpus_arg'))}</div>"
                 "</body></html>")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM),
                              args=["--no-sandbox", "--headless", "--disable-gpu"])
        try:
            pg = b.new_page()
            dialogs: list[str] = []
            pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            pg.set_content(page_html, wait_until="load")
            # Gradio's gr.HTML sets innerHTML: do the same, as the running app would
            pg.evaluate("""html => { const d = document.createElement('div'); d.id = 'inner';
                                     d.innerHTML = html; document.body.appendChild(d); }""", tab_html())
            pg.wait_for_timeout(300)                       # onerror fires after a failed load
            assert dialogs == []
            assert pg.evaluate("window.__xss || []") == []
            assert pg.locator("b.injected, img, script:not(head script)").count() == 0
            text = pg.inner_text("#tab")
            for field in ("spec", "generation", "chunker", "corpus", "title", "author", "encoding", "pending"):
                assert f'<b class="injected">{field}</b>' in text, field
        finally:
            b.close()
