"""rag.documents: finding files, detecting encodings, decoding exactly once."""
from __future__ import annotations

import codecs
import hashlib
import os
import random
from pathlib import Path

import pytest

from rag.documents import load_corpus
from rag.errors import RagError

from conftest import read_raw


@pytest.fixture(scope="module")
def seed_text(seeds_dir: Path) -> str:
    """Chinese text to encode: the shorter seed file, decoded as UTF-8 with newlines kept."""
    text = read_raw(seeds_dir / "003_8750069abcf0ab7e.txt")
    assert "王志忠" in text and "\r" not in text
    return text


def _same_codec(a: str, b: str) -> bool:
    return codecs.lookup(a).name == codecs.lookup(b).name


def _png_bytes() -> bytes:
    # a real PNG signature and IHDR chunk (length field holds NULs), then noise
    rng = random.Random(1)
    return (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06"
            b"\x00\x00\x00\x1f\xf3\xffa" + bytes(rng.randrange(256) for _ in range(600)))


def _random_with_nuls() -> bytes:
    rng = random.Random(2)
    data = bytearray(rng.randrange(256) for _ in range(3000))
    data[10] = data[500] = data[2000] = 0
    return bytes(data)


# (name, bytes encoder, codecs that count as a correct answer)
ENCODINGS = [
    ("utf8", lambda t: t.encode("utf-8"), {"utf-8"}),
    ("utf8-bom", lambda t: codecs.BOM_UTF8 + t.encode("utf-8"), {"utf-8-sig"}),
    ("gb18030", lambda t: t.encode("gb18030"), {"gb18030"}),
    # GBK is a subset of GB18030, so reading GBK bytes with gb18030 is exact
    ("gbk", lambda t: t.encode("gbk"), {"gbk", "gb18030"}),
    ("utf16-le-bom", lambda t: codecs.BOM_UTF16_LE + t.encode("utf-16-le"), {"utf-16"}),
    ("utf16-be-bom", lambda t: codecs.BOM_UTF16_BE + t.encode("utf-16-be"), {"utf-16"}),
]


@pytest.mark.parametrize("name,encode,accepted", ENCODINGS, ids=[e[0] for e in ENCODINGS])
def test_encoding_detected_and_reproducible(tmp_path, seed_text, name, encode, accepted):
    data = encode(seed_text)
    p = tmp_path / f"doc_{name}.txt"
    p.write_bytes(data)
    [doc] = load_corpus(tmp_path)
    assert any(_same_codec(doc.encoding, a) for a in accepted), doc.encoding
    assert doc.text == seed_text            # decodes to the same Chinese text, no BOM kept
    assert doc.sha256 == hashlib.sha256(data).hexdigest()
    assert doc.source == p.name and doc.path == p
    # the offset contract: this exact call reproduces doc.text
    assert read_raw(p, doc.encoding) == doc.text


@pytest.mark.parametrize("enc", ["gbk", "gb18030"])
def test_short_gb_file_is_read_as_chinese(tmp_path, enc):
    # Short GB files are ambiguous with EUC-KR/Shift-JIS; a Chinese-first reader must
    # not turn them into Korean (this failed before the tie-break in detect_encoding).
    text = "坚持全面从严管党治警\n"
    (tmp_path / "short.txt").write_bytes(text.encode(enc))
    [doc] = load_corpus(tmp_path)
    assert doc.text == text
    assert read_raw(doc.path, doc.encoding) == text


@pytest.mark.parametrize("enc", ["utf-8", "gb18030", "utf-16"])
def test_crlf_is_kept(tmp_path, seed_text, enc):
    crlf = seed_text.replace("\n", "\r\n")
    p = tmp_path / "crlf.txt"
    p.write_bytes(crlf.encode(enc))
    [doc] = load_corpus(tmp_path)
    assert doc.text == crlf
    assert doc.text.count("\r\n") == seed_text.count("\n") > 10
    assert read_raw(p, doc.encoding) == doc.text


def _warning_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.strip()]


@pytest.mark.parametrize("name,data", [
    ("image.txt", _png_bytes()),
    ("noise.txt", _random_with_nuls()),
    ("undecodable.txt", bytes(range(0x80, 0x100)) * 8),   # no NULs, valid in no candidate codec
], ids=["png", "random-nuls", "undecodable"])
def test_binary_or_undecodable_skipped_with_one_line_warning(tmp_path, capsys, seed_text, name, data):
    (tmp_path / "good.txt").write_text(seed_text, encoding="utf-8")
    (tmp_path / name).write_bytes(data)
    docs = load_corpus(tmp_path)
    assert [d.source for d in docs] == ["good.txt"]
    lines = _warning_lines(capsys.readouterr().err)
    assert len(lines) == 1, lines
    assert name in lines[0] and lines[0].startswith("warning:")


