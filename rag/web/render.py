"""HTML for the web app: pure functions from result dicts to escaped HTML fragments.

Every piece of text that comes from a document, a query, a file name or an error message
goes through `esc`, which also neutralises `$`, `{`, `}` and backticks so no template
syntax of the front end can be triggered through the content. Nothing here touches the
index or Gradio; app.py calls these functions with plain dicts (Result.to_dict(),
CiteResult.to_dict(), Store.articles(), the manifest).
"""
from __future__ import annotations

from pathlib import Path

import html
import re
from typing import Iterable, Mapping, Sequence

from rag.web.pages import figure_html

_EXTRA = str.maketrans({"$": "&#36;", "{": "&#123;", "}": "&#125;", "`": "&#96;"})


def esc(text: object) -> str:
    """HTML-escape any value (quotes included), safe in text and in attribute values."""
    return html.escape("" if text is None else str(text), quote=True).translate(_EXTRA)


# ------------------------------------------------------------------------- small pieces

def section_path(section: Sequence[str] | None) -> str:
    return " › ".join(s for s in (section or []) if s)


def char_range(start: int, end: int) -> str:
    return f"字符 {start}–{end}"


def citation_text(r: Mapping) -> str:
    """Plain-text citation of a passage (what the copy button copies): its GB/T 7714
    reference, when it has one (rag.references), then the exact location."""
    if r.get("reference"):
        from rag.references import location_text

        return f"{r['reference']} {location_text(r)}"
    parts = [f"{r.get('author') or '佚名'}：《{r.get('title') or '无题'}》"]
    where = section_path(r.get("section"))
    if where:
        parts.append(where)
    if r.get("page"):
        pe = r.get("page_end") or r["page"]
        parts.append(f"第{r['page']}页" if pe == r["page"] else f"第{r['page']}–{pe}页")
    if r.get("paragraph"):
        parts.append(f"第{r['paragraph']}段")
    parts.append(f"{r['source']} [{r['start']}:{r['end']}]")
    return "，".join(parts)


def copy_button(text: str, label: str = "复制引用") -> str:
    return (f'<button type="button" class="rag-copy" data-copy="{esc(text)}" '
            f'title="复制到剪贴板 Copy">{esc(label)}</button>')


def message_html(text: str, kind: str = "warn", detail: str = "") -> str:
    """A visible notice box; kind is info, warn or error."""
    icon = {"info": "ℹ️", "warn": "⚠️", "error": "⛔"}.get(kind, "ℹ️")
    extra = f'<div class="rag-msg-detail">{esc(detail)}</div>' if detail else ""
    return (f'<div class="rag-msg rag-msg-{esc(kind)}" role="alert"><span class="rag-msg-icon">'
            f'{icon}</span><div><div class="rag-msg-text">{esc(text)}</div>{extra}</div></div>')


# ------------------------------------------------------------------------ highlighting

def _term_pattern(terms: Iterable[str]) -> re.Pattern | None:
    ts = sorted({t for t in terms if t and t.strip()}, key=lambda t: (-len(t), t))
    if not ts:
        return None
    return re.compile("|".join(re.escape(t) for t in ts), re.IGNORECASE)


def highlight(text: str, terms: Iterable[str] = (), best: str = "") -> str:
    """Escaped `text` with every occurrence of `terms` in <mark> and the first occurrence
    of the sentence `best` wrapped in <strong class="rag-best">."""
    n = len(text)
    marked = [False] * n
    pat = _term_pattern(terms)
    if pat is not None:
        for m in pat.finditer(text):
            for i in range(m.start(), m.end()):
                marked[i] = True
    bold = [False] * n
    best = (best or "").strip()
    if best:
        at = text.find(best)
        if at >= 0:
            for i in range(at, at + len(best)):
                bold[i] = True
    segs: list[tuple[bool, str]] = []          # (inside the best sentence, html)
    i = 0
    while i < n:
        key, j = (bold[i], marked[i]), i
        while j < n and (bold[j], marked[j]) == key:
            j += 1
        seg = esc(text[i:j])
        segs.append((key[0], f"<mark>{seg}</mark>" if key[1] else seg))
        i = j
    out: list[str] = []
    in_best = False
    for is_best, seg in segs:
        if is_best != in_best:
            out.append('<strong class="rag-best" title="最能回答问题的句子 best-answering sentence">'
                       if is_best else "</strong>")
            in_best = is_best
        out.append(seg)
    if in_best:
        out.append("</strong>")
    return "".join(out)


