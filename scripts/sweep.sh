#!/usr/bin/env bash
# How many SFT rows a family needs: SFT SmolLM2-135M on N scripted-expert episodes of one family, for each N in SIZES,
# and evaluate the base model and each checkpoint on the same TEST held-out tasks of that family (greedy). The proof
# (scripts/proof.sh) trains on several families at once; this measures, family by family, what size of run reaches a
# given held-out gain, so the proof's sizes are chosen from measurements.
#
#   scripts/sweep.sh                                       # FAMILIES=weather,search SIZES="8 16 32" TEST=16
#   FAMILIES=files SIZES="16 48" EPOCHS=2 scripts/sweep.sh
#   MCPGYM_TOOL_DESCRIPTIONS=short scripts/sweep.sh        # the same with first-sentence tool descriptions
#   RESUME=1 scripts/sweep.sh                              # keep SWEEP_DIR: skip trained sizes and done evaluations
#
# Writes $SWEEP_DIR/sweep.md (one row per family and size: rows, SFT wall time, held-out success before and after)
# and keeps every episode in $SWEEP_DIR/sweep.db.
set -euo pipefail
main() {
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$HERE/.."
MCPGYM="${MCPGYM:-$ROOT/.venv/bin/mcpgym}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
SWEEP_DIR="${SWEEP_DIR:-$HOME/.cache/mcpgym/sweep}"
FAMILIES="${FAMILIES:-weather,search}"
SIZES="${SIZES:-8 16 32}"
TEST="${TEST:-16}"
EPOCHS="${EPOCHS:-1}"
LR="${LR:-2e-4}"
MAX_TURNS="${MAX_TURNS:-5}"
MAX_NEW_TOKENS="${MAX_NEW_TOKENS:-192}"
SEED="${SEED:-0}"
for n in $SIZES; do
  case "$n" in ''|*[!0-9]*) echo "SIZES must be positive integers separated by spaces, not '$SIZES'" >&2; exit 2;; esac
