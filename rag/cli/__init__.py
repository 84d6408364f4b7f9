"""`rag` command line: thin argparse layer over the library, one module per command.

Every user-facing failure is a `RagError` printed as one line with exit code 2; a full
disk says which file and that the previous index is intact (exit 2); an unexpected
exception is also reduced to one line (exit 1) unless RAG_DEBUG is set.
"""
from __future__ import annotations

import argparse
import errno
import sqlite3
import sys
from typing import Callable

from rag import settings
from rag.errors import RagError

COMMANDS = ("chunks", "build", "query", "batch", "eval", "check", "cite", "show", "models")


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line like every other error (exit code 2)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {message} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = _Parser(prog="rag", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        importlib.import_module(f"rag.cli.{name}").add(sub)
    return parser


def disk_full_message(e: BaseException) -> str | None:
    """The one-line message of a write that failed for lack of space, else None."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" writing {e.filename}" if e.filename else ""
        return (f"the disk is full{where}; nothing was switched, the previous index is intact: "
                f"free some space and run the command again")
    if isinstance(e, sqlite3.OperationalError) and "disk is full" in str(e):
        return ("the disk is full while writing the chunk store; nothing was switched, the previous "
                "index is intact: free some space and run the command again")
    return None


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
        full = disk_full_message(e)
        if full:
            print(f"error: {full}", file=sys.stderr)
            return 2
        if settings.get().debug:
            raise
        print(f"error: unexpected {type(e).__name__}: {e} (set RAG_DEBUG=1 for details)",
              file=sys.stderr)
        return 1