# ------------------------------------------------------------------------------ search

def answer_html(results: Sequence[Mapping], max_sentences: int = 3, ratio: float = 0.6) -> str:
    """The extractive answer: best sentences of the top results, each with its [n] marker."""
    if not results:
        return ""
    top = max(float(results[0].get("score") or 0.0), 1e-9)
    seen: set[str] = set()
    items = []
    for r in results:
        if len(items) >= max_sentences:
            break
        if items and float(r.get("score") or 0.0) < ratio * top:
            break
        sent = ((r.get("best_sentence") or {}).get("text") or "").strip()
        if not sent or sent in seen:
            continue
        seen.add(sent)
        items.append(f'<span class="rag-answer-sent">{highlight(sent, r.get("matched") or [])}'
                     f'<a class="rag-ref" href="#rag-r{int(r["rank"])}" title="{esc(citation_text(r))}">'
                     f'[{int(r["rank"])}]</a></span>')
    if not items:
        return ""
    return ('<section class="rag-answer"><div class="rag-answer-label">摘要回答 · 摘自原文'
            '<span class="rag-en"> extractive answer</span></div>'
            f'<p>{"".join(items)}</p></section>')


def _context_block(chunks: Sequence[Mapping], label: str, current_title: str) -> str:
    out = []
    for c in chunks:
        other = c.get("title") and c.get("title") != current_title
        head = f'{esc(label)} · 第{esc(c.get("paragraph"))}段 · {char_range(c["start"], c["end"])}'
        if other:
            head += f' · 《{esc(c["title"])}》'
        out.append(f'<div class="rag-ctx-item"><div class="rag-ctx-head">{head}</div>'
                   f'<div class="rag-ctx-text">{esc(c.get("text", ""))}</div></div>')
    return "".join(out)


def result_card(r: Mapping, context: tuple[Sequence[Mapping], Sequence[Mapping]] | None = None) -> str:
    rank = int(r["rank"])
    best = (r.get("best_sentence") or {}).get("text", "")
    cite = citation_text(r)
    where = section_path(r.get("section"))
    scores = r.get("scores") or {}
    tip = f"向量 dense {scores.get('dense', '')} · BM25 {scores.get('bm25', '')}"
    author = esc(r.get("author") or "")
    if r.get("affiliation"):
        author += f'<span class="rag-affil">（{esc(r["affiliation"])}）</span>'
    parts = [
        f'<article class="rag-card" id="rag-r{rank}" data-source="{esc(r["source"])}">',
        '<header class="rag-card-head">',
        f'<span class="rag-rank">{rank}</span>',
        f'<span class="rag-title">《{esc(r.get("title") or "无题")}》</span>',
        f'<span class="rag-author">{author}</span>',
        f'<span class="rag-score" title="{esc(tip)}">相关度 {float(r.get("score") or 0):.3f}</span>',
        '</header>',
    ]
    if where:
        parts.append(f'<div class="rag-section">{esc(where)}</div>')
    passage = highlight(r.get("text", ""), r.get("matched") or [], best)
    parts.append(f'<div class="rag-passage">{passage}</div>')
    parts.append(figure_html(r))
    parts.append(
        '<div class="rag-cite"><span class="rag-cite-label">出处</span>'
        f'<span class="rag-cite-text">{esc(r["source"])} · 《{esc(r.get("title") or "无题")}》'
        f'{" · " + esc(where) if where else ""} · 第{esc(r.get("paragraph"))}段 · '
        f'{char_range(r["start"], r["end"])}</span>{copy_button(cite)}</div>')
    if context is not None:
        before, after = context
        body = (_context_block(before, "上文", r.get("title", ""))
                + '<div class="rag-ctx-item rag-ctx-self"><div class="rag-ctx-head">本段 · '
                f'第{esc(r.get("paragraph"))}段 · {char_range(r["start"], r["end"])}</div>'
                f'<div class="rag-ctx-text">{passage}</div></div>'
                + _context_block(after, "下文", r.get("title", "")))
        parts.append('<details class="rag-context"><summary>查看原文上下文 show context</summary>'
                     f'{body}</details>')
    parts.append("</article>")
    return "".join(parts)


