#!/usr/bin/env python3
"""文库检索 · 引文溯源: the web app over a rag index (Gradio).

    python app.py [--index DIR] [--corpus DIR] [--host 127.0.0.1] [--port 7860]

On start the index of the corpus is built or brought up to date (incremental; quick when
nothing changed), then the page is served. Tabs: 检索 Search, 引文溯源 Citation lookup,
批量 Batch, 文库 Library. API endpoints (gradio_client): /search and /cite (JSON), /batch
(files); undocumented: /search_html and /cite_html (the page's own rendered HTML) and
/library_add, /library_remove, /library_rescan (what the Library tab's buttons do).
Optional login: RAG_AUTH=user:pass, or RAG_AUTH_FILE=path with one user:pass per line.

This file is wiring only: the library (rag.index, rag.search, rag.cite, rag.batch) does the
work, rag.live keeps the loaded index current, rag.ui_render turns results into HTML.
"""
from __future__ import annotations

import os

# Before anything loads the embedding engine: spinning OpenMP workers starve the web server
# (and each other) on a busy machine; passive waiting keeps query latency flat.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse
import atexit
import hmac
import itertools
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

import gradio as gr

from rag import ui_render as ui
from rag.batch import Writer, answer, read_items
from rag.chunking import ChunkSettings
from rag.documents import decode
from rag.embedding import show_progress
from rag.errors import RagError
from rag.index import build, default_index_dir, read_current, read_manifest
from rag.live import LiveIndex, Snapshot, citer_class
from rag.search import check_k, clean_query

DEFAULT_CORPUS = "seeds"
MAX_UPLOAD_BYTES = 20 * 1024 * 1024            # per uploaded file (documents and batch files)
DOC_SUFFIXES = (".txt", ".md")
BATCH_SUFFIXES = (".txt", ".csv", ".jsonl")
MAX_BATCH_QUERIES = 10_000
SEARCH_CONCURRENCY = 4                          # searches and citation lookups at once
EXAMPLES = [
    "四川公安开展的“五大行动”包括哪些内容？",
    "如何坚持和发展新时代“枫桥经验”化解矛盾纠纷？",
    "怎样打击治理电信网络诈骗犯罪？",
    "公安机关如何推进科技信息化和新质战斗力建设？",
    "广东公安如何为党的二十大营造安全稳定的环境？",
]
UNAVAILABLE = "引文溯源暂不可用 citation lookup unavailable"


def _say(msg: str) -> None:
    print(msg, flush=True)


# ------------------------------------------------------------------------------ errors

_ZH = [
    (re.compile(r"^the (query|quote) is empty"), "请输入内容后再提交。"),
    (re.compile(r"^the query is (\d+) characters long; the limit is (\d+)"), "问题过长：{0} 字，上限 {1} 字。"),
    (re.compile(r"^the quote is (\d+) characters long; the limit is (\d+)"), "引文过长：{0} 字，上限 {1} 字。"),
    (re.compile(r"^the quote is too short to locate: it has (\d+) .* at least (\d+)"),
     "引文太短，无法定位：只有 {0} 个汉字或字母数字，至少需要 {1} 个。"),
    (re.compile(r"^k must be"), "返回条数必须是 1 到 100 之间的整数。"),
    (re.compile(r"^no index in"), "索引尚未建立。"),
    (re.compile(r"^another build is already writing"), "另一个索引构建正在进行，请稍后再试。"),
]


def zh_message(e: Exception) -> tuple[str, str]:
    """(Chinese message, original English detail) for a user-facing error."""
    text = str(e)
    for pat, zh in _ZH:
        m = pat.search(text)
        if m:
            return zh.format(*m.groups()), text
    return "出错了：" + text, ""


def _unexpected(e: Exception) -> str:
    print(f"error: unexpected {type(e).__name__}: {e}", file=sys.stderr, flush=True)
    return ui.message_html("内部错误，请重试；若持续出现请查看服务器日志。", "error",
                           f"unexpected {type(e).__name__}")


# ------------------------------------------------------------------------------ service