def test_several_bad_files_each_warned_once(tmp_path, capsys, seed_text):
    (tmp_path / "a.txt").write_bytes(_png_bytes())
    (tmp_path / "b.md").write_bytes(_random_with_nuls())
    (tmp_path / "c.txt").write_text(seed_text, encoding="utf-8")
    docs = load_corpus(tmp_path)
    assert [d.source for d in docs] == ["c.txt"]
    lines = _warning_lines(capsys.readouterr().err)
    assert len(lines) == 2
    assert "a.txt" in lines[0] and "b.md" in lines[1]


def test_oversized_file_skipped(tmp_path, capsys, monkeypatch, seed_text):
    import rag.documents.corpus as documents
    (tmp_path / "big.txt").write_text(seed_text, encoding="utf-8")
    (tmp_path / "small.txt").write_text("短文。\n", encoding="utf-8")
    monkeypatch.setattr(documents, "MAX_FILE_BYTES", 1000)
    docs = load_corpus(tmp_path)
    assert [d.source for d in docs] == ["small.txt"]
    lines = _warning_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "big.txt" in lines[0]


def test_empty_folder_is_an_error(tmp_path):
    with pytest.raises(RagError, match="no readable"):
        load_corpus(tmp_path)


def test_folder_with_only_binaries_is_an_error(tmp_path, capsys):
    (tmp_path / "x.txt").write_bytes(_png_bytes())
    (tmp_path / "y.txt").write_bytes(_random_with_nuls())
    (tmp_path / "z.pdf").write_bytes(b"%PDF-1.4 ...")
    with pytest.raises(RagError) as e:
        load_corpus(tmp_path)
    assert "\n" not in str(e.value)
    warnings = _warning_lines(capsys.readouterr().err)
    assert len(warnings) == 3 and "z.pdf: not a readable PDF" in warnings[2]   # PDFs are read now (issue 12)


def test_missing_corpus_is_an_error(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(RagError) as e:
        load_corpus(missing)
    assert str(missing) in str(e.value)


def test_corpus_that_is_a_file_is_an_error(tmp_path, seed_text):
    f = tmp_path / "a.txt"
    f.write_text(seed_text, encoding="utf-8")
    with pytest.raises(RagError):
        load_corpus(f)


def test_recursion_gives_relative_posix_sources(tmp_path):
    files = {
        "a.txt": "甲文。\n",
        "sub/b.txt": "乙文。\n",
        "sub/deeper/c.md": "# 丙\n\n丙文。\n",
        "z/d.txt": "丁文。\n",
    }
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    docs = load_corpus(tmp_path)
    assert sorted(d.source for d in docs) == sorted(files)
    for d in docs:
        assert "\\" not in d.source and not d.source.startswith("/")
        assert d.path == tmp_path / d.source
        assert d.text == files[d.source]


def test_only_txt_and_md_are_read(tmp_path, capsys):
    (tmp_path / "a.txt").write_text("甲。\n", encoding="utf-8")
    (tmp_path / "b.md").write_text("乙。\n", encoding="utf-8")
    (tmp_path / "C.TXT").write_text("丙。\n", encoding="utf-8")
    for other in ("c.csv", "d.json", "e.xml", "f.py", "g.txt.bak", "h"):   # (.html is a format since issue 12)
        (tmp_path / other).write_text("不应读取。\n", encoding="utf-8")
    docs = load_corpus(tmp_path)
    assert sorted(d.source for d in docs) == ["C.TXT", "a.txt", "b.md"]
    assert capsys.readouterr().err == ""        # ignored suffixes are not warned about


@pytest.mark.timeout(20)
@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_symlink_loop_terminates_and_reads_each_file_once(tmp_path):
    root = tmp_path / "corpus"
    sub = root / "sub"
    sub.mkdir(parents=True)
    (root / "a.txt").write_text("甲。\n", encoding="utf-8")
    (sub / "b.txt").write_text("乙。\n", encoding="utf-8")
    try:
        os.symlink(root, sub / "loop")                       # parent inside itself
        os.symlink(sub, root / "again")                      # same folder twice
        os.symlink(root / "a.txt", sub / "alias.txt")        # same file twice
    except (OSError, NotImplementedError):
        pytest.skip("cannot create symlinks here")
    docs = load_corpus(root)
    texts = sorted(d.text for d in docs)
    assert texts == ["乙。\n", "甲。\n"]
    assert len({d.path.resolve() for d in docs}) == len(docs) == 2


def test_broken_symlink_is_not_fatal(tmp_path, capsys):
    (tmp_path / "a.txt").write_text("甲。\n", encoding="utf-8")
    try:
        os.symlink(tmp_path / "gone.txt", tmp_path / "dangling.txt")
    except (OSError, NotImplementedError):
        pytest.skip("cannot create symlinks here")
    docs = load_corpus(tmp_path)
    assert [d.source for d in docs] == ["a.txt"]