def results_html(query: str, results: Sequence[Mapping],
                 contexts: Mapping[str, tuple[Sequence[Mapping], Sequence[Mapping]]] | None = None,
                 elapsed_ms: float | None = None, generation: str = "",
                 filters: str = "") -> str:
    contexts = contexts or {}
    meta = [f"问题：<q>{esc(query)}</q>", f"{len(results)} 条结果"]
    if filters:
        meta.append(f"筛选：{esc(filters)}")
    if elapsed_ms is not None:
        meta.append(f"用时 {elapsed_ms:.0f} ms")
    if generation:
        meta.append(f"索引 {esc(generation)}")
    head = f'<div class="rag-meta">{" · ".join(meta)}</div>'
    if not results:
        return ('<div class="rag-results">' + head
                + message_html("没有找到相关段落。请换个说法，或放宽筛选条件。", "info",
                               "No passages found; rephrase the question or clear the filters.")
                + "</div>")
    cards = "".join(result_card(r, contexts.get(r.get("id", ""))) for r in results)
    return f'<div class="rag-results">{head}{answer_html(results)}{cards}</div>'


# ------------------------------------------------------------------------------- cite

KIND_LABELS = {"exact": "逐字一致 exact", "normalized": "标点/字形差异 normalized",
               "fuzzy": "近似匹配 fuzzy"}


def diff_html(ops: Sequence[Mapping]) -> str:
    """The quote corrected into the original: <del> what only the quote has, <ins> what the
    original has instead."""
    out = []
    for o in ops:
        op, q, orig = o.get("op"), o.get("quote", ""), o.get("original", "")
        if op == "equal":
            out.append(esc(q))
            continue
        if q:
            out.append(f'<del title="引文中有，原文中无">{esc(q)}</del>')
        if orig:
            out.append(f'<ins title="原文写法">{esc(orig)}</ins>')
    return "".join(out)


def match_card(i: int, m: Mapping) -> str:
    where = section_path(m.get("section"))
    kind = m.get("kind", "")
    cite = citation_text({**m, "paragraph": m.get("paragraph")})
    loc = (f'{esc(m["source"])} · 《{esc(m.get("title") or "无题")}》 {esc(m.get("author") or "")}'
           f'{" · " + esc(where) if where else ""} · 第{esc(m.get("paragraph"))}段 · '
           f'{char_range(m["start"], m["end"])}')
    parts = [f'<article class="rag-card rag-match" id="rag-m{i}" data-source="{esc(m["source"])}" '
             f'data-start="{int(m["start"])}" data-end="{int(m["end"])}">',
             '<header class="rag-card-head">',
             f'<span class="rag-rank">{i}</span>',
             f'<span class="rag-kind rag-kind-{esc(kind)}">{esc(KIND_LABELS.get(kind, kind))}</span>',
             f'<span class="rag-score">相似度 {float(m.get("similarity") or 0) * 100:.1f}%</span>',
             '</header>',
             f'<div class="rag-cite rag-loc"><span class="rag-cite-label">位置</span>'
             f'<span class="rag-cite-text">{loc}</span>{copy_button(cite)}</div>',
             '<div class="rag-orig-label">原文 original</div>',
             f'<div class="rag-passage">{esc(m.get("text", ""))}</div>', figure_html(m)]
    ops = m.get("diff") or []
    if ops:
        parts.append('<div class="rag-orig-label">引文与原文对照 diff '
                     '<span class="rag-legend"><del>引文多出</del> <ins>原文写法</ins></span></div>'
                     f'<div class="rag-passage rag-diff">{diff_html(ops)}</div>')
    else:
        parts.append('<div class="rag-same">✓ 引文与原文逐字一致 identical to the original</div>')
    parts.append("</article>")
    return "".join(parts)