class Service:
    """What the UI and the API both call: one place for every library call."""

    def __init__(self, live: LiveIndex, index_dir: Path, corpus: Path | None, workdir: Path) -> None:
        self.live = live
        self.index_dir = index_dir
        self.corpus = corpus
        self.workdir = workdir
        self.build_lock = threading.Lock()

    # ---- search and cite
    def search(self, query: object, k: object = 5, source: str | None = None,
               article: str | None = None) -> tuple[str, list[dict], Snapshot, float]:
        q = clean_query(query)
        k = check_k(k)
        snap = self.live.get()
        t0 = time.perf_counter()
        res = snap.searcher.search(q, k=k, source=source or None, article=article or None)
        return q, [r.to_dict() for r in res], snap, (time.perf_counter() - t0) * 1000

    def contexts(self, snap: Snapshot, results: list[dict]) -> dict[str, tuple[list[dict], list[dict]]]:
        out = {}
        for r in results:
            around = snap.index.store.neighbours(r["source"], r["start"], r["end"], before=1, after=1)
            out[r["id"]] = ([c.to_dict() for c in around if c.start < r["start"]],
                            [c.to_dict() for c in around if c.start >= r["end"]])
        return out

    def cite(self, quote: object, k: object = 5) -> tuple[dict, Snapshot, float]:
        k = check_k(k)
        snap = self.live.get()
        if snap.citer is None:
            raise RagError(UNAVAILABLE)
        t0 = time.perf_counter()
        res = snap.citer.lookup(quote, k=k)
        return res.to_dict(), snap, (time.perf_counter() - t0) * 1000

    @staticmethod
    def cite_available() -> bool:
        return citer_class() is not None

    # ---- choices for the filters
    def file_choices(self) -> list[tuple[str, str]]:
        snap = self.live.get()
        return [("全部文件 all files", "")] + [(s, s) for s, _sha, _enc in snap.index.store.files()]

    def article_choices(self, source: str | None = None) -> list[tuple[str, str]]:
        snap = self.live.get()
        out = [("全部文章 all articles", "")]
        seen = set()
        for a in snap.index.store.articles():
            if source and a["source"] != source:
                continue
            title = a.get("title") or ""
            if not title or title in seen:
                continue
            seen.add(title)
            label = f"《{title}》 {a.get('author') or ''}".strip()
            out.append((label, title))
        return out

    # ---- batch
    def batch(self, path: str, k: int,
              progress: Callable[[float, str], None]) -> tuple[int, int, Path, Path, list[str]]:
        src = Path(path)
        if src.suffix.lower() not in BATCH_SUFFIXES:
            raise RagError(f"不支持的文件类型 {src.suffix or '(无)'}：请上传 .txt、.csv 或 .jsonl")
        if src.stat().st_size > MAX_UPLOAD_BYTES:
            raise RagError(f"文件超过 {MAX_UPLOAD_BYTES // 2**20} MB 上限")
        k = check_k(k)
        warnings: list[str] = []
        name = src.name

        def warn(msg: str) -> None:
            warnings.append(msg.replace(str(src), name))

        items = list(itertools.islice(read_items(src, on_error=warn), MAX_BATCH_QUERIES + 1))
        if len(items) > MAX_BATCH_QUERIES:
            raise RagError(f"问题太多：超过 {MAX_BATCH_QUERIES} 条的上限，请拆分文件")
        if not items:
            raise RagError("文件中没有可用的问题")
        out_dir = self.workdir / "batch" / uuid.uuid4().hex[:12]
        out_dir.mkdir(parents=True)
        stem = _safe_stem(src.stem) or "batch"
        jsonl, csvp = out_dir / f"{stem}-results.jsonl", out_dir / f"{stem}-results.csv"
        snap = self.live.get()
        writers = [Writer(jsonl), Writer(csvp)]
        done = answered = 0

        def bad(it, e: RagError) -> None:
            warn(f"{name}:{it.line}: {e} (skipped)")

        try:
            for group, records in answer(iter(items), snap.searcher, k, bad, size=16):
                for rec in records:
                    for w in writers:
                        w.write(rec)
                answered += len(records)
                done += len(group)
                progress(done / len(items), f"已完成 {done}/{len(items)}")
        except BaseException:
            for w in writers:                  # no half-written result files
                getattr(w, "abort", w.close)()
            raise
        for w in writers:
            w.close()
        return answered, len(items), jsonl, csvp, warnings

    # ---- library
    def manifest(self) -> dict | None:
        try:
            return self.live.get().manifest
        except RagError:
            return read_manifest(self.index_dir)

    def reindex(self, log: Callable[[str], None]) -> str:
        if self.corpus is None:
            raise RagError("未指定文库目录（--corpus），不能更新索引")
        if not self.build_lock.acquire(blocking=False):
            raise RagError("another build is already writing the index")
        try:
            report = update_index(self.corpus, self.index_dir, log)
        finally:
            self.build_lock.release()
        snap = self.live.reload()
        return report.summary() + f" · 当前 {snap.generation}"

    def add_documents(self, paths: list[str], log: Callable[[str], None]) -> list[str]:
        """Copy uploaded files into the corpus (validated, safe names); returns the names added."""
        if self.corpus is None:
            raise RagError("未指定文库目录（--corpus），不能添加文档")
        added = []
        for p in paths:
            src = Path(p)
            name = safe_name(src.name)
            if name is None:
                log(f"跳过 {src.name}：只接受 .txt 或 .md 文本文件")
                continue
            size = src.stat().st_size
            if size > MAX_UPLOAD_BYTES:
                log(f"跳过 {name}：{size / 2**20:.1f} MB，超过 {MAX_UPLOAD_BYTES // 2**20} MB 上限")
                continue
            data = src.read_bytes()
            if decode(data) is None:
                log(f"跳过 {name}：不是可读的文本（二进制或无法识别的编码）")
                continue
            dest = self.corpus / name
            if dest.exists() or dest.is_symlink():
                log(f"跳过 {name}：文库中已有同名文件（如需替换，请先移除旧文件）")
                continue
            tmp = self.corpus / f".upload-{uuid.uuid4().hex}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, dest)
            added.append(name)
            log(f"已添加 {name}（{size / 1024:.1f} KB）")
        return added

    def remove_documents(self, sources: list[str], log: Callable[[str], None]) -> list[str]:
        """Move documents out of the corpus into <corpus>/.trash/ (recoverable; ignored by builds)."""
        if self.corpus is None:
            raise RagError("未指定文库目录（--corpus），不能移除文档")
        known = {s for s, _sha, _enc in self.live.get().index.store.files()}
        root = self.corpus.resolve()
        wanted = [s for s in sources if s]
        if wanted and len(known - set(wanted)) == 0:
            raise RagError("不能移除全部文档：文库中至少要保留一个文档")
        trash = self.corpus / ".trash" / time.strftime("%Y%m%d-%H%M%S")
        removed = []
        for s in wanted:
            p = (self.corpus / s)
            if s not in known or not p.resolve().is_relative_to(root) or not p.is_file():
                log(f"跳过 {s}：不在文库中")
                continue
            dest = trash / s
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(p), str(dest))
            removed.append(s)
            log(f"已移除 {s}（移至 {dest.relative_to(self.corpus)}，可恢复）")
        return removed


