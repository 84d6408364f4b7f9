"""The Gradio page: tabs 检索 Search, 引文溯源 Citation lookup, 批量 Batch, 文库 Library, and the
named API endpoints /search, /cite, /batch. Wiring only: rag.web.service does the work."""
from __future__ import annotations

import gradio as gr

from rag.errors import RagError
from rag.web import render as ui
from rag.web.adding import add_and_index
from rag.web.fairness import WORKERS as SEARCH_WORKERS, client_id
from rag.web.libraries import LibrariesIncompatible, LibrarySet, libraries_for
from rag.web.messages import failure_html as _failure, unexpected as _unexpected, zh_message
from rag.web.service import (BATCH_SUFFIXES, DOC_SUFFIXES, EXAMPLES, MAX_BATCH_QUERIES, MAX_UPLOAD_BYTES,
                             UNAVAILABLE, Service)


def _api_error(e: Exception) -> gr.Error:
    if isinstance(e, RagError):
        return gr.Error(zh_message(e)[0] + f" ({e})", print_exception=False)
    _unexpected(e)
    return gr.Error(f"内部错误 internal error ({type(e).__name__})", print_exception=False)


def _incompatible(e: LibrariesIncompatible) -> str:
    return ui.message_html("所选文库使用不同的嵌入模型，不能一起检索；请分别检索，或用同一模型重建。", "warn", str(e))


def _paged_meta(store, files) -> dict[str, dict]:
    """Reader, pages and text layer of the files that are not plain text (for the Library tab)."""
    out = {}
    for source, _sha, _enc in files:
        if source.lower().endswith((".txt", ".md")):
            continue
        info = store.file_info(source) or {}
        out[source] = {**(info.get("meta") or {}), "reader": info.get("reader", "")}
    return out


