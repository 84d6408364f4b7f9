"""rag.plugins, rag.settings, rag.errors: the plug-in registries and the shared basics."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rag import settings
from rag.documents import Document, SkipDocument, load_corpus, register_reader, suffixes
from rag.documents.registry import READERS
from rag.errors import BadInput, IndexBusy, MissingExtra, RagError, require
from rag.plugins import Registry


class UpperReader:
    """A reader plug-in: `.up` files, upper-cased (enough to prove the plug-in point)."""
    name = "test-upper"
    suffixes = (".up",)

    def read(self, path, source, data, sha256):
        if not data.strip():
            raise SkipDocument("empty")
        return Document(source, path, "utf-8", data.decode().upper(), sha256, reader=self.name)


def test_a_registered_reader_reads_its_suffix_and_skips_with_a_reason(tmp_path, capsys):
    register_reader(UpperReader())
    try:
        (tmp_path / "a.up").write_text("hello 公安", encoding="utf-8")
        (tmp_path / "b.up").write_text("  ", encoding="utf-8")
        (tmp_path / "c.txt").write_text("纯文本。", encoding="utf-8")
        assert ".up" in suffixes()
        docs = {d.source: d for d in load_corpus(tmp_path)}
        assert docs["a.up"].text == "HELLO 公安" and docs["a.up"].reader == "test-upper"
        assert docs["c.txt"].reader == "plaintext" and "b.up" not in docs
        assert "skipping b.up: empty" in capsys.readouterr().err
    finally:
        READERS._items.pop("test-upper", None)


def test_registry_instantiates_factories_once_and_loads_entry_points(monkeypatch):
    made = []
    reg: Registry[object] = Registry("rag.test-no-such-group", "widget")
    reg.register("w", lambda: made.append(1) or object())
    assert reg.get("w") is reg.get("w") and made == [1]
    with pytest.raises(BadInput, match="unknown widget 'x': use one of w"):
        reg.get("x")


def test_entry_point_plugins_are_found(tmp_path):
    """A third-party package adds a reader through the `rag.readers` entry-point group."""
    pkg = tmp_path / "site"
    (pkg / "thirdparty").mkdir(parents=True)
    (pkg / "thirdparty" / "__init__.py").write_text(
        "from rag.documents import Document\n"
        "class R:\n    name='tp'\n    suffixes=('.tp',)\n"
        "    def read(self, path, source, data, sha):\n"
        "        return Document(source, path, 'utf-8', data.decode(), sha, reader='tp')\n", encoding="utf-8")
    dist = pkg / "thirdparty-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[rag.readers]\ntp = thirdparty:R\n")
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from rag.documents import suffixes\nprint('.tp' in suffixes())" % str(pkg))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "True", out.stderr


def test_settings_are_read_once_from_the_environment(monkeypatch):
    monkeypatch.setenv("RAG_INDEX", "/tmp/elsewhere")
    settings.get.cache_clear()
    assert settings.get().index == "/tmp/elsewhere"
    monkeypatch.setenv("RAG_INDEX", "/tmp/changed")
    assert settings.get().index == "/tmp/elsewhere"          # cached: one reading per process
    monkeypatch.setenv("RAG_MAX_PAGES", "not a number")
    settings.get.cache_clear()
    assert settings.get().max_pages == 1000                   # a bad value keeps the default


def test_errors_are_typed_and_missing_extras_name_the_extra():
    assert issubclass(IndexBusy, RagError) and IndexBusy.http_status == 409
    with pytest.raises(MissingExtra, match=r"pip install 'rag\[pdf\]'") as info:
        require("no_such_module_for_rag_tests", "pdf", "reading PDF files")
    assert isinstance(info.value, ImportError)


def test_search_and_cite_load_neither_gradio_nor_torch():
    code = "import rag.search, rag.cite, sys; print('gradio' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "False False", out.stderr
