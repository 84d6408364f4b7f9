"""`rag check`: verify an index (checksums, counts, loadability); non-zero on damage."""
from __future__ import annotations

import argparse

from rag.cli.common import add_index, index_dir, out


def add(sub) -> None:
    p = sub.add_parser("check", help="verify an index: checksums, counts, loadability")
    add_index(p, embedder=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rag.index import load, verify

    m = verify(index_dir(args), deep=True)
    load(index_dir(args))
    c = m["counts"]
    out(f"ok: {index_dir(args)} {m['generation']}: {c['files']} files, {c['chunks']} chunks, "
        f"embedder {m['embedder']['spec']}, checksums and counts agree")
    return 0
