"""Chinese messages for the UI, keyed by error type (rag.errors); English detail beneath."""
from __future__ import annotations

import sys

from rag.errors import (BadK, DiskFull, EmptyInput, IndexBusy, IndexDamaged, IndexMismatch, IndexMissing,
                        InputTooLong, Overloaded, QuoteTooShort, RagError)
from rag.web import render as ui


def zh_message(e: Exception) -> tuple[str, str]:
    """(Chinese message, original English detail) for a user-facing error."""
    text = str(e)
    if isinstance(e, EmptyInput):
        return "请输入内容后再提交。", text
    if isinstance(e, InputTooLong):
        what = "引文" if "quote" in text else "问题"
        return f"{what}过长：{e.length} 字，上限 {e.limit} 字。", text
    if isinstance(e, QuoteTooShort):
        return f"引文太短，无法定位：只有 {e.length} 个汉字或字母数字，至少需要 {e.minimum} 个。", text
    if isinstance(e, BadK):
        return "返回条数必须是 1 到 100 之间的整数。", text
    if isinstance(e, IndexMissing):
        return "索引尚未建立。", text
    if isinstance(e, IndexBusy):
        return "另一个索引构建正在进行，请稍后再试。", text
    if isinstance(e, IndexDamaged):
        return "索引已损坏，请重建索引。", text
    if isinstance(e, Overloaded):
        return "服务器繁忙：排队的请求太多，请几秒后再试。", text
    if isinstance(e, DiskFull):
        return "磁盘已满：本次更改未生效，原有索引完好；请腾出磁盘空间后再试。", text
    if isinstance(e, IndexMismatch):
        return "索引的构建设置与当前设置不同，请重建索引。", text
    if isinstance(e, RagError):
        return "出错了：" + text, ""
    return "出错了：" + text, ""


def unexpected(e: Exception) -> str:
    print(f"error: unexpected {type(e).__name__}: {e}", file=sys.stderr, flush=True)
    return ui.message_html("内部错误，请重试；若持续出现请查看服务器日志。", "error",
                           f"unexpected {type(e).__name__}")


def failure_html(e: Exception) -> str:
    """A message box for an error: the Chinese message, the English detail beneath."""
    if isinstance(e, RagError):
        zh, en = zh_message(e)
        return ui.message_html(zh, "warn", en)
    return unexpected(e)
