#!/usr/bin/env bash
# The CPU proof: collect scripted-expert episodes on the train split, SFT SmolLM2-135M on them,
# evaluate the base and the trained model on the test split. One command, outputs outside the repo.
#
#   scripts/proof.sh                                   # defaults below
#   SUITES=weather,search,files,code-repair TEST_PER_FAMILY=16 scripts/proof.sh
#   PROOF_DIR=/tmp/p TRAIN_TASKS=80 EPOCHS=2 scripts/proof.sh
#   PROOF_STEPS=data scripts/proof.sh                   # collection, dataset and sequence lengths only (minutes)
#
# SUITES takes any built-in families (weather, search, files, code, code-repair, test-writing, tool-selection);
# the evaluation runs TEST_PER_FAMILY held-out tasks of each. Cost on a CPU is set by sequence length, mostly the
# tool schemas in the prompt; weather, search, files, code-repair and test-writing offer a task only the tools it
# needs (docs/tasks.md, "Tools offered"), so their rows are 830-2,800 tokens (weather ~900, files ~1,100, search
# ~1,800, code-repair and test-writing ~2,400-2,500); rows over MAX_TOKENS are left out, lengths.md reports each
# family's lengths, and a family whose rows are all left out is named in a warning.
set -euo pipefail

HERE="$(dirname "$0")"
MCPGYM="${MCPGYM:-$HERE/../.venv/bin/mcpgym}"
PYTHON="${PYTHON:-$HERE/../.venv/bin/python}"
PROOF_DIR="${PROOF_DIR:-$HOME/.cache/mcpgym/proof}"
SUITES="${SUITES:-weather,search,files,code-repair}"
TRAIN_TASKS="${TRAIN_TASKS:-32}"      # scripted-expert episodes on the train split (a mix of every suite)
MAX_TOKENS="${MAX_TOKENS:-5120}"      # drop longer rows (code-repair rows are 2,300-2,800 tokens with their 4 tools)
TEST_PER_FAMILY="${TEST_PER_FAMILY:-16}"
FAMILIES=$(( $(tr -cd ',' <<<"$SUITES" | wc -c) + 1 ))
TEST_TASKS="${TEST_TASKS:-$(( TEST_PER_FAMILY * FAMILIES ))}"  # held-out tasks per model, round-robin over SUITES
EPOCHS="${EPOCHS:-1}"
BATCH="${BATCH:-1}"
GRAD_ACCUM="${GRAD_ACCUM:-1}"
LR="${LR:-2e-4}"
MAX_TURNS="${MAX_TURNS:-5}"           # code-repair: read and run the tests, edit, run them again, answer
MAX_NEW_TOKENS="${MAX_NEW_TOKENS:-192}"  # an edit_file call carries the old and the new lines
SEED="${SEED:-0}"
PROOF_STEPS="${PROOF_STEPS:-all}"     # all | data

DB="$PROOF_DIR/proof.db"
# A batched generation over several ~1,500-token prompts can take minutes on a busy CPU: allow it.
export MCPGYM_STEP_TIMEOUT_S="${MCPGYM_STEP_TIMEOUT_S:-3600}"
rm -rf "$PROOF_DIR"
mkdir -p "$PROOF_DIR"
stamp() { date -u +%H:%M:%S; }

echo "[$(stamp)] 1/4 collect $TRAIN_TASKS scripted-expert episodes (train split of $SUITES)"
"$MCPGYM" tasks --suite "$SUITES" --split train --limit "$TRAIN_TASKS" --seed "$SEED" > "$PROOF_DIR/proof.tasks.jsonl"
"$MCPGYM" collect --tasks "$SUITES" --policy scripted --split train --limit "$TRAIN_TASKS" --seed "$SEED" \
  --db "$DB" --run expert --concurrency 8 --quiet

echo "[$(stamp)] 2/4 build the SFT dataset"
"$MCPGYM" dataset sft --db "$DB" --runs expert --out "$PROOF_DIR/sft" --eval-fraction 0 --seed "$SEED" \
  --max-tokens "$MAX_TOKENS"
"$MCPGYM" dataset sft --db "$DB" --runs expert --out "$PROOF_DIR/sft-all" --eval-fraction 0 --seed "$SEED" \
  --max-tokens 1000000 >/dev/null
"$PYTHON" - "$PROOF_DIR" "$MAX_TOKENS" "$SUITES" <<'PY' | tee "$PROOF_DIR/lengths.md"
import json, statistics, sys
from pathlib import Path
from transformers import AutoTokenizer
from collector.models import resolve_model
from training.datasets.build import tokenizer_counter

out, limit, suites = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split(",")
count = tokenizer_counter(AutoTokenizer.from_pretrained(str(resolve_model(None))))
family = {}
with open(out / "proof.tasks.jsonl") as fh:
    for line in fh:
        task = json.loads(line)
        family[json.dumps(task["messages"][:2], sort_keys=True)] = task["family"]
lengths = {}
for line in open(out / "sft-all" / "train.jsonl"):
    row = json.loads(line)
    fam = family.get(json.dumps(row["messages"][:2], sort_keys=True), "?")
    lengths.setdefault(fam, []).append(count(row["messages"], row["tools"]))
print(f"| family | rows | tokens min | median | max | rows <= {limit} |")
print("| --- | --- | --- | --- | --- | --- |")
for fam, values in sorted(lengths.items()):
    kept = sum(v <= limit for v in values)
    print(f"| {fam} | {len(values)} | {min(values)} | {int(statistics.median(values))} | {max(values)} | {kept} |")
for fam in suites:
    if not any(v <= limit for v in lengths.get(fam, [])):
        print(f"\nWARNING: no {fam} row fits MAX_TOKENS={limit}: the SFT data has none of {fam}", file=sys.stderr)
PY
if [ "$PROOF_STEPS" = "data" ]; then
  echo "[$(stamp)] done (PROOF_STEPS=data): lengths in $PROOF_DIR/lengths.md, dataset in $PROOF_DIR/sft"
  exit 0
fi

echo "[$(stamp)] 3/4 SFT SmolLM2-135M on the CPU ($EPOCHS epochs, batch $BATCH x $GRAD_ACCUM, lr $LR)"
"$MCPGYM" train sft --data "$PROOF_DIR/sft" --model smollm2-135m --out "$PROOF_DIR/ckpt" --profile cpu \
  --epochs "$EPOCHS" --batch-size "$BATCH" --grad-accum "$GRAD_ACCUM" --lr "$LR" --max-length "$MAX_TOKENS" \
  --seed "$SEED"

echo "[$(stamp)] 4/4 evaluate base vs trained on $TEST_TASKS test tasks ($TEST_PER_FAMILY per family of $SUITES)"
"$MCPGYM" eval --model smollm2-135m --model "$PROOF_DIR/ckpt" --tasks "$SUITES" --split test \
  --limit "$TEST_TASKS" --samples 1 --max-turns "$MAX_TURNS" --max-new-tokens "$MAX_NEW_TOKENS" \
  --temperature 0 --seed "$SEED" --db "$DB" | tee "$PROOF_DIR/table.md"
echo "[$(stamp)] done: table in $PROOF_DIR/table.md, episodes in $DB (mcpgym view --db $DB)"
