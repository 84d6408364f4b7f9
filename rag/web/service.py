"""The service the web UI and the API both call: one place for every library call, and the
corpus files it manages (uploads checked and saved under safe names, removals recoverable)."""
from __future__ import annotations

import itertools
import os
import re
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

from rag.batchio import Writer, answer, read_items
from rag.chunks import ChunkSettings
from rag.documents import decode, iter_paths, relative_source
from rag.errors import IndexBusy, Overloaded, RagError
from rag.index import build, read_manifest
from rag.search import check_k, clean_query
from rag.web.fairness import FairQueue, estimate
from rag.web.live import LiveIndex, Snapshot, citer_class

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


class Service:
    """What the UI and the API both call: one place for every library call."""

    def __init__(self, live: LiveIndex, index_dir: Path, corpus: Path | None, workdir: Path) -> None:
        self.live = live
        self.index_dir = index_dir
        self.corpus = corpus
        self.workdir = workdir
        self.build_lock = threading.Lock()
        self.fair = FairQueue()                # rag.web.fairness: bounded, fair search turns
        self.temp = None                       # rag.web.housekeeping.TempFolder, set by launch
        self.build_options: dict = {}          # a library's build options (rag.web.libraries)

    # ---- search and cite
    def search(self, query: object, k: object = 5, source: str | None = None,
               article: str | None = None, client: str = "") -> tuple[str, list[dict], Snapshot, float]:
        q = clean_query(query)
        k = check_k(k)
        snap = self.live.get()
        with self.fair.turn(client, estimate(q, k)):    # light first, clients in turn
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

    def cite(self, quote: object, k: object = 5, client: str = "") -> tuple[dict, Snapshot, float]:
        k = check_k(k)
        snap = self.live.get()
        if snap.citer is None:
            raise RagError(UNAVAILABLE)
        with self.fair.turn(client, estimate(quote if isinstance(quote, str) else "", k)):
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
    def batch(self, path: str, k: int, progress: Callable[[float, str], None],
              searcher=None) -> tuple[int, int, Path, Path, list[str]]:
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

        items = list(itertools.islice(read_items(src, on_error=warn, name=name), MAX_BATCH_QUERIES + 1))
        if len(items) > MAX_BATCH_QUERIES:
            raise RagError(f"问题太多：超过 {MAX_BATCH_QUERIES} 条的上限，请拆分文件")
        if not items:
            raise RagError("文件中没有可用的问题")
        if self.temp is not None and self.temp.full():       # rag.web.housekeeping
            raise Overloaded(f"临时文件夹已满（上限 {self.temp.max_bytes // 2**20} MB）：较早的结果到期删除后再试 "
                             f"(temporary folder full; retry later)")
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
            for group, records in answer(iter(items), searcher or snap.searcher, k, bad, size=16):
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

    def reindex(self, log: Callable[[str], None], only: list[str] | None = None) -> str:
        """Update the index incrementally; `only`: the corpus files that changed, when known
        (no scan of the rest of the corpus)."""
        if self.corpus is None:
            raise RagError("未指定文库目录（--corpus），不能更新索引")
        if not self.build_lock.acquire(blocking=False):
            raise IndexBusy("another build is already writing the index")
        try:
            report = update_index(self.corpus, self.index_dir, log, **self.build_options,
                                  **({"only": only} if only else {}))
        finally:
            self.build_lock.release()
        snap = self.live.reload()
        return report.summary() + f" · 当前 {snap.generation}"

    def pending_files(self) -> list[str]:
        """Corpus files the served index does not hold (added during another build, by hand,
        or unreadable): the Library tab lists them, and they can be removed (rag.web.adding)."""
        if self.corpus is None or not self.corpus.is_dir():
            return []
        try:
            indexed = {s for s, _sha, _enc in self.live.get().index.store.files()}
        except RagError:
            indexed = set()
        return [s for s in (relative_source(self.corpus, p) for p in iter_paths(self.corpus))
                if s not in indexed]

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
        known = {s for s, _sha, _enc in self.live.get().index.store.files()} | set(self.pending_files())
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


def update_index(corpus: Path, index_dir: Path, log: Callable[[str], None], progress: bool = False,
                 **options):
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
            return build(corpus, index_dir, **{**options, "embedder": old["embedder"]["spec"]},
                         settings=settings, rebuild=True, progress=progress, log=log)
    return build(corpus, index_dir, progress=progress, log=log, **options)
