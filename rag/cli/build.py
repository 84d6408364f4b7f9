"""`rag build`: build or update the index of a corpus (incremental)."""
from __future__ import annotations

import argparse
import sys

from rag.cli.common import add_corpus, add_index, index_dir, out


def add(sub) -> None:
    p = sub.add_parser("build", help="build or update the index of a corpus (incremental)")
    add_corpus(p)
    add_index(p)
    p.add_argument("--rebuild", action="store_true", help="ignore the existing index and build anew")
    p.add_argument("--ann", default="auto", help="auto | flat | ivf | hnsw, per segment (default: flat below "
                   "20,000 chunks, ivf above)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="where passages are embedded: auto (a CUDA GPU when there is one), cpu, "
                        "cuda (an error without one); the batch size follows the device")
    p.add_argument("--only", metavar="FILE", action="append", default=None,
                   help="update just this corpus file (relative to the corpus; repeatable): added, "
                        "changed or deleted; the rest of the corpus is not scanned")
    p.add_argument("--max-chars", type=int, default=None)
    p.add_argument("--min-chars", type=int, default=None)
    p.add_argument("--reuse-vectors", default=None, metavar="INDEX", action="append",
                   help="Milvus: take vectors of identical chunks from this index (repeatable: "
                        "shards embedded elsewhere); nothing is embedded twice")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rag.chunks import ChunkSettings
    from rag.embed import show_progress
    from rag.embed.backends import set_device
    from rag.index import build

    set_device(getattr(args, "device", "auto"))

    settings = None
    if args.max_chars or args.min_chars:
        d = ChunkSettings()
        settings = ChunkSettings(args.max_chars or d.max_chars, args.min_chars or d.min_chars)
    report = build(args.corpus, index_dir(args), embedder=args.embedder, settings=settings,
                   ann=args.ann, rebuild=args.rebuild, progress=show_progress(),
                   log=lambda m: print(m, file=sys.stderr),
                   **({"reuse_vectors": args.reuse_vectors} if args.reuse_vectors else {}),
                   **({"only": args.only} if args.only else {}))
    out(report.summary())
    return 0
