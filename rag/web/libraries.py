"""Several libraries behind one app: the `rag.toml` config, each library's index kept up to
date, and searching several libraries as ONE ranking.

    api_token = "…"            # optional: bearer token of the REST API (RAG_API_TOKEN wins)
    api_protect_reads = false   # true: reads need the token even from this machine
    [[library]]
    name = "公安期刊"           # shown in the UI and the API
    corpus = "seeds"            # relative paths are relative to the config file
    index = "index"
    embedder = "e5-small"       # any other key is a build option, passed through to rag.index.build

One ranking over several indexes. Each library proposes its candidates exactly as it does
alone (dense top-100 and BM25 top-100, rag.search.Searcher.leg_scores); then every
candidate is scored on one scale and the union is fused once, as a single index would:
- dense scores are cosines of the same embedder's unit vectors: comparable as they are,
  which is why libraries with different embedders are refused together (IndexMismatch);
- BM25 is not: a term's idf depends on its library's size and document frequencies (a
  term rare in a small library scores high there). Each term's score is rescaled by
  idf_union / idf_library, where idf_union uses the summed chunk counts and document
  frequencies of every library searched, so a term weighs the same whichever library a
  passage sits in. (Lucene BM25's idf is a factor of each term's score; the length
  normalisation still uses each library's own average chunk length.)
Measured (bench/bench_libraries.py): see that script's docstring and the README.
"""
from __future__ import annotations

import inspect
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from rag.errors import BadInput, IndexMismatch, RagError
from rag.index.sparse.crosslingual import is_english, translate
from rag.references import Referencer, location_text
from rag.search import Result, check_k, clean_query, fuse
from rag.web.live import LiveIndex, Snapshot

MAX_LIBRARIES = 64
_RESERVED = ("name", "corpus", "index")


class LibrariesIncompatible(IndexMismatch):
    """Libraries built with different embedders, asked to be searched together."""


class UnknownLibrary(BadInput):
    """A library name that the config does not define."""

    http_status = 404


@dataclass
class LibraryConfig:
    name: str
    corpus: Path | None
    index: Path
    options: dict = field(default_factory=dict)     # passed through to rag.index.build


@dataclass
class AppConfig:
    libraries: list[LibraryConfig]
    api_token: str = ""                # bearer token of the REST API (RAG_API_TOKEN wins)
    protect_reads: bool = False        # reads need the token on loopback too
    path: Path | None = None


