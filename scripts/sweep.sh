#!/usr/bin/env bash
# How many SFT rows a family needs: SFT SmolLM2-135M on N scripted-expert episodes of one family, for each N in SIZES,
# and evaluate the base model and each checkpoint on the same TEST held-out tasks of that family (greedy). The proof
# (scripts/proof.sh) trains on several families at once; this measures, family by family, what size of run reaches a
# given held-out gain, so the proof's sizes are chosen from measurements.
#
#   scripts/sweep.sh                                       # FAMILIES=weather,search SIZES="8 16 32" TEST=16
#   FAMILIES=files SIZES="16 48" EPOCHS=2 scripts/sweep.sh
#   MCPGYM_TOOL_DESCRIPTIONS=short scripts/sweep.sh        # the same with first-sentence tool descriptions
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
rm -rf "$SWEEP_DIR"
mkdir -p "$SWEEP_DIR"
DB="$SWEEP_DIR/sweep.db"
printf 'family\tsize\trows\tsft_s\tcheckpoint\n' > "$SWEEP_DIR/runs.tsv"
for fam in ${FAMILIES//,/ }; do
  models=(--model smollm2-135m)
  for n in $SIZES; do
    echo "[$(date -u +%H:%M:%S)] $fam: $n scripted episodes, SFT"
    "$MCPGYM" collect --tasks "$fam" --policy scripted --split train --limit "$n" --seed "$SEED" --db "$DB" \
      --run "expert-$fam-$n" --concurrency 8 --quiet
    "$MCPGYM" dataset sft --db "$DB" --runs "expert-$fam-$n" --out "$SWEEP_DIR/sft-$fam-$n" --eval-fraction 0 \
      --seed "$SEED" --max-tokens 5120 >/dev/null
    rows=$(wc -l < "$SWEEP_DIR/sft-$fam-$n/train.jsonl")
    t0=$(date +%s)
    "$MCPGYM" train sft --data "$SWEEP_DIR/sft-$fam-$n" --model smollm2-135m --out "$SWEEP_DIR/ckpt-$fam-$n" \
      --profile cpu --epochs "$EPOCHS" --batch-size 1 --lr "$LR" --max-length 5120 --seed "$SEED" >/dev/null 2>&1
    printf '%s\t%s\t%s\t%s\t%s\n' "$fam" "$n" "$rows" $(( $(date +%s) - t0 )) "$SWEEP_DIR/ckpt-$fam-$n" \
      >> "$SWEEP_DIR/runs.tsv"
    models+=(--model "$SWEEP_DIR/ckpt-$fam-$n")
  done
  echo "[$(date -u +%H:%M:%S)] $fam: evaluate the base model and ${SIZES// /, }-row checkpoints on $TEST test tasks"
  "$MCPGYM" eval "${models[@]}" --tasks "$fam" --split test --limit "$TEST" --samples 1 --max-turns "$MAX_TURNS" \
    --max-new-tokens "$MAX_NEW_TOKENS" --temperature 0 --seed "$SEED" --db "$DB" --json > "$SWEEP_DIR/eval-$fam.json"
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
    results = json.load(open(out / f"eval-{fam}.json"))
    def cell(r):
        f = r["families"].get(fam, {"passed": 0, "episodes": 0})
        return int(f["passed"]), int(f["episodes"])
    base_passed, base_n = cell(results[0])
    print(f"| {fam} | 0 (base) | - | {base_passed}/{base_n} | - | {results[0]['episodes_with_calls']}/{base_n} |")
    fam_runs = [r for r in runs if r["family"] == fam]
    for run, result in zip(fam_runs, results[1:], strict=True):
        passed, n = cell(result)
        change = 100 * (passed / n - base_passed / base_n) if n and base_n else 0.0
        sft_s = int(run["sft_s"])
        print(f"| {fam} | {run['rows']} | {sft_s // 60} min {sft_s % 60} s | {passed}/{n} | {change:+.0f} points "
              f"| {result['episodes_with_calls']}/{n} |")
PY
}
main "$@"
exit
