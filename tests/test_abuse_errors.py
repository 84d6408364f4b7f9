"""Issue 16 findings 4, 5 and 9 through the CLI (and app.py's start): formula cells in CSV,
a deeply nested JSON line skipped with its line number, one-line errors for a full disk and
for an index path that is a file."""
from __future__ import annotations

import csv
import errno
import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import rag.cli
from conftest import REPO, run_cli
from rag.batchio import csv_safe

FORMULAS = ["=HYPERLINK(\"http://evil.example\",\"点我\")", "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]


def test_csv_safe_neutralises_formula_cells():
    for f in FORMULAS:
        assert csv_safe(f) == "'" + f
    assert csv_safe("四川公安") == "四川公安" and csv_safe(3) == 3 and csv_safe(-0.5) == -0.5


def test_every_csv_the_product_writes_goes_through_csv_safe():
    writers = [p for p in (REPO / "rag").rglob("*.py")
               if re.search(r"csv\.(writer|DictWriter)\(", p.read_text(encoding="utf-8"))]
    assert [p.relative_to(REPO).as_posix() for p in writers] == ["rag/batchio/writers.py"]
    text = (REPO / "rag/batchio/writers.py").read_text(encoding="utf-8")
    assert "csv_safe(v)" in text


def test_batch_csv_has_no_live_formula_and_a_nested_line_is_skipped(tiny_index, tmp_path):
    _corpus, index = tiny_index
    q = tmp_path / "q.jsonl"
    lines = [json.dumps({"id": "f", "query": FORMULAS[0]}, ensure_ascii=False),
             "[" * 100_000 + "]" * 100_000,
             json.dumps({"id": "ok", "query": "大熊猫的家园"}, ensure_ascii=False)]
    q.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    p = run_cli("batch", str(q), "--index", str(index), "-o", str(out), "-k", "2")
    assert p.returncode == 0, p.stderr
    assert re.search(r"q\.jsonl:2\b.*nested", p.stderr), p.stderr          # skipped, with its line
    rows = list(csv.DictReader(out.open(encoding="utf-8", newline="")))
    assert {r["id"] for r in rows} == {"f", "ok"}
    assert all(not r["query"].startswith(("=", "+", "-", "@")) for r in rows)
    assert rows[0]["query"] == "'" + FORMULAS[0]


@pytest.mark.parametrize("error", [
    OSError(errno.ENOSPC, "No space left on device", "/data/index/.tmp-gen-000003/store.sqlite"),
    sqlite3.OperationalError("database or disk is full"),
])
def test_disk_full_is_one_line_exit_2(monkeypatch, capsys, error):
    class P:
        def parse_args(self, argv):
            class A:
                @staticmethod
                def func(_args):
                    raise error
            return A()

    monkeypatch.setattr(rag.cli, "build_parser", lambda: P())
    assert rag.cli.main(["build"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "disk is full" in err and "intact" in err, err
    if isinstance(error, OSError):
        assert "store.sqlite" in err


def test_index_path_that_is_a_file(tmp_path):
    f = tmp_path / "not-a-folder"
    f.write_text("x")
    p = run_cli("build", "--corpus", str(REPO / "seeds"), "--index", str(f))
    assert p.returncode == 2 and "is not a folder" in p.stderr and "Traceback" not in p.stderr, p.stderr
    app = subprocess.run([sys.executable, str(REPO / "app.py"), "--index", str(f), "--corpus",
                          str(REPO / "seeds"), "--port", "1"], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert app.returncode == 2 and "is not a folder" in app.stderr, app.stderr
    assert "Traceback" not in app.stderr + app.stdout
