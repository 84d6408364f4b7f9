"""Adding documents from the Library tab: indexed, or not copied at all.

Why (issue 16, finding 7): a document added while a CLI build held the index was copied into
the corpus, re-indexing was refused, a retry said the file existed, and the file showed in
neither the library nor the remove list. Now an add waits its turn (queued, with a message)
until no other build writes the index, then copies and indexes in one step; when the build
fails, the copied files are removed again. Files that are in the corpus but not in the index
(added by hand, unreadable, or left by a build that could not finish) are listed by
`Service.pending_files` and shown in the Library tab.
"""
from __future__ import annotations

import time
from typing import Callable

from rag.errors import IndexBusy, RagError
from rag.index import writer_lock
from rag.web.service import Service, update_index

BUILD_WAIT_S = 1800.0        # how long an add waits for another build to finish
POLL_S = 1.0


def index_free(svc: Service) -> bool:
    """Whether no build (this process or another, e.g. `rag build`) writes the index now."""
    try:
        with writer_lock(svc.index_dir):
            return True
    except IndexBusy:
        return False


def add_and_index(svc: Service, paths: list[str], log: Callable[[str], None],
                  wait_s: float = BUILD_WAIT_S, poll_s: float = POLL_S) -> tuple[list[str], str]:
    """Copy the uploads into the corpus and index them; returns (names added, build summary)."""
    if svc.corpus is None:
        raise RagError("未指定文库目录（--corpus），不能添加文档")
    deadline = time.monotonic() + wait_s
    queued = False

    def wait_turn() -> None:
        nonlocal queued
        if not queued:
            log("另一个索引构建正在进行：已排队，结束后自动添加并更新索引 (queued behind another build)")
            queued = True
        if time.monotonic() > deadline:
            raise IndexBusy(f"another build is still writing the index after {wait_s:.0f} s; "
                            f"nothing was added: retry later")
        time.sleep(poll_s)

    while not svc.build_lock.acquire(timeout=poll_s):        # the app's own re-indexing
        wait_turn()
    try:
        while not index_free(svc):                            # e.g. a `rag build` in a terminal
            wait_turn()
        added = svc.add_documents(paths, log)
        if not added:
            return [], ""
        log("正在更新索引（增量）…")
        while True:
            try:
                report = update_index(svc.corpus, svc.index_dir, log, **svc.build_options, only=added)
                break
            except IndexBusy:
                # a build started between our check and ours: it may index these files too;
                # they stay (listed as not yet indexed until one of the builds takes them)
                if time.monotonic() > deadline:
                    raise
                time.sleep(poll_s)
            except BaseException:
                for name in added:                            # not copied at all
                    (svc.corpus / name).unlink(missing_ok=True)
                log(f"已撤销添加 {', '.join(added)}：索引未能更新 (not added: the index could not be updated)")
                raise
    finally:
        svc.build_lock.release()
    snap = svc.live.reload()
    return added, report.summary() + f" · 当前 {snap.generation}"
