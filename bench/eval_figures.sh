#!/usr/bin/env bash
# The retrieval and citation figures on ../shared/eval (seed dev questions, seed cite cases,
# CMRC trial questions) for a code base and two built indexes, scored by the shared scorers.
#
#   bench/eval_figures.sh REPO_DIR SEEDS_INDEX CMRC_INDEX [PYTHON] [OUT_DIR]
#
#   REPO_DIR     the checkout whose `rag` package is measured; used as PYTHONPATH and as cwd
#   SEEDS_INDEX  index built with `rag build --corpus seeds --index SEEDS_INDEX`
#   CMRC_INDEX   index built with `rag build --corpus ../shared/eval/cmrc/corpus --index CMRC_INDEX`
#   PYTHON       interpreter (default: $PYTHON, else REPO_DIR/.venv/bin/python)
#   OUT_DIR      where results and figures.json go (default: $OUT_DIR, else ./measure-<timestamp>)
#
# Env overrides: EVAL_DIR (default REPO_DIR/../shared/eval), SEEDS_CORPUS (default REPO_DIR/seeds).
# Writes OUT_DIR/{seed_results,cite_results,cmrc_results}.jsonl, the scorers' output
# (*_score.txt) and OUT_DIR/figures.json. Fails (non-zero) if any step fails or if `rag`
# does not resolve to REPO_DIR/rag.
set -euo pipefail

if [ $# -lt 3 ]; then
    sed -n '2,16p' "$0" >&2
    exit 2
fi
REPO=$(cd "$1" && pwd)
SEEDS_IDX=$(realpath -m "$2")
CMRC_IDX=$(realpath -m "$3")
PY=${4:-${PYTHON:-$REPO/.venv/bin/python}}
OUT=$(realpath -m "${5:-${OUT_DIR:-./measure-$(date +%Y%m%d-%H%M%S)}}")
E=${EVAL_DIR:-$REPO/../shared/eval}
SEEDS_CORPUS=$(realpath -m "${SEEDS_CORPUS:-$REPO/seeds}")
mkdir -p "$OUT"

export PYTHONPATH="$REPO" OMP_WAIT_POLICY=PASSIVE
cd "$REPO"

resolved=$("$PY" -c 'import os, rag; print(os.path.dirname(os.path.realpath(rag.__file__)))')
if [ "$resolved" != "$(realpath "$REPO/rag")" ]; then
    echo "measure.sh: rag resolves to $resolved, not $REPO/rag" >&2
    exit 1
fi
echo "rag from $resolved; python $PY; out $OUT" >&2
commit=$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)
dirty=$(git -C "$REPO" status --porcelain 2>/dev/null | grep -c . || true)

run() { echo "+ $*" >&2; "$@"; }

# 3. seed questions: batch + score.py
run "$PY" -m rag batch "$E/seed_questions_dev.jsonl" -o "$OUT/seed_results.jsonl" -k 10 --index "$SEEDS_IDX"
run "$PY" "$E/score.py" --queries "$E/seed_questions_dev.jsonl" --results "$OUT/seed_results.jsonl" \
    --corpus "$SEEDS_CORPUS" --json > "$OUT/seed_score.txt"
cat "$OUT/seed_score.txt" >&2

# 4. seed citation cases: cite --input + score_cite.py
run "$PY" -m rag cite --input "$E/seed_cite_dev.jsonl" -o "$OUT/cite_results.jsonl" --index "$SEEDS_IDX"
run "$PY" "$E/score_cite.py" --cases "$E/seed_cite_dev.jsonl" --results "$OUT/cite_results.jsonl" \
    --corpus "$SEEDS_CORPUS" --json > "$OUT/cite_score.txt"
cat "$OUT/cite_score.txt" >&2

# 5. CMRC trial: batch + score.py
t0=$(date +%s.%N)
run "$PY" -m rag batch "$E/cmrc/queries_trial.jsonl" -o "$OUT/cmrc_results.jsonl" -k 10 --index "$CMRC_IDX"
t1=$(date +%s.%N)
run "$PY" "$E/score.py" --queries "$E/cmrc/queries_trial.jsonl" --results "$OUT/cmrc_results.jsonl" \
    --corpus "$E/cmrc/corpus" --json > "$OUT/cmrc_score.txt"
cat "$OUT/cmrc_score.txt" >&2

# figures.json: the last stdout line of each scorer is its JSON object
"$PY" - "$OUT" "$REPO" "$commit" "$dirty" "$SEEDS_IDX" "$CMRC_IDX" "$(echo "$t1 - $t0" | bc)" <<'EOF'
import json, sys, os
out, repo, commit, dirty, sidx, cidx, cmrc_s = sys.argv[1:]
def last(name):
    lines = [l for l in open(os.path.join(out, name), encoding="utf-8") if l.strip()]
    return json.loads(lines[-1])
seed, cite, cmrc = last("seed_score.txt"), last("cite_score.txt"), last("cmrc_score.txt")
r4 = lambda x: round(x, 4)
fig = {
    "repo": repo, "commit": commit, "uncommitted_changes": int(dirty),
    "seeds_index": sidx, "cmrc_index": cidx,
    "seeds_dev": {"n": seed["n"], "missing": seed["missing"],
                  "R@1": r4(seed["recall@1"]), "R@5": r4(seed["recall@5"]),
                  "R@10": r4(seed["recall@10"]), "MRR@10": r4(seed["mrr@10"]),
                  "by_type": {t: {"n": v["n"], "R@1": r4(v["recall@1"]), "R@5": r4(v["recall@5"]),
                                  "R@10": r4(v["recall@10"]), "MRR@10": r4(v["mrr@10"])}
                              for t, v in seed.get("by_type", {}).items()},
                  "warnings": seed.get("warnings", {})},
    "seed_cite_dev": {"n": cite["n"], "missing": cite["missing"],
                      "located@1": cite["located@1"], "tight@1": cite["tight@1"]},
    "cmrc_trial": {"n": cmrc["n"], "missing": cmrc["missing"],
                   "R@1": r4(cmrc["recall@1"]), "R@5": r4(cmrc["recall@5"]),
                   "R@10": r4(cmrc["recall@10"]), "MRR@10": r4(cmrc["mrr@10"]),
                   "batch_wall_s": round(float(cmrc_s), 1),
                   "warnings": cmrc.get("warnings", {})},
}
with open(os.path.join(out, "figures.json"), "w", encoding="utf-8") as f:
    json.dump(fig, f, ensure_ascii=False, indent=2)
    f.write("\n")
print(json.dumps({k: fig[k] for k in ("seeds_dev", "seed_cite_dev", "cmrc_trial")}
                 | {"seeds_dev": {k: v for k, v in fig["seeds_dev"].items() if k != "by_type"}},
                 ensure_ascii=False, indent=1))
EOF