def read_config(path: str | Path) -> AppConfig:
    """The libraries of a rag.toml, checked: one-line errors naming the file and the problem."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise BadInput(f"cannot read config {p}: {e.strerror or e}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise BadInput(f"{p}: not valid TOML ({e})") from None
    libs = data.get("library")
    if not isinstance(libs, list) or not libs:
        raise BadInput(f"{p}: no [[library]] tables; each needs name, corpus and index")
    if len(libs) > MAX_LIBRARIES:
        raise BadInput(f"{p}: {len(libs)} libraries; at most {MAX_LIBRARIES}")
    base = p.resolve().parent
    out: list[LibraryConfig] = []
    seen_names: set[str] = set()
    seen_index: set[Path] = set()
    for i, t in enumerate(libs, 1):
        if not isinstance(t, dict):
            raise BadInput(f"{p}: library {i} is not a table")
        name = t.get("name")
        if not isinstance(name, str) or not name.strip() or "/" in name or len(name) > 80:
            raise BadInput(f"{p}: library {i} needs a name (text without '/', at most 80 characters)")
        name = name.strip()
        if name in seen_names:
            raise BadInput(f"{p}: two libraries are named {name!r}")
        if not isinstance(t.get("index"), str) or not t["index"].strip():
            raise BadInput(f"{p}: library {name!r} needs index = \"FOLDER\"")
        index = (base / t["index"]).resolve()
        if index in seen_index:
            raise BadInput(f"{p}: libraries share the index folder {index}")
        corpus = t.get("corpus")
        if corpus is not None and (not isinstance(corpus, str) or not corpus.strip()):
            raise BadInput(f"{p}: library {name!r}: corpus must be a folder name")
        options = {k: v for k, v in t.items() if k not in _RESERVED}
        unknown = [k for k in options if k not in _build_options()]
        if unknown:
            raise BadInput(f"{p}: library {name!r}: unknown option(s) {', '.join(map(repr, unknown))}; "
                           f"known: {', '.join(sorted(_build_options()))}")
        seen_names.add(name)
        seen_index.add(index)
        out.append(LibraryConfig(name, (base / corpus).resolve() if corpus else None, index, options))
    token = data.get("api_token", "")
    if not isinstance(token, str):
        raise BadInput(f"{p}: api_token must be text")
    protect = data.get("api_protect_reads", False)
    if not isinstance(protect, bool):
        raise BadInput(f"{p}: api_protect_reads must be true or false")
    return AppConfig(out, token.strip(), protect, p)


def _build_options() -> set[str]:
    """Keyword options rag.index.build takes (whatever backends it grows: passed through)."""
    from rag import index
    from rag.index import builder

    skip = {"corpus", "index_dir", "progress", "log", "rebuild", "settings"}
    return {n for fn in (index.build, builder.build) for n, prm in inspect.signature(fn).parameters.items()
            if n not in skip and prm.kind in (prm.KEYWORD_ONLY, prm.POSITIONAL_OR_KEYWORD)}


# ------------------------------------------------------------------ results with library

class LibraryResult:
    """A ranked passage of a named library; its dict adds `library` and `reference`."""

    __slots__ = ("result", "library")

    def __init__(self, result: Result, library: "Library") -> None:
        self.result, self.library = result, library

    def __getattr__(self, name):
        return getattr(self.result, name)

    def to_dict(self) -> dict:
        d = self.result.to_dict()
        return self.library.annotate(d)


@dataclass
class Library:
    """One named library: its config, the index the app serves, the service that manages its
    corpus, and its references."""
    config: LibraryConfig
    live: LiveIndex
    service: object                   # rag.web.service.Service of this library
    referencer: Referencer

    @property
    def name(self) -> str:
        return self.config.name

    def snapshot(self) -> Snapshot:
        return self.live.get()

    def embedder(self) -> str:
        e = self.snapshot().manifest.get("embedder", {})
        return str(e.get("id") or e.get("spec") or "")

    def annotate(self, d: dict, index=None) -> dict:
        """Add `library` and `reference` to a result or cite-match dict (in place; returned)."""
        d["library"] = self.name
        try:
            d["reference"] = self.referencer.reference(d, index if index is not None
                                                       else self.snapshot().index)
        except RagError:
            d["reference"] = self.referencer.reference(d, None)
        return d


# ------------------------------------------------------------------ one ranking

def _bm25_stats(sparse, terms: Iterable[str]) -> tuple[int, dict[str, float]]:
    """(chunk count, document frequency of each known term) of one library's BM25 leg,
    from its Lucene idf = ln(1 + (N - df + 0.5) / (df + 0.5))."""
    n = int(sparse.ntotal)
    out = {}
    for t, idf in sparse.idf(list(dict.fromkeys(terms))).items():
        r = float(np.expm1(idf))
        out[t] = max(0.0, (n + 0.5 - 0.5 * r) / (1.0 + r))
    return n, out


def _idf(n: float, df: float) -> float:
    return float(np.log(1 + (n - df + 0.5) / (df + 0.5)))


class MultiSearcher:
    """Searches several libraries as one ranking (see the module docstring). Duck-types the
    part of rag.search.Searcher that the batch loop uses: `embed` and `search_many`."""

    MODES = ("interleave", "union", "naive")

    def __init__(self, libraries: Sequence[Library], mode: str = "interleave") -> None:
        if not libraries:
            raise BadInput("no library to search")
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}")
        self.libraries = list(libraries)
        self.mode = mode
        self.snaps = {lib.name: lib.snapshot() for lib in self.libraries}
        kinds = {}
        for lib in self.libraries:
            e = self.snaps[lib.name].manifest.get("embedder", {})
            kinds.setdefault(str(e.get("id") or e.get("spec")), []).append(lib.name)
        if len(kinds) > 1:
            raise LibrariesIncompatible("libraries built with different embedders cannot be searched together: "
                                + "; ".join(f"{', '.join(names)}: {k}" for k, names in kinds.items())
                                + ". Search them one at a time, or rebuild them with one embedder")

    @property
    def generations(self) -> dict[str, str]:
        return {name: s.generation for name, s in self.snaps.items()}

    def embed(self, queries: Sequence[str]) -> np.ndarray:
        return self.snaps[self.libraries[0].name].searcher.embed(queries)

    def search(self, query: str, k: int = 10, source: str | None = None,
               article: str | None = None) -> list[LibraryResult]:
        return self.search_many([query], k, source, article)[0]

    def search_many(self, queries: Sequence[str], k: int = 10, source: str | None = None,
                    article: str | None = None, vectors: np.ndarray | None = None) -> list[list[LibraryResult]]:
        k = check_k(k)
        if len(self.libraries) == 1:                 # exactly the library's own ranking
            lib = self.libraries[0]
            found = self.snaps[lib.name].searcher.search_many(queries, k, source, article, vectors)
            return [[LibraryResult(r, lib) for r in res] for res in found]
        qs = [clean_query(q) for q in queries]
        if not qs:
            return []
        qvecs = self.embed(qs) if vectors is None else vectors
        legs = []
        for lib in self.libraries:
            s = self.snaps[lib.name]
            allowed = None
            if source or article:
                allowed = np.asarray(s.index.store.positions_where(source, article), dtype=np.int64)
            top = None
            if allowed is None and s.searcher.n:
                with s.searcher._lock:
                    top = s.index.dense.search(qvecs, min(s.searcher.fusion.candidates, s.searcher.n))
            legs.append((lib, s, allowed, top))
        return [self._rank(q, qvecs[i], legs, i, k) for i, q in enumerate(qs)]

    # ---- internals
    def _rank(self, query: str, qvec: np.ndarray, legs, i: int, k: int) -> list[LibraryResult]:
        parts = []
        for lib, s, allowed, top in legs:
            if not s.searcher.n:
                continue
            cand, dense, sparse, terms = s.searcher.leg_scores(query, qvec, None if top is None else top[i],
                                                               allowed)
            if len(cand):
                parts.append((lib, s, cand, dense, sparse, terms))
        if not parts:
            return []
        alpha = legs[0][1].searcher.fusion.alpha
        owner = np.concatenate([np.full(len(p[2]), j) for j, p in enumerate(parts)])
        pos = np.concatenate([p[2] for p in parts])
        dense = np.concatenate([p[3] for p in parts])
        sparse = np.concatenate([p[4] for p in parts])      # each library's own BM25
        one = self._union_bm25(query, parts) if self.mode != "naive" else parts
        u_sparse = np.concatenate([p[4] for p in one])       # BM25 with union-wide idf
        keep = np.arange(len(pos))
        if self.mode != "naive":
            # the pool one index of the union would fuse: its dense top-N and BM25 top-N
            # (each library's own top-N is among its candidates, so the union's is too)
            n_cand = legs[0][1].searcher.fusion.candidates
            top_d = np.argsort(-dense, kind="stable")[:n_cand]
            top_s = np.argsort(-u_sparse, kind="stable")[:n_cand]
            keep = np.unique(np.concatenate([top_d, top_s[u_sparse[top_s] > 0]]))
        u_fused = fuse(dense[keep], u_sparse[keep], alpha)
        if self.mode == "interleave":
            # each library's own order; a passage's value on the union's scale is at most
            # that of every passage its library ranks above it (a running minimum)
            lo_d, hi_d = float(dense[keep].min()), float(dense[keep].max())
            lo_s, hi_s = float(u_sparse[keep].min()), float(u_sparse[keep].max())
            u_all = alpha * np.clip((dense - lo_d) / ((hi_d - lo_d) or 1.0), 0, 1) \
                + (1 - alpha) * np.clip((u_sparse - lo_s) / ((hi_s - lo_s) or 1.0), 0, 1)
            fused, rank = np.empty(len(pos)), np.empty(len(pos))
            start = 0
            for p in parts:
                o = start + np.argsort(-fuse(p[3], p[4], alpha), kind="stable")
                fused[o] = np.minimum.accumulate(u_all[o])
                rank[o] = np.arange(len(o))
                start += len(o)
            order = np.lexsort((rank, -fused))       # ties keep the library's own order
        else:
            owner, pos, dense = owner[keep], pos[keep], dense[keep]
            sparse, fused = u_sparse[keep], u_fused
            order = np.argsort(-fused, kind="stable")
        idfs: dict[int, dict] = {}
        out: list[LibraryResult] = []
        taken: list[tuple[int, str, int, int]] = []
        fetched = 0
        while len(out) < k and fetched < len(order):
            top = order[fetched: fetched + k - len(out)]
            fetched += len(top)
            by_owner: dict[int, list[int]] = {}
            for j in top:
                by_owner.setdefault(int(owner[j]), []).append(int(j))
            chunks = {}
            for o, js in by_owner.items():
                for j, c in zip(js, parts[o][1].index.store.chunks(pos[js])):
                    chunks[j] = c
            for j in top:
                o, c = int(owner[j]), chunks[int(j)]
                if any(oo == o and s == c.source and c.start < e and b < c.end for oo, s, b, e in taken):
                    continue
                taken.append((o, c.source, c.start, c.end))
                lib, s, _cand, _d, _s, terms = parts[o]
                if o not in idfs:
                    idfs[o] = s.index.sparse.idf(terms) if terms else {}
                r = s.searcher._result(len(out) + 1, float(fused[j]), c, terms, idfs[o],
                                       float(dense[j]), float(sparse[j]))
                out.append(LibraryResult(r, lib))
        return out

    def _union_bm25(self, query: str, parts: list) -> list:
        """Each library's BM25 scores of its candidates with union-wide idf (module docstring)."""
        english = is_english(query)
        groups = translate(query) if english else []
        vocab: list[list[str]] = []          # per part: every term whose weight is needed
        for lib, s, cand, dense, sparse, terms in parts:
            words = list(s.index.tokenizer.query_terms(query))
            for g in groups:
                words += [t for sense in g for t in s.index.tokenizer(sense)]
            vocab.append(words)
        all_terms = list(dict.fromkeys(t for v in vocab for t in v))
        # the union's statistics: every library searched counts, even one without candidates
        total_n, total_df = 0, {}
        for lib in self.libraries:
            sp = self.snaps[lib.name].index.sparse
            n, df = _bm25_stats(sp, all_terms)
            total_n += n
            for t, d in df.items():
                total_df[t] = total_df.get(t, 0.0) + d
        out = []
        for lib, s, cand, dense, sparse, terms in parts:
            sp = s.index.sparse
            n, df = _bm25_stats(sp, all_terms)
            weight = {t: _idf(total_n, total_df[t]) / _idf(n, d) for t, d in df.items() if _idf(n, d) > 0}
            with s.searcher._lock:
                per_term = {t: sp.scores([t])[cand] for t in weight}
                score = np.zeros(len(cand), dtype=np.float64)
                for t in s.index.tokenizer.query_terms(query):
                    if t in weight:
                        score += weight[t] * per_term[t]
                for g in groups:
                    toks = list(dict.fromkeys(t for sense in g for t in s.index.tokenizer(sense) if sp.knows(t)))
                    toks = [t for t in toks if t in weight]
                    if toks:
                        score += np.max([weight[t] * per_term[t] for t in toks], axis=0)
            out.append((lib, s, cand, dense, score.astype(np.float32), terms))
        return out


