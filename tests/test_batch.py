"""`rag batch` as a user runs it: input kinds and encodings, bad lines, strict mode,
output formats, one-line errors. Every run goes through a subprocess on the seed index."""
from __future__ import annotations

import csv
import json
import re

import pytest

from rag.batchio import CSV_FIELDS, read_items
from rag.errors import RagError

from conftest import run_cli

K = 3


@pytest.fixture(scope="module")
def batch(seed_index):
    def run(*args):
        proc = run_cli("batch", *map(str, args), "--index", str(seed_index))
        assert "Traceback" not in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stdout
        return proc
    return run


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def check_results(results: list[dict], k: int = K) -> None:
    assert len(results) == k
    assert [r["rank"] for r in results] == list(range(1, k + 1))
    for r in results:
        assert {"rank", "score", "source", "start", "end", "text", "title", "author", "section",
                "paragraph", "matched", "best_sentence"} <= set(r)
        assert r["source"].endswith(".txt") and 0 <= r["start"] < r["end"] and r["text"]


JSONL_INPUT = "\n".join([
    json.dumps({"id": "q1", "query": "湖南公安工作的规律性认识", "lang": "zh", "tags": ["a", 1],
                "results": "dropped"}, ensure_ascii=False),        # 1
    json.dumps({"id": 42, "query": "电信网络诈骗"}, ensure_ascii=False),  # 2: numeric id
    '{"id": "bad", "query": ',                                          # 3: malformed JSON
    json.dumps({"id": "noquery"}),                                      # 4: no query
    json.dumps(["湖南"], ensure_ascii=False),                           # 5: not an object
    "",                                                                 # 6: blank, ignored
    json.dumps({"query": "青海 战略要地"}, ensure_ascii=False),          # 7: id = line number
    json.dumps({"id": "blank", "query": "  \t "}),                      # 8: empty query
]) + "\n"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("batch")