_UNSAFE = re.compile(r"[^\w.\-（）()【】 ]+")


def safe_name(name: str) -> str | None:
    """A safe corpus file name from an uploaded file's name: basename only, no leading dot,
    no path separators or control characters, .txt/.md only; None when not acceptable."""
    base = name.replace("\\", "/").split("/")[-1].strip()
    stem, dot, suffix = base.rpartition(".")
    if not dot or f".{suffix.lower()}" not in DOC_SUFFIXES:
        return None
    stem = _UNSAFE.sub("_", stem).strip(" ._")[:120]
    if not stem:
        return None
    return f"{stem}.{suffix.lower()}"


def _safe_stem(stem: str) -> str:
    return _UNSAFE.sub("_", stem).strip(" ._")[:80]


# ------------------------------------------------------------------------------ UI

def _failure(e: Exception) -> str:
    """A message box for an error: the Chinese message, the English detail beneath."""
    if isinstance(e, RagError):
        zh, en = zh_message(e)
        return ui.message_html(zh, "warn", en)
    return _unexpected(e)


def _api_error(e: Exception) -> gr.Error:
    if isinstance(e, RagError):
        return gr.Error(zh_message(e)[0] + f" ({e})", print_exception=False)
    _unexpected(e)
    return gr.Error(f"内部错误 internal error ({type(e).__name__})", print_exception=False)


