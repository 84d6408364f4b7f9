"""Shared fixtures: the seed corpus and a way to run the `rag` CLI as a user would."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SEEDS = REPO / "seeds"


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