def related_card(r: Mapping) -> str:
    where = section_path(r.get("section"))
    best = (r.get("best_sentence") or {}).get("text", "")
    return (f'<article class="rag-card rag-related" data-source="{esc(r["source"])}">'
            '<header class="rag-card-head">'
            f'<span class="rag-tag">相关段落 · 非出处 {esc(r.get("label") or "related")}</span>'
            f'<span class="rag-title">《{esc(r.get("title") or "无题")}》</span>'
            f'<span class="rag-author">{esc(r.get("author") or "")}</span></header>'
            f'<div class="rag-passage">{highlight(r.get("text", ""), r.get("matched") or [], best)}</div>'
            f'<div class="rag-cite"><span class="rag-cite-label">出处</span><span class="rag-cite-text">'
            f'{esc(r["source"])}{" · " + esc(where) if where else ""} · 第{esc(r.get("paragraph"))}段 · '
            f'{char_range(r["start"], r["end"])}</span>{copy_button(citation_text(r))}</div></article>')


def cite_html(d: Mapping, elapsed_ms: float | None = None) -> str:
    matches, related = d.get("matches") or [], d.get("related") or []
    meta = [f"引文 {len(d.get('quote', ''))} 字", f"{len(matches)} 处出处"]
    if elapsed_ms is not None:
        meta.append(f"用时 {elapsed_ms:.0f} ms")
    out = [f'<div class="rag-results"><div class="rag-meta">{" · ".join(meta)}</div>']
    if matches:
        out.extend(match_card(i, m) for i, m in enumerate(matches, 1))
    else:
        out.append('<div class="rag-notfound" role="status"><strong>未在文库中找到</strong> '
                   '<span class="rag-en">not found in the corpus</span><div class="rag-msg-detail">'
                   '这段文字与文库中任何原文都不足以匹配；下方为语义相近的段落，仅供参考，并非出处。'
                   '</div></div>')
    if related:
        out.append('<h4 class="rag-related-head">相关段落（语义相近，非出处） related passages, not matches</h4>')
        out.extend(related_card(r) for r in related)
    out.append("</div>")
    return "".join(out)


# ---------------------------------------------------------------------------- library

def _count(value: object) -> int:
    """A count from stored data, 0 when it is not a whole number (never an exception)."""
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


_LAYERS = {"pdf": "文字层 text layer: pdf", "ocr": "文字层 text layer: OCR", "pdf+ocr": "文字层 text layer: pdf + OCR"}


def _file_facts(encoding: str, meta: Mapping | None) -> str:
    """What the Library tab says of a file: its encoding, or for a paged document its reader,
    its pages and the text layer used (the PDF's own text or OCR)."""
    if not meta or not meta.get("reader") or meta.get("reader") == "plaintext":
        return esc(encoding)
    parts = [esc(meta["reader"].upper())]
    if meta.get("pages"):
        parts.append(f'{esc(meta["pages"])} 页')
    if meta.get("text_layer"):
        parts.append(esc(_LAYERS.get(str(meta["text_layer"]), f'文字层 text layer: {meta["text_layer"]}')))
    return " · ".join(parts)