def build_ui(svc: Service) -> gr.Blocks:
    # ---- search and cite: page handlers (HTML) and API functions (JSON) share svc calls
    def ui_search(query, k, source, article):
        if not isinstance(query, str) or not query.strip():
            return ui.message_html("请输入要检索的问题。", "warn", "Please type a question.")
        try:
            q, results, snap, ms = svc.search(query, int(k or 5), source, article)
            ctx = svc.contexts(snap, results)
        except Exception as e:  # noqa: BLE001 - a message in the page, never a traceback
            return _failure(e)
        filters = " · ".join(x for x in (source, article and f"《{article}》") if x)
        return ui.results_html(q, results, ctx, ms, snap.generation, filters)

    def ui_cite(quote, k):
        if not svc.cite_available():
            return ui.message_html(UNAVAILABLE, "info")
        if not isinstance(quote, str) or not quote.strip():
            return ui.message_html("请粘贴要溯源的引文。", "warn", "Please paste a quote.")
        try:
            d, _snap, ms = svc.cite(quote, int(k or 3))
        except Exception as e:  # noqa: BLE001
            return _failure(e)
        return ui.cite_html(d, ms)

    def search(query: str, k: int = 5, source: str = "", article: str = "") -> dict:
        """检索 Search: ranked passages for a question. Returns {"query", "generation",
        "results": [...]} with the fields of rag.search.Result (source, start, end, text,
        title, author, section, paragraph, matched, best_sentence, score, ...)."""
        try:
            q, results, snap, _ms = svc.search(query, k, source, article)
        except Exception as e:  # noqa: BLE001
            raise _api_error(e) from None
        return {"query": q, "generation": snap.generation, "results": results}

    def cite(quote: str, k: int = 3) -> dict:
        """引文溯源 Citation lookup: where a quote comes from. Returns {"quote", "matches":
        [{source, start, end, text, similarity, kind, title, author, section, paragraph,
        diff}], "related": [passages, each with a "label": they are not matches]}."""
        try:
            d, _snap, _ms = svc.cite(quote, k)
        except Exception as e:  # noqa: BLE001
            raise _api_error(e) from None
        return d

    # ---- batch
    def ui_batch(file, k=10, progress=gr.Progress()):
        if not file:
            return ui.message_html("请先上传问题文件（.txt / .csv / .jsonl）。", "warn"), None, None
        try:
            progress(0, desc="读取问题文件…")
            answered, total, jsonl, csvp, warnings = svc.batch(
                file, int(k or 10), lambda f, d: progress(f, desc=d))
        except Exception as e:  # noqa: BLE001
            return _failure(e), None, None
        return ui.batch_html(answered, total, int(k or 10), warnings), str(jsonl), str(csvp)

    # ---- library and page state
    def header_status():
        try:
            snap = svc.live.get()
        except RagError as e:
            return ui.message_html(zh_message(e)[0], "warn")
        c = snap.manifest["counts"]
        return (f'<div class="rag-meta">索引 {ui.esc(snap.generation)} · {c["files"]} 个文件 · '
                f'{c["chunks"]} 个段落块 · 嵌入 {ui.esc(snap.manifest["embedder"]["spec"])}'
                f'{"" if svc.cite_available() else " · 引文溯源不可用"}</div>')

    def library_view():
        try:
            snap = svc.live.get()
        except RagError as e:
            return ui.message_html(zh_message(e)[0], "warn")
        return ui.library_html(snap.index.store.articles(), snap.index.store.files(), snap.manifest,
                               str(svc.corpus.resolve()) if svc.corpus else "")

    def refresh():
        """Filters, removal list, library view and header, from the index now being served."""
        files = svc.file_choices()
        return (gr.update(choices=files), gr.update(choices=svc.article_choices()),
                gr.update(choices=files[1:], value=[]), library_view(), header_status())

    def on_file(source):
        return gr.update(choices=svc.article_choices(source or None), value="")

    def library_change(change, progress, lines: list[str] | None = None):
        """Run `change` (returns True when the corpus changed), then re-index incrementally."""
        lines = lines if lines is not None else []

        def log(m: str) -> None:
            lines.append(m)
            progress(None, desc=m)

        kind = "info"
        try:
            if change(lines):
                log("正在更新索引（增量）…")
                lines.append("✓ " + svc.reindex(log))
        except Exception as e:  # noqa: BLE001
            kind = "error"
            if isinstance(e, RagError):
                zh, en = zh_message(e)
                lines.append(zh + (f"（{en}）" if en else ""))
            else:
                _unexpected(e)
                lines.append(f"内部错误 internal error ({type(e).__name__})")
        return (ui.log_html(lines, kind), *refresh(), None)

    def ui_add(files, progress=gr.Progress()):
        if not files:
            return (ui.message_html("请先选择要添加的 .txt / .md 文件。", "warn"), *refresh(), None)
        paths = files if isinstance(files, list) else [files]

        def change(lines):
            added = svc.add_documents(paths, lines.append)
            if not added:
                lines.append("没有添加任何文件。")
            return bool(added)

        return library_change(change, progress)

    def ui_remove(sources, confirm, progress=gr.Progress()):
        if not sources:
            return (ui.message_html("请先选择要移除的文档。", "warn"), *refresh(), None)
        if not confirm:
            return (ui.message_html("请勾选“确认移除”后再操作。", "warn"), *refresh(), None)
        return library_change(lambda lines: bool(svc.remove_documents(list(sources), lines.append)),
                              progress)

    def ui_rescan(progress=gr.Progress()):
        return library_change(lambda lines: True, progress, ["重新扫描文库目录…"])

    # ---- layout
    with gr.Blocks(title="文库检索 · 引文溯源") as demo:
        gr.HTML('<div class="rag-header"><h1>文库检索 · 引文溯源</h1>'
                '<div class="rag-meta">中文语义检索与精确引文定位 · Chinese-first semantic search '
                'and exact citation lookup</div></div>')
        status = gr.HTML(header_status())
        with gr.Tabs():
            with gr.Tab("检索 Search", id="search"):
                with gr.Row(equal_height=True):
                    q = gr.Textbox(label="问题 Question", lines=1, max_lines=3, scale=6, autofocus=True,
                                   placeholder="输入问题，按回车检索 · Type a question, press Enter",
                                   elem_id="rag-query", max_length=4000)
                    go = gr.Button("检索", variant="primary", scale=1, min_width=90, elem_id="rag-search-btn")
                with gr.Row():
                    k = gr.Slider(1, 30, value=5, step=1, label="返回条数 top-k", scale=2)
                    # custom values allowed: a folder prefix or part of an author's name filters too
                    file_dd = gr.Dropdown(choices=svc.file_choices(), value="", label="文件 file",
                                          scale=3, allow_custom_value=True)
                    art_dd = gr.Dropdown(choices=svc.article_choices(), value="", allow_custom_value=True,
                                         label="文章 / 作者 article / author", scale=4, filterable=True)
                examples = gr.Examples(EXAMPLES, inputs=[q], label="示例问题 examples")
                out = gr.HTML(ui.message_html(
                    "输入问题后按回车。结果卡片标出匹配的词（高亮）和最能回答问题的句子（加粗），"
                    "每条都附出处，可展开查看原文上下文。", "info"), elem_id="rag-results")
                # The page's handler is also callable as /search_html (undocumented): the
                # rendered cards, as the browser gets them; /search is the JSON API.
                ev = dict(fn=ui_search, inputs=[q, k, file_dd, art_dd], outputs=out, show_progress="minimal",
                          concurrency_limit=SEARCH_CONCURRENCY, concurrency_id="search")
                q.submit(**ev, api_name="search_html", api_visibility="undocumented")
                go.click(**ev, api_visibility="private")
                examples.load_input_event.then(**ev, api_visibility="private")
                file_dd.change(on_file, file_dd, art_dd, queue=False, api_visibility="private")

            with gr.Tab("引文溯源 Citation lookup", id="cite"):
                with gr.Row():
                    quote = gr.Textbox(label="引文 Quote", lines=4, max_lines=12, scale=6, elem_id="rag-quote",
                                       placeholder="粘贴一段引文，查找它在文库中的确切出处 · Paste a quote",
                                       max_length=2000)
                    with gr.Column(scale=1, min_width=120):
                        cite_k = gr.Slider(1, 10, value=3, step=1, label="相关段落数 related")
                        cite_go = gr.Button("查找出处", variant="primary", elem_id="rag-cite-btn")
                cite_out = gr.HTML(ui.message_html(
                    "粘贴引文后点击“查找出处”：显示原文位置（文件、文章、章节、段落、字符区间）和与原文的差异。"
                    if svc.cite_available() else UNAVAILABLE, "info"), elem_id="rag-cite-results")
                cite_go.click(ui_cite, [quote, cite_k], cite_out, show_progress="minimal",
                              concurrency_limit=SEARCH_CONCURRENCY, concurrency_id="search",
                              api_name="cite_html", api_visibility="undocumented")

            with gr.Tab("批量 Batch", id="batch"):
                gr.Markdown("上传问题文件：`.txt`（每行一个问题）、`.csv`（含 `id,query` 表头）或 `.jsonl`"
                            "（每行 `{\"id\": …, \"query\": …}`）。每个文件不超过 "
                            f"{MAX_UPLOAD_BYTES // 2**20} MB、{MAX_BATCH_QUERIES} 个问题。"
                            "结果可下载为 JSONL 与 CSV。")
                with gr.Row():
                    bfile = gr.File(label="问题文件 questions", file_types=list(BATCH_SUFFIXES),
                                    type="filepath", scale=3, elem_id="rag-batch-file")
                    with gr.Column(scale=1):
                        bk = gr.Slider(1, 50, value=10, step=1, label="每题返回条数 top-k")
                        bgo = gr.Button("开始批量检索", variant="primary")
                bstatus = gr.HTML()
                with gr.Row():
                    bjsonl = gr.File(label="结果 JSONL", interactive=False, height=90)
                    bcsv = gr.File(label="结果 CSV", interactive=False, height=90)
                # one batch at a time, in its own concurrency group: searches stay responsive
                bgo.click(ui_batch, [bfile, bk], [bstatus, bjsonl, bcsv], api_name="batch",
                          concurrency_limit=1, concurrency_id="batch")

            with gr.Tab("文库 Library", id="library"):
                lib = gr.HTML(library_view(), elem_id="rag-library")
                editable = svc.corpus is not None
                with gr.Row():
                    with gr.Column():
                        up = gr.File(label=f"添加文档（.txt / .md，单个不超过 {MAX_UPLOAD_BYTES // 2**20} MB）",
                                     file_count="multiple", file_types=list(DOC_SUFFIXES), type="filepath",
                                     interactive=editable, elem_id="rag-add-file")
                        add_go = gr.Button("添加并更新索引", variant="primary", interactive=editable)
                    with gr.Column():
                        rm_dd = gr.Dropdown(choices=svc.file_choices()[1:], value=[], multiselect=True,
                                            label="移除文档 remove", interactive=editable,
                                            allow_custom_value=True)   # checked against the index
                        rm_ok = gr.Checkbox(label="确认移除（文件移入文库目录下的 .trash/，可恢复）",
                                            interactive=editable)
                        with gr.Row():
                            rm_go = gr.Button("移除并更新索引", variant="stop", interactive=editable)
                            rescan = gr.Button("重新扫描文库", interactive=editable)
                lib_log = gr.HTML()
                outs = [lib_log, file_dd, art_dd, rm_dd, lib, status, up]
                # re-indexing: one at a time, in its own group (searches go on meanwhile)
                common = dict(concurrency_limit=1, concurrency_id="reindex", api_visibility="undocumented")
                add_go.click(ui_add, up, outs, api_name="library_add", **common)
                rm_go.click(ui_remove, [rm_dd, rm_ok], outs, api_name="library_remove", **common)
                rescan.click(ui_rescan, None, outs, api_name="library_rescan", **common)

        gr.api(search, api_name="search", concurrency_limit=SEARCH_CONCURRENCY, concurrency_id="search")
        gr.api(cite, api_name="cite", concurrency_limit=SEARCH_CONCURRENCY, concurrency_id="search")
        demo.load(refresh, None, [file_dd, art_dd, rm_dd, lib, status], queue=False, api_visibility="private")
    return demo