# ------------------------------------------------------------------ the set

class LibrarySet:
    """Every library of the app, by name, in config order."""

    def __init__(self, libraries: Sequence[Library], api_token: str = "") -> None:
        self.libraries = {lib.name: lib for lib in libraries}
        self.api_token = api_token

    def names(self) -> list[str]:
        return list(self.libraries)

    def get(self, name: str) -> Library:
        lib = self.libraries.get(name)
        if lib is None:
            raise UnknownLibrary(f"no library named {name!r}; libraries: {', '.join(self.libraries)}")
        return lib

    def pick(self, names: object = None) -> list[Library]:
        """The libraries named (one name, a list, or none/empty for all)."""
        if names is None or names == "" or names == []:
            return list(self.libraries.values())
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
            raise BadInput("library must be a name or a list of names")
        return [self.get(n) for n in dict.fromkeys(n for n in names if n)] or list(self.libraries.values())

    def groups(self) -> list[list[str]]:
        """Library names grouped by embedder: only libraries of one group can be searched together."""
        out: dict[str, list[str]] = {}
        for lib in self.libraries.values():
            try:
                key = lib.embedder()
            except RagError:
                key = "?"
            out.setdefault(key, []).append(lib.name)
        return list(out.values())

    def searcher(self, names: object = None) -> MultiSearcher:
        return MultiSearcher(self.pick(names))

    def search(self, query: object, k: object = 5, names: object = None, source: str | None = None,
               article: str | None = None, client: str = "") -> tuple[str, list[dict], MultiSearcher, float]:
        q = clean_query(query)
        k = check_k(k)
        ms = self.searcher(names)
        with self._turn(client, q, k):
            t0 = time.perf_counter()
            res = ms.search(q, k, source or None, article or None)
            return q, [r.to_dict() for r in res], ms, (time.perf_counter() - t0) * 1000

    def _turn(self, client: str, text: str, k: int):
        """The first library's fair queue (rag.web.fairness), shared by every library."""
        import contextlib

        first = next(iter(self.libraries.values()))
        fair = getattr(first.service, "fair", None)
        if fair is None:
            return contextlib.nullcontext()
        from rag.web.fairness import estimate

        return fair.turn(client, estimate(text, k))

    def contexts(self, results: list[dict]) -> dict[str, tuple[list[dict], list[dict]]]:
        """The chunks around each result, from its own library (for "show context")."""
        out = {}
        for r in results:
            store = self.get(r["library"]).snapshot().index.store
            around = store.neighbours(r["source"], r["start"], r["end"], before=1, after=1)
            out[r["id"]] = ([c.to_dict() for c in around if c.start < r["start"]],
                            [c.to_dict() for c in around if c.start >= r["end"]])
        return out

    def ris(self, records: Iterable[dict]) -> str:
        """RIS of every result of `rag batch`-style records (one record per question)."""
        from rag.references import ris_record

        out = []
        for rec in records:
            for r in rec.get("results") or []:
                lib = self.libraries.get(r.get("library", ""))
                if lib is None:
                    continue
                w = lib.referencer.work(r, lib.snapshot().index)
                out.append(ris_record(w, location_text(r), (r.get("best_sentence") or {}).get("text", "")))
        return "\n".join(out)

    def cite(self, quote: object, k: object = 3, client: str = "") -> tuple[dict, float]:
        """Citation lookup in every library: matches best first (by similarity), each naming its
        library and reference; related passages of every library, best first."""
        from rag.cite import check_quote

        k = check_k(k)
        check_quote(quote)                      # one error for a bad quote, whatever the library
        t0 = time.perf_counter()
        matches: list[dict] = []
        related: list[dict] = []
        q = None
        served = 0
        for lib in self.libraries.values():
            snap = lib.snapshot()
            if snap.citer is None:
                continue
            served += 1
            with self._turn(client, quote, k):
                res = snap.citer.lookup(quote, k=k).to_dict()
            q = res["quote"]
            matches += [lib.annotate(m, snap.index) for m in res["matches"]]
            related += [lib.annotate(r, snap.index) for r in res.get("related") or []]
        if not served:
            raise RagError("引文溯源暂不可用 citation lookup unavailable")
        matches.sort(key=lambda m: -float(m.get("similarity") or 0))
        related.sort(key=lambda r: -float(r.get("score") or 0))
        return {"quote": q, "matches": matches, "related": related[:k]}, (time.perf_counter() - t0) * 1000

    def generations(self) -> dict[str, str]:
        out = {}
        for name, lib in self.libraries.items():
            try:
                out[name] = lib.snapshot().generation
            except RagError:
                out[name] = ""
        return out