def library_html(articles: Sequence[Mapping], files: Sequence[Sequence], manifest: Mapping | None,
                 corpus: str = "", pending: Sequence[str] = (),
                 file_meta: Mapping[str, Mapping] | None = None) -> str:
    """The Library tab: the manifest's facts, then each file's articles. Every value from the
    manifest, the store or the corpus path goes through `esc` (issue 16, finding 6: the
    embedder spec was printed raw and an `<img onerror>` in it ran in Chromium)."""
    if not manifest:
        return message_html("索引尚未建立 no index yet", "warn")
    emb = manifest.get("embedder") or {}
    counts = manifest.get("counts") or {}
    info = [
        ("嵌入模型 embedder", f'{esc(emb.get("spec", ""))} <span class="rag-dim">({esc(emb.get("id", ""))}, '
                             f'{esc(emb.get("dim", ""))} 维)</span>'),
        ("规模 size", f'{esc(counts.get("files", 0))} 个文件 · {esc(len(articles))} 篇文章 · '
                      f'{esc(counts.get("chunks", 0))} 个段落块'),
        ("代数 generation", esc(manifest.get("generation", ""))),
        ("构建时间 built", f'{esc(manifest.get("created", ""))} · 用时 {esc(manifest.get("build_seconds", ""))} s'),
        ("分块 chunker", esc(manifest.get("chunker", ""))),
        ("向量检索 ANN", esc(manifest.get("ann", ""))),
        ("文库目录 corpus", esc(corpus or manifest.get("corpus", ""))),
    ]
    rows = "".join(f'<tr><th>{esc(k)}</th><td>{v}</td></tr>' for k, v in info)
    out = [f'<table class="rag-info">{rows}</table>']
    if pending:
        items = "".join(f"<li>{esc(s)}</li>" for s in pending[:200])
        more = f"<li>…另有 {len(pending) - 200} 个</li>" if len(pending) > 200 else ""
        out.append('<details class="rag-file rag-pending" open><summary><span class="rag-file-name">'
                   f'文库中尚未索引的文件 not yet indexed</span> <span class="rag-dim">{len(pending)} 个 · '
                   '另一个构建结束后或点击“重新扫描文库”即会索引；无法读取的文件也列在此处</span></summary>'
                   f'<ul>{items}{more}</ul></details>')
    by_file: dict[str, list[Mapping]] = {}
    for a in articles:
        by_file.setdefault(a["source"], []).append(a)
    enc = {f[0]: f[2] for f in files}
    for source in sorted(set(by_file) | set(enc)):
        arts = by_file.get(source, [])
        total = sum(_count(a.get("chunks")) for a in arts)
        out.append(f'<details class="rag-file" open><summary><span class="rag-file-name">{esc(source)}</span>'
                   f' <span class="rag-dim">{_file_facts(enc.get(source, ""), (file_meta or {}).get(source))}'
                   f' · {len(arts)} 篇 · {total} 块</span>'
                   '</summary><table class="rag-articles"><thead><tr><th>#</th><th>标题 title</th>'
                   '<th>作者 author</th><th>单位 affiliation</th><th>块 chunks</th><th>字符 range</th>'
                   '</tr></thead><tbody>')
        for a in arts:
            out.append(f'<tr><td>{esc(a.get("article"))}</td><td>{esc(a.get("title") or "无题")}</td>'
                       f'<td>{esc(a.get("author") or "")}</td><td>{esc(a.get("affiliation") or "")}</td>'
                       f'<td class="rag-num">{esc(a.get("chunks"))}</td>'
                       f'<td class="rag-num">{esc(a.get("start"))}–{esc(a.get("end"))}</td></tr>')
        out.append("</tbody></table></details>")
    return "".join(out)


def batch_html(answered: int, total: int, k: int, warnings: Sequence[str], limit: int = 50) -> str:
    body = (f'<div class="rag-msg-text">✓ 完成：回答了 {answered}/{total} 个问题，每题前 {k} 条结果。'
            '下载 JSONL / CSV 见下方。</div>')
    if warnings:
        items = "".join(f"<li>{esc(w)}</li>" for w in warnings[:limit])
        more = f"<li>…另有 {len(warnings) - limit} 条警告</li>" if len(warnings) > limit else ""
        body += (f'<details class="rag-warnings"><summary>{len(warnings)} 条警告（已跳过的行） '
                 f'warnings</summary><ul>{items}{more}</ul></details>')
    return f'<div class="rag-msg rag-msg-info" role="status"><div>{body}</div></div>'


def log_html(lines: Sequence[str], kind: str = "info") -> str:
    body = "".join(f"<div>{esc(x)}</div>" for x in lines)
    return f'<div class="rag-log rag-log-{esc(kind)}">{body}</div>'


# --------------------------------------------------------------------- page assets

_STATIC = Path(__file__).parent / "static"
CSS = (_STATIC / "app.css").read_text(encoding="utf-8")      # the page's styles
HEAD = (_STATIC / "head.html").read_text(encoding="utf-8")   # copy buttons and other page scripts

