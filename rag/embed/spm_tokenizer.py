"""e5-small's tokenizer on sentencepiece: the same ids as the installed `tokenizer.json`
(the `tokenizers` Unigram model) at a fraction of the memory.

Why: a process that only answers queries held ~270 MB for the `tokenizers` model of
250k pieces. Here the pieces, scores and the normalisation table (the `Precompiled`
charsmap) of that very tokenizer.json are written once into a sentencepiece model proto
(`sentencepiece.model` beside it, ~5 MB) and read by sentencepiece's C++ code; the few
rules tokenizer.json adds around them are applied here exactly as `tokenizers` applies them:

- normaliser: a \\x01 before combining marks (keeps NFKC from composing them), the
  charsmap (sentencepiece's own normaliser, same table), runs of spaces made one;
- pre-tokeniser: Metaspace (spaces become ``▁``, one is prepended, the text is split
  before each ``▁``), then every character outside the set of multi-character pieces is
  isolated (each unknown character is its own ``<unk>``);
- the Unigram best path of each piece of text, ties broken as `tokenizers` breaks them
  (the earliest start, i.e. the longest last piece, wins); sentencepiece's own encoder
  breaks ties the other way ("恰恰恰"), so the path is computed here over sentencepiece's
  vocabulary lookups (~1 ms for a query).

Ids are proven equal to `tokenizers`' on every seed text, CMRC passage and question
(bench/bench_spm_ids.py; a sample in tests/test_onnx_encoder.py).
"""
from __future__ import annotations

import base64
import json
import os
import re
import sys
import unicodedata
from pathlib import Path

MODEL_FILE = "sentencepiece.model"
RULES_FILE = "sentencepiece-rules.json"
UNK_PENALTY = 10.0          # tokenizers' K_UNK_PENALTY
_HEX = re.compile(r"\\x\{([0-9a-fA-F]+)\}")


def _py_class(rust_class: str) -> str:
    """A Rust-regex character class body as Python `re` syntax (\\x{...} escapes, \\p{M})."""
    body = _HEX.sub(lambda m: "\\U%08x" % int(m.group(1), 16), rust_class)
    if "\\p{M}" in body:
        marks = [c for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)).startswith("M")]
        ranges, start = [], None
        for i, c in enumerate(marks):
            if start is None:
                start = c
            if i + 1 == len(marks) or marks[i + 1] != c + 1:
                ranges.append("\\U%08x-\\U%08x" % (start, c) if c > start else "\\U%08x" % start)
                start = None
        body = body.replace("\\p{M}", "".join(ranges))
    return body