def build_ui(svc: Service, libs: LibrarySet | None = None) -> gr.Blocks:
    libs = libs or libraries_for(None, svc, svc.workdir, lambda _m: None, lambda _c: None)
    names = libs.names()
    several = len(names) > 1

    def lib_svc(name):
        return libs.get(name).service if name in names else svc

    # The libraries a page session picked, by session: the named endpoints keep their
    # parameters (a script gets every library for search and batch, the first to manage).
    from collections import OrderedDict

    picks: OrderedDict = OrderedDict()

    def remember(what):
        def store(value, request: gr.Request = None):
            key = (what, getattr(request, "session_hash", None) or "")
            picks[key] = value
            picks.move_to_end(key)
            while len(picks) > 10_000:
                picks.popitem(last=False)
        return store

    def picked(request, what):
        return picks.get((what, getattr(request, "session_hash", None) or ""))

    # ---- search and cite: page handlers (HTML) and API functions (JSON) share svc calls
    def ui_search(query, k, source, article, request: gr.Request = None):
        chosen = picked(request, "search")
        if not isinstance(query, str) or not query.strip():
            return ui.message_html("请输入要检索的问题。", "warn", "Please type a question.")
        try:
            q, results, ms_, ms = libs.search(query, int(k or 5), chosen or None, source, article,
                                              client=client_id(request))
            ctx = libs.contexts(results)
        except LibrariesIncompatible as e:
            return _incompatible(e)
        except Exception as e:  # noqa: BLE001 - a message in the page, never a traceback
            return _failure(e)
        filters = " · ".join(x for x in (source, article and f"《{article}》") if x)
        if several:
            filters = " · ".join(x for x in ("文库 " + "、".join(ms_.generations), filters) if x)
        _page_images(results)
        return ui.results_html(q, results, ctx, ms, " · ".join(ms_.generations.values()), filters)

    def ui_cite(quote, k, request: gr.Request):
        if not svc.cite_available():
            return ui.message_html(UNAVAILABLE, "info")
        if not isinstance(quote, str) or not quote.strip():
            return ui.message_html("请粘贴要溯源的引文。", "warn", "Please paste a quote.")
        try:
            d, ms = libs.cite(quote, int(k or 3), client=client_id(request))
        except Exception as e:  # noqa: BLE001
            return _failure(e)
        _page_images(d.get("matches") or [])
        return ui.cite_html(d, ms)

    def _page_images(items):
        """PDF records: the page band with the cited characters highlighted (rag.web.pages)."""
        from rag.web.pages import attach

        attach(items, [lib_svc(n).corpus for n in names] + [svc.corpus])

    def search(query: str, k: int = 5, source: str = "", article: str = "",
               library: list[str] | str | None = None, request: gr.Request = None) -> dict:
        """检索 Search: ranked passages for a question. Returns {"query", "generation",
        "results": [...]} with the fields of rag.search.Result (source, start, end, text,
        title, author, section, paragraph, matched, best_sentence, score, library, reference,
        ...). `library`: one name or a list (default: every library)."""
        try:
            q, results, ms_, _ms = libs.search(query, k, library or None, source, article,
                                               client=client_id(request))
        except Exception as e:  # noqa: BLE001
            raise _api_error(e) from None
        gens = ms_.generations
        return {"query": q, "generation": next(iter(gens.values())), "generations": gens,
                "results": results}

    def cite(quote: str, k: int = 3, request: gr.Request = None) -> dict:
        """引文溯源 Citation lookup: where a quote comes from. Returns {"quote", "matches":
        [{source, start, end, text, similarity, kind, title, author, section, paragraph,
        diff}], "related": [passages, each with a "label": they are not matches]}."""
        try:
            d, _ms = libs.cite(quote, k, client=client_id(request))
        except Exception as e:  # noqa: BLE001
            raise _api_error(e) from None
        return d

    # ---- batch
    def ui_batch(file, k=10, progress=gr.Progress(), request: gr.Request = None):
        chosen = picked(request, "batch")
        if not file:
            return ui.message_html("请先上传问题文件（.txt / .csv / .jsonl）。", "warn"), None, None
        try:
            progress(0, desc="读取问题文件…")
            answered, total, jsonl, csvp, warnings = svc.batch(
                file, int(k or 10), lambda f, d: progress(f, desc=d), searcher=libs.searcher(chosen or None))
        except Exception as e:  # noqa: BLE001
            return _failure(e), None, None
        return ui.batch_html(answered, total, int(k or 10), warnings), str(jsonl), str(csvp)

    def ui_ris(jsonl):
        """RIS (NoteExpress, EndNote, Zotero) of the batch results just made."""
        import json
        from pathlib import Path

        if not jsonl:
            return None
        src = Path(jsonl)
        with src.open(encoding="utf-8") as f:
            text = libs.ris((json.loads(line) for line in f if line.strip()))
        out = src.with_suffix(".ris")
        out.write_text(text, encoding="utf-8")
        return str(out)

    # ---- library and page state
    def header_status(name=None):
        one = lib_svc(name or names[0])
        try:
            snap = one.live.get()
        except RagError as e:
            return ui.message_html(zh_message(e)[0], "warn")
        c = snap.manifest["counts"]
        return (f'<div class="rag-meta">索引 {ui.esc(snap.generation)} · {c["files"]} 个文件 · '
                f'{c["chunks"]} 个段落块 · 嵌入 {ui.esc(snap.manifest["embedder"]["spec"])}'
                f'{"" if svc.cite_available() else " · 引文溯源不可用"}'
                + (f' · {len(names)} 个文库 {ui.esc("、".join(names))}' if several else '') + '</div>')

    def library_view(name=None):
        one = lib_svc(name or names[0])
        try:
            snap = one.live.get()
        except RagError as e:
            return ui.message_html(zh_message(e)[0], "warn")
        note = ""
        if several:
            groups = libs.groups()
            note = ui.message_html(
                f"文库 {name or names[0]} · 嵌入模型 {snap.manifest['embedder']['spec']}。"
                + ("各文库使用不同的嵌入模型，不同模型的文库不能一起检索：" + "；".join("、".join(g) for g in groups)
                   if len(groups) > 1 else "所有文库使用同一嵌入模型，可以一起检索。"), "info")
        store = snap.index.store
        files = store.files()
        return note + ui.library_html(store.articles(), files, snap.manifest,
                                      str(one.corpus.resolve()) if one.corpus else "",
                                      pending=one.pending_files(), file_meta=_paged_meta(store, files))

    def removable(one) -> list[tuple[str, str]]:
        """Indexed files, then files in the corpus not yet indexed (they can be removed too)."""
        return one.file_choices()[1:] + [(f"{s}（未索引 not indexed）", s) for s in one.pending_files()]

    def refresh(name=None):
        """Filters, removal list, library view and header, from the index now being served."""
        files = svc.file_choices()
        return (gr.update(choices=files), gr.update(choices=svc.article_choices()),
                gr.update(choices=removable(lib_svc(name or names[0])), value=[]),
                library_view(name), header_status())

    def on_file(source):
        return gr.update(choices=svc.article_choices(source or None), value="")

    def library_change(change, progress, lines: list[str] | None = None, name=None):
        """Run `change` (returns True when the corpus changed), then re-index incrementally."""
        lines = lines if lines is not None else []

        def log(m: str) -> None:
            lines.append(m)
            progress(None, desc=m)

        kind = "info"
        try:
            if change(lines):
                log("正在更新索引（增量）…")
                lines.append("✓ " + lib_svc(name or names[0]).reindex(log))
        except Exception as e:  # noqa: BLE001
            kind = "error"
            if isinstance(e, RagError):
                zh, en = zh_message(e)
                lines.append(zh + (f"（{en}）" if en else ""))
            else:
                _unexpected(e)
                lines.append(f"内部错误 internal error ({type(e).__name__})")
        return (ui.log_html(lines, kind), *refresh(name), None)

    def ui_add(files, progress=gr.Progress(), request: gr.Request = None):
        name = picked(request, "library")
        if not files:
            return (ui.message_html("请先选择要添加的 .txt / .md 文件。", "warn"), *refresh(), None)
        paths = files if isinstance(files, list) else [files]

        def change(lines):
            def log(m: str) -> None:
                lines.append(m)
                progress(None, desc=m)

            # indexed, or not copied at all; queued while another build runs (rag.web.adding)
            added, summary = add_and_index(lib_svc(name or names[0]), paths, log)
            lines.append("✓ " + summary if added else "没有添加任何文件。")
            return False                       # already indexed

        return library_change(change, progress, name=name)

    def ui_remove(sources, confirm, progress=gr.Progress(), request: gr.Request = None):
        name = picked(request, "library")
        if not sources:
            return (ui.message_html("请先选择要移除的文档。", "warn"), *refresh(), None)
        if not confirm:
            return (ui.message_html("请勾选“确认移除”后再操作。", "warn"), *refresh(), None)
        return library_change(lambda lines: bool(lib_svc(name or names[0]).remove_documents(list(sources),
                                                                                          lines.append)),
                              progress, name=name)

    def ui_rescan(progress=gr.Progress(), request: gr.Request = None):
        name = picked(request, "library")
        return library_change(lambda lines: True, progress, ["重新扫描文库目录…"], name=name)

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
                # one, several or all libraries: ONE ranking (rag.web.libraries)
                lib_pick = gr.CheckboxGroup(choices=names, value=names, visible=several, elem_id="rag-libraries",
                                            label="文库 libraries（可多选，结果合为一个排序；不同嵌入模型的文库不能一起检索）")
                examples = gr.Examples(EXAMPLES, inputs=[q], label="示例问题 examples")
                out = gr.HTML(ui.message_html(
                    "输入问题后按回车。结果卡片标出匹配的词（高亮）和最能回答问题的句子（加粗），"
                    "每条都附出处，可展开查看原文上下文。", "info"), elem_id="rag-results")
                # The page's handler is also callable as /search_html (undocumented): the
                # rendered cards, as the browser gets them; /search is the JSON API.
                lib_pick.change(remember("search"), lib_pick, None, queue=False, api_visibility="private")
                ev = dict(fn=ui_search, inputs=[q, k, file_dd, art_dd], outputs=out, show_progress="minimal",
                          concurrency_limit=SEARCH_WORKERS, concurrency_id="search")
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
                              concurrency_limit=SEARCH_WORKERS, concurrency_id="search",
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
                        blibs = gr.CheckboxGroup(choices=names, value=names, visible=several,
                                                 label="文库 libraries")
                        bgo = gr.Button("开始批量检索", variant="primary")
                bstatus = gr.HTML()
                with gr.Row():
                    bjsonl = gr.File(label="结果 JSONL", interactive=False, height=90)
                    bcsv = gr.File(label="结果 CSV", interactive=False, height=90)
                    with gr.Column():
                        bris_go = gr.Button("导出 RIS（NoteExpress / EndNote / Zotero）")
                        bris = gr.File(label="参考文献 RIS", interactive=False, height=90)
                # one batch at a time, in its own concurrency group: searches stay responsive
                blibs.change(remember("batch"), blibs, None, queue=False, api_visibility="private")
                bgo.click(ui_batch, [bfile, bk], [bstatus, bjsonl, bcsv], api_name="batch",
                          concurrency_limit=1, concurrency_id="batch")
                bris_go.click(ui_ris, bjsonl, bris, api_visibility="private", concurrency_limit=1,
                              concurrency_id="batch")

            with gr.Tab("文库 Library", id="library"):
                lib_dd = gr.Dropdown(choices=names, value=names[0], visible=several, label="管理文库 library",
                                     elem_id="rag-library-pick")
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

                def on_library(n, request: gr.Request = None):
                    remember("library")(n, request)
                    return refresh(n)[2:4]

                lib_dd.change(on_library, lib_dd, [rm_dd, lib], queue=False, api_visibility="private")

        gr.api(search, api_name="search", concurrency_limit=SEARCH_WORKERS, concurrency_id="search")
        gr.api(cite, api_name="cite", concurrency_limit=SEARCH_WORKERS, concurrency_id="search")
        demo.load(refresh, None, [file_dd, art_dd, rm_dd, lib, status], queue=False, api_visibility="private")
    return demo


