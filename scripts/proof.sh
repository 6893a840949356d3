#!/usr/bin/env bash
# The CPU proof: collect scripted-expert episodes on the train split, SFT SmolLM2-135M on them,
# evaluate the base and the trained model on the test split. One command, outputs outside the repo.
#
#   scripts/proof.sh                      # defaults below (about 20-25 minutes on 2 idle CPU cores)
#   PROOF_DIR=/tmp/p TRAIN_TASKS=80 TEST_TASKS=24 EPOCHS=2 scripts/proof.sh
#
# Cost on a CPU is set by sequence length: the tool schemas in the prompt make rows 1,300-3,200 tokens long
# (~25 s per row for forward + backward on 2 cores), so the defaults are small and rows over MAX_TOKENS are left out.
set -euo pipefail

MCPGYM="${MCPGYM:-$(dirname "$0")/../.venv/bin/mcpgym}"
PROOF_DIR="${PROOF_DIR:-$HOME/.cache/mcpgym/proof}"
SUITES="${SUITES:-weather,files,search,code}"
TRAIN_TASKS="${TRAIN_TASKS:-32}"      # scripted-expert episodes on the train split (a mix of every suite)
MAX_TOKENS="${MAX_TOKENS:-2304}"      # drop longer rows (the files family's 13 tools make ~3,100-token rows)
TEST_TASKS="${TEST_TASKS:-8}"         # held-out test tasks per model
EPOCHS="${EPOCHS:-1}"
BATCH="${BATCH:-1}"
GRAD_ACCUM="${GRAD_ACCUM:-1}"
LR="${LR:-2e-4}"
MAX_TURNS="${MAX_TURNS:-3}"
MAX_NEW_TOKENS="${MAX_NEW_TOKENS:-128}"
SEED="${SEED:-0}"

DB="$PROOF_DIR/proof.db"
# A batched generation over several ~1,500-token prompts can take minutes on a busy CPU: allow it.
export MCPGYM_STEP_TIMEOUT_S="${MCPGYM_STEP_TIMEOUT_S:-3600}"
rm -rf "$PROOF_DIR"
mkdir -p "$PROOF_DIR"
stamp() { date -u +%H:%M:%S; }

echo "[$(stamp)] 1/4 collect $TRAIN_TASKS scripted-expert episodes (train split)"
"$MCPGYM" collect --tasks "$SUITES" --policy scripted --split train --limit "$TRAIN_TASKS" --seed "$SEED" \
  --db "$DB" --run expert --concurrency 8 --quiet

echo "[$(stamp)] 2/4 build the SFT dataset"
"$MCPGYM" dataset sft --db "$DB" --runs expert --out "$PROOF_DIR/sft" --eval-fraction 0 --seed "$SEED" \
  --max-tokens "$MAX_TOKENS"

echo "[$(stamp)] 3/4 SFT SmolLM2-135M on the CPU ($EPOCHS epochs, batch $BATCH x $GRAD_ACCUM, lr $LR)"
"$MCPGYM" train sft --data "$PROOF_DIR/sft" --model smollm2-135m --out "$PROOF_DIR/ckpt" --profile cpu \
  --epochs "$EPOCHS" --batch-size "$BATCH" --grad-accum "$GRAD_ACCUM" --lr "$LR" --max-length "$MAX_TOKENS" \
  --seed "$SEED"

echo "[$(stamp)] 4/4 evaluate base vs trained on $TEST_TASKS test tasks"
"$MCPGYM" eval --model smollm2-135m --model "$PROOF_DIR/ckpt" --tasks "$SUITES" --split test \
  --limit "$TEST_TASKS" --samples 1 --max-turns "$MAX_TURNS" --max-new-tokens "$MAX_NEW_TOKENS" \
  --temperature 0 --seed "$SEED" --db "$DB" | tee "$PROOF_DIR/table.md"
echo "[$(stamp)] done: table in $PROOF_DIR/table.md, episodes in $DB (mcpgym view --db $DB)"