def copy_text(d: dict) -> str:
    """What a result's copy button copies: the reference, then the exact location."""
    ref = d.get("reference") or ""
    return f"{ref} {location_text(d)}".strip()


def libraries_for(config: AppConfig | None, first_service, workdir: Path, log: Callable[[str], None],
                  prepare: Callable[[LibraryConfig], None]) -> LibrarySet:
    """The app's libraries. The first is the one the app already serves (`first_service`,
    built from the config's first library, or from --index/--corpus without a config: one
    library named after its corpus folder); every other library of the config is brought up
    to date (`prepare`), loaded and given a Service of its own."""
    from rag.web.service import Service

    svc = first_service
    if config is None:
        name = (svc.corpus.name if svc.corpus else Path(svc.index_dir).name) or "default"
        cfgs = [LibraryConfig(name, svc.corpus, Path(svc.index_dir))]
    else:
        cfgs = config.libraries
    libs = [Library(cfgs[0], svc.live, svc, Referencer(cfgs[0].corpus, warn=log))]
    for i, cfg in enumerate(cfgs[1:], 1):
        prepare(cfg)
        live = LiveIndex(cfg.index, log=log)
        snap = live.get()
        log(f"文库 {cfg.name}: {snap.generation}, {snap.index.size} chunks")
        corpus = cfg.corpus if cfg.corpus and cfg.corpus.is_dir() else None
        sub = workdir / f"library-{i}"
        sub.mkdir(parents=True, exist_ok=True)
        other = Service(live, cfg.index, corpus, sub)
        other.build_options = dict(cfg.options)
        if hasattr(svc, "temp"):
            other.temp = svc.temp
        libs.append(Library(cfg, live, other, Referencer(cfg.corpus, warn=log)))
    svc.build_options = dict(cfgs[0].options)
    return LibrarySet(libs, config.api_token if config else "")