def convert(tokenizer_json: Path) -> tuple[bytes, dict]:
    """(sentencepiece model proto, the rules around it) from a Unigram tokenizer.json."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    t = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
    model = t["model"]
    if model.get("type") != "Unigram":
        raise ValueError(f"{tokenizer_json}: not a Unigram tokenizer")
    m = pb.ModelProto()
    normal, control = pb.ModelProto.SentencePiece.NORMAL, pb.ModelProto.SentencePiece.CONTROL
    added = [a for a in t.get("added_tokens", []) if a.get("special")]
    special = {a["id"] for a in added}
    max_len = 1
    min_score = float("inf")
    for i, (piece, score) in enumerate(model["vocab"]):
        p = m.pieces.add()
        p.piece, p.score = piece, score
        if p.score != score:                    # a score that float32 cannot hold exactly
            raise ValueError(f"{tokenizer_json}: score of {piece!r} is not a float32")
        p.type = control if i in special else normal
        max_len = max(max_len, len(piece))
        min_score = min(min_score, score)
    unk = int(model["unk_id"])
    m.pieces[unk].type = pb.ModelProto.SentencePiece.UNKNOWN
    m.trainer_spec.model_type = pb.TrainerSpec.UNIGRAM
    m.trainer_spec.vocab_size = len(m.pieces)
    m.trainer_spec.unk_id = unk
    m.trainer_spec.bos_id = m.trainer_spec.eos_id = m.trainer_spec.pad_id = -1
    norms = t["normalizer"]["normalizers"] if t["normalizer"]["type"] == "Sequence" else [t["normalizer"]]
    rules: dict = {"unk_id": unk, "max_len": max_len, "unk_score": min_score - UNK_PENALTY,
                   "marks": None, "collapse_spaces": False, "isolate": None,
                   "specials": {a["content"]: a["id"] for a in added}}
    for n in norms:
        if n["type"] == "Precompiled":
            m.normalizer_spec.name = "rag_precompiled"
            m.normalizer_spec.precompiled_charsmap = base64.b64decode(n["precompiled_charsmap"])
        elif n["type"] == "Replace" and n["pattern"].get("Regex") == " {2,}":
            rules["collapse_spaces"] = True
        elif n["type"] == "Replace" and n["content"] == "\x01":
            cls = re.fullmatch(r"\(\?<=\[\\s\\S\]\)\(\?=\[(.*)\]\)", n["pattern"]["Regex"], re.S)
            if not cls:
                raise ValueError(f"{tokenizer_json}: unexpected normaliser {n['pattern']}")
            rules["marks"] = _py_class(cls.group(1))
        else:
            raise ValueError(f"{tokenizer_json}: unsupported normaliser {n['type']}")
    # the rules below are applied in Python; sentencepiece only applies the charsmap
    m.normalizer_spec.add_dummy_prefix = False
    m.normalizer_spec.remove_extra_whitespaces = False
    m.normalizer_spec.escape_whitespaces = False
    pre = t["pre_tokenizer"]
    for p in (pre["pretokenizers"] if pre["type"] == "Sequence" else [pre]):
        if p["type"] == "Metaspace":
            if p.get("replacement") != "▁" or p.get("prepend_scheme", "always") not in ("first", "always") \
                    or not p.get("split", True):
                raise ValueError(f"{tokenizer_json}: unsupported Metaspace {p}")
        elif p["type"] == "Split" and p.get("behavior") == "Isolated" and not p.get("invert"):
            cls = re.fullmatch(r"\[\^(.*)\]", p["pattern"]["Regex"], re.S)
            if not cls:
                raise ValueError(f"{tokenizer_json}: unexpected split {p['pattern']}")
            rules["isolate"] = "[^" + _py_class(cls.group(1)) + "]"
        else:
            raise ValueError(f"{tokenizer_json}: unsupported pre-tokenizer {p['type']}")
    return m.SerializeToString(), rules


def ensure_model(model_dir: Path) -> tuple[Path, Path]:
    """The sentencepiece model and rules beside tokenizer.json, written once (atomically)
    and again whenever tokenizer.json changes."""
    model_dir = Path(model_dir)
    src = model_dir / "tokenizer.json"
    st = src.stat()
    stamp = [st.st_size, st.st_mtime_ns]
    mp, rp = model_dir / MODEL_FILE, model_dir / RULES_FILE
    try:
        if json.loads(rp.read_text(encoding="utf-8")).get("source") == stamp and mp.exists():
            return mp, rp
    except (OSError, ValueError):
        pass
    proto, rules = convert(src)
    rules["source"] = stamp
    for path, data in ((mp, proto), (rp, json.dumps(rules, ensure_ascii=False).encode("utf-8"))):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return mp, rp


class SpmTokenizer:
    """`encode(text) -> ids`, equal to tokenizer.json's (add_special_tokens=False)."""

    def __init__(self, model_dir: Path) -> None:
        import sentencepiece as spm

        mp, rp = ensure_model(Path(model_dir))
        rules = json.loads(rp.read_text(encoding="utf-8"))
        self._sp = spm.SentencePieceProcessor(model_file=str(mp))
        self._unk = int(rules["unk_id"])
        self._unk_score = float(rules["unk_score"])
        self._max_len = int(rules["max_len"])
        self._marks = re.compile(f"(?<=.)(?=[{rules['marks']}])", re.S) if rules["marks"] else None
        self._collapse = bool(rules["collapse_spaces"])
        self._isolate = re.compile(f"({rules['isolate']})") if rules["isolate"] else None
        self._specials = {k: int(v) for k, v in rules.get("specials", {}).items()}
        self._special = re.compile("|".join(re.escape(k) for k in sorted(self._specials, key=len, reverse=True))) \
            if self._specials else None

    def _pieces(self, text: str, first: bool) -> list[str]:
        if self._marks is not None:
            text = self._marks.sub("\x01", text)
        text = self._sp.normalize(text)
        if self._collapse:
            text = re.sub(" {2,}", " ", text)
        if not text:
            return []
        text = text.replace(" ", "▁")
        if first and not text.startswith("▁"):     # Metaspace's prepend_scheme "first"
            text = "▁" + text
        out = []
        for word in re.split("(?=▁)", text):
            if not word:
                continue
            parts = self._isolate.split(word) if self._isolate is not None else [word]
            out += [p for p in parts if p]
        return out

    def _best_path(self, s: str) -> list[int]:
        """tokenizers' Unigram.encode_optimized: the best path, each end position keeping
        the first (earliest-starting) of equally good arrivals."""
        n = len(s)
        best = [0.0] * (n + 1)
        start = [-1] * (n + 1)
        ids = [0] * (n + 1)
        p2i, score, unk = self._sp.piece_to_id, self._sp.get_score, self._unk
        for i in range(n):
            here = best[i]
            single = False
            for j in range(i + 1, min(n, i + self._max_len) + 1):
                pid = p2i(s[i:j])
                if pid == unk and s[i:j] != "<unk>":
                    continue
                cand = score(pid) + here
                if start[j] < 0 or cand > best[j]:
                    best[j], start[j], ids[j] = cand, i, pid
                if j == i + 1:
                    single = True
            if not single:
                cand = self._unk_score + here
                if start[i + 1] < 0 or cand > best[i + 1]:
                    best[i + 1], start[i + 1], ids[i + 1] = cand, i, unk
        out = []
        j = n
        while j > 0:
            out.append(ids[j])
            j = start[j]
        return out[::-1]

    def encode(self, text: str) -> list[int]:
        out: list[int] = []
        at = 0
        # special tokens written in the text are matched before anything else, as tokenizers does
        for m in ([*self._special.finditer(text)] if self._special is not None else []):
            for piece in self._pieces(text[at:m.start()], at == 0):
                out += self._best_path(piece)
            out.append(self._specials[m.group(0)])
            at = m.end()
        for piece in self._pieces(text[at:], at == 0):
            out += self._best_path(piece)
        return out

    def encode_batch(self, texts) -> list[list[int]]:
        return [self.encode(t) for t in texts]