@pytest.fixture(scope="module")
def jsonl_input(workdir):
    p = workdir / "queries.jsonl"
    p.write_text(JSONL_INPUT, encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def jsonl_run(batch, jsonl_input, workdir):
    out = workdir / "out.jsonl"
    return batch(jsonl_input, "-o", out, "-k", K), out


@pytest.fixture(scope="module")
def csv_run(batch, jsonl_input, workdir):
    out = workdir / "out.csv"
    return batch(jsonl_input, "-o", out, "-k", K), out


def test_jsonl_input_to_jsonl_output(jsonl_run):
    proc, out = jsonl_run
    assert proc.returncode == 0, proc.stderr
    records = read_jsonl(out)
    assert [r["id"] for r in records] == ["q1", "42", "7"]
    assert [r["query"] for r in records] == ["湖南公安工作的规律性认识", "电信网络诈骗", "青海 战略要地"]
    first = records[0]
    assert first["lang"] == "zh" and first["tags"] == ["a", 1]      # passed through
    assert isinstance(first["results"], list)                        # ours, not the input's
    assert list(records[1]) == ["id", "query", "results"]
    for r in records:
        check_results(r["results"])
    assert "3 queries answered" in proc.stderr


def test_bad_jsonl_lines_are_reported_with_line_numbers_and_skipped(jsonl_run, jsonl_input):
    proc, _ = jsonl_run
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning:")]
    bad_lines = sorted(int(line.split(f"{jsonl_input}:")[1].split(":")[0]) for line in warnings)
    assert bad_lines == [3, 4, 5, 8], proc.stderr
    assert all("skipped" in line for line in warnings)
    assert any(":3: malformed JSON" in line for line in warnings)
    assert error_lines(proc.stderr) == []


def test_csv_output_one_row_per_query_and_rank(csv_run, jsonl_run):
    proc, out = csv_run
    assert proc.returncode == 0, proc.stderr
    with open(out, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == CSV_FIELDS
        rows = list(reader)
    assert [(r["id"], r["rank"]) for r in rows] == [(i, str(k)) for i in ("q1", "42", "7")
                                                     for k in range(1, K + 1)]
    # the same answers as the JSONL run, field by field
    records = read_jsonl(jsonl_run[1])
    flat = [(rec["id"], rec["query"], res) for rec in records for res in rec["results"]]
    for row, (qid, query, res) in zip(rows, flat):
        assert row["query"] == query
        assert (row["source"], int(row["start"]), int(row["end"])) == (res["source"], res["start"], res["end"])
        assert row["text"] == res["text"] and row["title"] == res["title"]
        assert row["best_sentence"] == res["best_sentence"]["text"]
        assert row["section"] == " > ".join(res["section"])


def test_txt_input_with_bom_and_crlf(batch, workdir):
    p = workdir / "bom.txt"
    p.write_bytes("\ufeff湖南公安工作\r\n\r\n电信网络诈骗\r\n  \r\n".encode("utf-8"))
    out = workdir / "bom.jsonl"
    proc = batch(p, "-o", out, "-k", K)
    assert proc.returncode == 0, proc.stderr
    records = read_jsonl(out)
    assert [(r["id"], r["query"]) for r in records] == [("1", "湖南公安工作"), ("3", "电信网络诈骗")]
    for r in records:
        check_results(r["results"])


def test_utf16_csv_input(batch, workdir):
    p = workdir / "utf16.csv"
    body = 'ID,Query,note\r\na1,"公安工作，湖南, 规律",x\r\na2,青海战略要地,y\r\na3,,z\r\n'
    p.write_bytes(body.encode("utf-16"))            # with BOM
    assert p.read_bytes()[:2] in (b"\xff\xfe", b"\xfe\xff")
    out = workdir / "utf16.jsonl"
    proc = batch(p, "-o", out, "-k", K)
    assert proc.returncode == 0, proc.stderr
    records = read_jsonl(out)
    assert [(r["id"], r["query"]) for r in records] == [("a1", "公安工作，湖南, 规律"), ("a2", "青海战略要地")]
    assert any(":4: missing query" in line for line in proc.stderr.splitlines())
    for r in records:
        check_results(r["results"])


def test_stdout_output_is_jsonl(batch, workdir):
    p = workdir / "one.txt"
    p.write_text("青海 战略要地\n", encoding="utf-8")
    proc = batch(p, "-k", 2)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1
    rec = json.loads(lines[0])
    assert rec["id"] == "1" and rec["query"] == "青海 战略要地"
    check_results(rec["results"], 2)


def test_strict_stops_at_the_first_bad_line(batch, jsonl_input, workdir):
    proc = batch(jsonl_input, "--strict", "-o", workdir / "strict.jsonl")
    assert proc.returncode == 2
    errors = error_lines(proc.stderr)
    assert len(errors) == 1 and f"{jsonl_input}:3:" in errors[0] and "malformed JSON" in errors[0]


@pytest.mark.parametrize("name, content, expect", [
    ("queries.tsv", "id\tquery\n1\t公安\n", "use .txt, .jsonl or .csv"),
    ("queries", "公安\n", "use .txt, .jsonl or .csv"),
    ("nocol.csv", "id,question\n1,公安\n", "'query' column"),
    ("latin1.txt", "caf\xe9 公安\n".encode("latin-1", "replace"), "not valid UTF-8"),
])
def test_bad_input_files_fail_with_one_line(batch, workdir, name, content, expect):
    p = workdir / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    out = workdir / f"{name}.out.jsonl"
    out.write_text('{"id": "earlier run"}\n', encoding="utf-8")
    proc = batch(p, "-o", out)
    assert proc.returncode == 2, proc.stderr
    errors = error_lines(proc.stderr)
    assert len(errors) == 1 and expect in errors[0], proc.stderr
    assert "\n" not in errors[0]
    # a refused input does not truncate an existing output file
    assert out.read_text(encoding="utf-8") == '{"id": "earlier run"}\n'
    # and the library refuses it before a single item is asked for
    with pytest.raises(RagError, match=re.escape(expect)):
        read_items(p)


def test_missing_file_bad_output_and_bad_k(batch, workdir):
    p = workdir / "ok.txt"
    p.write_text("公安\n", encoding="utf-8")
    for args, expect in [((workdir / "absent.txt",), "not found"),
                         ((p, "-o", workdir / "out.txt"), "must be .jsonl or .csv"),
                         ((p, "-k", "0"), "k must be between 1 and")]:
        proc = batch(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        errors = error_lines(proc.stderr)
        assert len(errors) == 1 and expect in errors[0], (args, proc.stderr)


# ------------------------------------------------------------------ the loop rag batch and the app share

def test_answer_keeps_order_and_equals_search_many(seed_index):
    from rag.batchio import Item, answer
    from rag.index import load
    from rag.search import Searcher

    searcher = Searcher(load(seed_index))
    queries = ["湖南公安工作的规律性认识", "", "电信网络诈骗", "What strategic area is Qinghai located in?",
               "青海 战略要地", "网民规模", "\x00", "从严管党治警"]
    items = [Item(line=i + 1, id=f"q{i}", query=q, extra={"n": i}) for i, q in enumerate(queries)]
    bad: list[int] = []
    groups = list(answer(iter(items), searcher, 3, lambda it, e: bad.append(it.line), size=3))
    # groups come back in input order, each with its own items, however embedding overlaps ranking
    assert [[it.line for it in g] for g, _ in groups] == [[1, 2, 3], [4, 5, 6], [7, 8]]
    assert bad == [2, 7]
    records = [r for _, recs in groups for r in recs]
    assert [r["id"] for r in records] == ["q0", "q2", "q3", "q4", "q5", "q7"]
    expect = searcher.search_many([r["query"] for r in records], k=3)
    for rec, res in zip(records, expect):
        assert rec["n"] == int(rec["id"][1:])
        assert [x["id"] for x in rec["results"]] == [x.id for x in res]


def test_answer_stops_when_on_bad_raises(seed_index):
    from rag.batchio import Item, answer
    from rag.index import load
    from rag.search import Searcher

    searcher = Searcher(load(seed_index))
    items = [Item(line=i + 1, id=str(i), query=q, extra={}) for i, q in enumerate(["湖南", "青海", "", "四川"])]

    def strict(it, e):
        raise RagError(f"line {it.line}: {e}")

    with pytest.raises(RagError, match="line 3"):
        for _ in answer(iter(items), searcher, 3, strict, size=2):
            pass