done
export MCPGYM_STEP_TIMEOUT_S="${MCPGYM_STEP_TIMEOUT_S:-3600}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
RESUME="${RESUME:-0}"
case "$RESUME" in 0) rm -rf "$SWEEP_DIR";; 1) ;; *) echo "RESUME must be 0 or 1, not '$RESUME'" >&2; exit 2;; esac
mkdir -p "$SWEEP_DIR"
DB="$SWEEP_DIR/sweep.db"
[ -f "$SWEEP_DIR/runs.tsv" ] || printf 'family\tsize\trows\tsft_s\tcheckpoint\n' > "$SWEEP_DIR/runs.tsv"
evaluate() {  # evaluate NAME MODEL FAMILY: one model on the family's TEST held-out tasks -> eval-NAME.json
  [ "$RESUME" = 1 ] && [ -s "$SWEEP_DIR/eval-$1.json" ] && return 0
  echo "[$(date -u +%H:%M:%S)] $3: evaluate $2 on $TEST test tasks"
  "$MCPGYM" eval --model "$2" --tasks "$3" --split test --limit "$TEST" --samples 1 --max-turns "$MAX_TURNS" \
    --max-new-tokens "$MAX_NEW_TOKENS" --temperature 0 --seed "$SEED" --db "$DB" --json > "$SWEEP_DIR/eval-$1.tmp"
  mv "$SWEEP_DIR/eval-$1.tmp" "$SWEEP_DIR/eval-$1.json"
}
for fam in ${FAMILIES//,/ }; do
  evaluate "$fam-base" smollm2-135m "$fam"
  for n in $SIZES; do
    ckpt="$SWEEP_DIR/ckpt-$fam-$n"
    if [ "$RESUME" = 1 ] && [ -f "$ckpt/mcpgym-train.json" ] && grep -q "^$fam	$n	" "$SWEEP_DIR/runs.tsv"; then
      echo "[$(date -u +%H:%M:%S)] $fam: $n rows already trained ($ckpt)"
    else
      echo "[$(date -u +%H:%M:%S)] $fam: $n scripted episodes, SFT"
      "$MCPGYM" collect --tasks "$fam" --policy scripted --split train --limit "$n" --seed "$SEED" --db "$DB" \
        --run "expert-$fam-$n" --concurrency 8 --quiet --resume
      "$MCPGYM" dataset sft --db "$DB" --runs "expert-$fam-$n" --out "$SWEEP_DIR/sft-$fam-$n" --eval-fraction 0 \
        --seed "$SEED" --max-tokens 5120 >/dev/null
      rows=$(wc -l < "$SWEEP_DIR/sft-$fam-$n/train.jsonl")
      t0=$(date +%s)
      "$MCPGYM" train sft --data "$SWEEP_DIR/sft-$fam-$n" --model smollm2-135m --out "$ckpt" --profile cpu \
        --epochs "$EPOCHS" --batch-size 1 --lr "$LR" --max-length 5120 --seed "$SEED" --no-gradient-checkpointing \
        >/dev/null 2>&1
      printf '%s\t%s\t%s\t%s\t%s\n' "$fam" "$n" "$rows" $(( $(date +%s) - t0 )) "$ckpt" >> "$SWEEP_DIR/runs.tsv"
    fi
    evaluate "$fam-$n" "$ckpt" "$fam"
  done
done
"$PYTHON" - "$SWEEP_DIR" "$FAMILIES" "$SIZES" "$TEST" "$EPOCHS" "$LR" "$MAX_TURNS" "$MAX_NEW_TOKENS" <<'PY' | tee "$SWEEP_DIR/sweep.md"
import csv, json, os, sys
from datetime import UTC, datetime
from pathlib import Path

out, families, sizes = Path(sys.argv[1]), sys.argv[2].split(","), sys.argv[3]
test, epochs, lr, turns, new_tokens = sys.argv[4:]
runs = list(csv.DictReader(open(out / "runs.tsv"), delimiter="\t"))
print(f"# SFT size sweep, {datetime.now(UTC):%Y-%m-%d}\n")
desc = os.environ.get("MCPGYM_TOOL_DESCRIPTIONS")
prefix = f"MCPGYM_TOOL_DESCRIPTIONS={desc} " if desc else ""
print(f"Command: `{prefix}FAMILIES={sys.argv[2]} SIZES=\"{sizes}\" TEST={test} EPOCHS={epochs} LR={lr} MAX_TURNS={turns} "
      f"MAX_NEW_TOKENS={new_tokens} scripts/sweep.sh`\n")
print("| family | SFT rows | SFT wall time | held-out success | change vs base | episodes with a call |")
print("| --- | --- | --- | --- | --- | --- |")
for fam in families:
    def cell(name):
        r = json.load(open(out / f"eval-{name}.json"))[0]
        f = r["families"].get(fam, {"passed": 0, "episodes": 0})
        return int(f["passed"]), int(f["episodes"]), r["episodes_with_calls"]
    base_passed, base_n, base_calls = cell(f"{fam}-base")
    print(f"| {fam} | 0 (base) | - | {base_passed}/{base_n} | - | {base_calls}/{base_n} |")
    done = {}
    for run in runs:  # a resumed sweep may list a size twice: the last training counts
        if run["family"] == fam:
            done[run["size"]] = run
    for size in sizes.split():
        run = done.get(size)
        if run is None or not (out / f"eval-{fam}-{size}.json").exists():
            continue
        passed, n, calls = cell(f"{fam}-{size}")
        change = 100 * (passed / n - base_passed / base_n) if n and base_n else 0.0
        sft_s = int(run["sft_s"])
        print(f"| {fam} | {run['rows']} | {sft_s // 60} min {sft_s % 60} s | {passed}/{n} | {change:+.0f} points "
              f"| {calls}/{n} |")
PY
}
main "$@"
exit