# ------------------------------------------------------------------------------ start

def load_auth() -> list[tuple[str, str]] | None:
    pairs: list[tuple[str, str]] = []
    env = os.environ.get("RAG_AUTH", "").strip()
    if env:
        user, sep, pw = env.partition(":")
        if not sep or not user or not pw:
            raise RagError("RAG_AUTH must be user:password")
        pairs.append((user, pw))
    path = os.environ.get("RAG_AUTH_FILE", "").strip()
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="文库检索 · 引文溯源 web app")
    p.add_argument("--index", default=None, help="index folder (default: index/, or $RAG_INDEX)")
    p.add_argument("--corpus", default=None,
                   help="folder of documents to index and manage (default: the corpus the index was "
                        "built from, else $RAG_CORPUS or seeds)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    return p.parse_args(argv)


def update_index(corpus: Path, index_dir: Path, log: Callable[[str], None], progress: bool = False):
    """Build or incrementally update the index of `corpus`. An index made by an older chunker
    version (the code was updated since) is rebuilt with the same embedder and chunk sizes:
    the CLI refuses that without --rebuild, but the app owns its index and must just start."""
    try:
        old = read_manifest(index_dir)
    except RagError:
        old = None                      # damaged: build() says so, with the command that fixes it
    if old and isinstance(old.get("chunker_settings"), dict):
        try:
            settings = ChunkSettings(**old["chunker_settings"])
        except TypeError:
            settings = ChunkSettings()
        if settings.id() != old.get("chunker"):
            log(f"索引由旧版分块器 {old.get('chunker')} 构建，按当前版本 {settings.id()} 重建 "
                f"(rebuilding: the chunker changed)")
            return build(corpus, index_dir, embedder=old["embedder"]["spec"], settings=settings,
                         rebuild=True, progress=progress, log=log)
    return build(corpus, index_dir, progress=progress, log=log)


def prepare_index(corpus: Path | None, index_dir: Path) -> None:
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
        report = update_index(corpus, index_dir, lambda m: _say("  " + m), progress=show_progress())
    except RagError as e:
        if "another build is already writing" in str(e) and read_current(index_dir) is not None:
            _say(f"warning: {e}; serving the current index, it is reloaded when that build finishes")
            return
        raise
    _say(report.summary())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        index_dir = Path(args.index) if args.index else default_index_dir()
        if args.corpus:
            corpus: Path | None = Path(args.corpus)
        else:
            m = read_manifest(index_dir) if index_dir.exists() else None
            corpus = Path(m["corpus"]) if m else Path(os.environ.get("RAG_CORPUS", DEFAULT_CORPUS))
        auth = load_auth()
        prepare_index(corpus, index_dir)
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
    os.environ["GRADIO_TEMP_DIR"] = str(workdir / "uploads")   # uploads stay in the app's folder
    svc = Service(live, index_dir, corpus if corpus and corpus.is_dir() else None, workdir)
    demo = build_ui(svc)
    demo.queue(default_concurrency_limit=SEARCH_CONCURRENCY, max_size=256)
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
            enable_monitoring=False, prevent_thread_lock=True, quiet=True, ssr_mode=False)
    except OSError as e:
        print(f"error: cannot serve on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 2
    _say(f"网页已就绪 ready: {url}" + ("  (login required)" if auth else ""))
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        demo.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
