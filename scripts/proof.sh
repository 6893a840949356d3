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
# The whole script is one function, read before it runs: an edit of this file during a run cannot change the run.
stamp() { date -u +%H:%M:%S; }
main() {

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$HERE/.."
MCPGYM="${MCPGYM:-$ROOT/.venv/bin/mcpgym}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
# The variables below, as given on the command line (the report shows the command).
VARS="PROOF_DIR SUITES SCHEMA_SERVERS HELDOUT_SERVER EVAL_TOOL_SELECTION TRAIN_TASKS SCHEMA_TASKS MAX_TOKENS
  TEST_PER_FAMILY EPOCHS BATCH GRAD_ACCUM LR MAX_TURNS MAX_NEW_TOKENS GRPO_FAMILY GRPO_STEPS GRPO_PROMPTS
  GRPO_GENERATIONS GRPO_COMPLETION GRPO_TOOL_CALLS GRPO_LR GRPO_TEST_TASKS GRPO_TEMPERATURE EVAL_CONCURRENCY
  EVAL_DTYPE GRAD_CKPT PRECISION TOOL_DESCRIPTIONS SEED PROOF_STEPS"
COMMAND=""
for v in $VARS; do if [ -n "${!v+x}" ]; then COMMAND+="$v=${!v} "; fi; done
COMMAND+="scripts/proof.sh"

PROOF_DIR="${PROOF_DIR:-$HOME/.cache/mcpgym/proof}"
SUITES="${SUITES:-weather,search,files,code-repair,tool-selection}"  # the SFT families (scripted-expert episodes)
SCHEMA_SERVERS="${SCHEMA_SERVERS:-weather+search+files+exec+almanac}"  # schema tasks over these join the SFT mix
HELDOUT_SERVER="${HELDOUT_SERVER:-shop}"               # schema tasks over this server: the generalization test
EVAL_TOOL_SELECTION="${EVAL_TOOL_SELECTION:-0}"        # 1: also evaluate tool-selection when SUITES lacks it
TRAIN_TASKS="${TRAIN_TASKS:-75}"      # scripted-expert episodes of SUITES (round-robin: 15 per family of 5)
SCHEMA_TASKS="${SCHEMA_TASKS:-10}"    # scripted-expert schema episodes over SCHEMA_SERVERS
MAX_TOKENS="${MAX_TOKENS:-5120}"      # drop longer rows (code-repair rows are 2,300-2,800 tokens with their 4 tools)
TEST_PER_FAMILY="${TEST_PER_FAMILY:-16}"  # each 4 more add ~3 min on 2 idle cores (base and SFT, 6 families)
EPOCHS="${EPOCHS:-1}"
BATCH="${BATCH:-1}"
GRAD_ACCUM="${GRAD_ACCUM:-1}"
LR="${LR:-2e-4}"
MAX_TURNS="${MAX_TURNS:-5}"           # code-repair: read and run the tests, edit, run them again, answer
MAX_NEW_TOKENS="${MAX_NEW_TOKENS:-192}"  # an edit_file call carries the old and the new lines
GRPO_FAMILY="${GRPO_FAMILY:-weather}"
GRPO_STEPS="${GRPO_STEPS:-30}"        # optimizer steps, one prompt x GRPO_GENERATIONS rollouts each
GRPO_PROMPTS="${GRPO_PROMPTS:-$GRPO_STEPS}"  # train-split prompts of GRPO_FAMILY (cycled when fewer than steps)
GRPO_GENERATIONS="${GRPO_GENERATIONS:-4}"
GRPO_COMPLETION="${GRPO_COMPLETION:-512}"  # per rollout, tool results included: a forecast result alone is ~360 tokens
GRPO_TOOL_CALLS="${GRPO_TOOL_CALLS:-2}"  # a compare task calls twice
GRPO_LR="${GRPO_LR:-3e-5}"
GRPO_TEMPERATURE="${GRPO_TEMPERATURE:-1.0}"  # rollout sampling temperature
# held-out GRPO_FAMILY tasks the SFT and the GRPO checkpoints are both evaluated on after GRPO (16 tasks left a gain
# of one task unreadable; weather has 49 test tasks)
GRPO_TEST_TASKS="${GRPO_TEST_TASKS:-32}"
EVAL_CONCURRENCY="${EVAL_CONCURRENCY:-16}"  # episodes in flight in the evaluations (16: 12% faster than 8)
# the evaluations' weights and key/value cache: auto is bfloat16 on a CPU with AMX (1.6x faster than float32, the same
# successes in benchmarks/bench_prefix_cache.py), else float32; checkpoint|float32|bfloat16 force it
EVAL_DTYPE="${EVAL_DTYPE:-auto}"
GRAD_CKPT="${GRAD_CKPT:-0}"           # 1: recompute activations in the backward pass (SFT ~9-10 GB without, ~18% faster)
# auto: SFT under bf16 autocast (float32 weights) on a CPU with AMX (~1.35x faster), GRPO in float32; fp32|bf16 force it
PRECISION="${PRECISION:-auto}"
# what the model sees of tool descriptions, in collection, SFT rows, GRPO and evaluation alike: short (first sentence)
# or full. Short did not hurt and helped files in the size sweep (docs/training.md), and rows are 3-14% shorter.
TOOL_DESCRIPTIONS="${TOOL_DESCRIPTIONS:-short}"
SEED="${SEED:-0}"
PROOF_STEPS="${PROOF_STEPS:-all}"     # all | data

case "$GRAD_CKPT" in 0) CKPT_FLAG=--no-gradient-checkpointing;; 1) CKPT_FLAG=--gradient-checkpointing;;
  *) echo "GRAD_CKPT must be 0 or 1, not '$GRAD_CKPT'" >&2; exit 2;; esac
case "$PRECISION" in auto|fp32|bf16) ;; *) echo "PRECISION must be auto, fp32 or bf16, not '$PRECISION'" >&2; exit 2;; esac
case "$TOOL_DESCRIPTIONS" in short|full) ;; *) echo "TOOL_DESCRIPTIONS must be short or full, not '$TOOL_DESCRIPTIONS'" >&2
  exit 2;; esac
export MCPGYM_TOOL_DESCRIPTIONS="$TOOL_DESCRIPTIONS"
case "$EVAL_DTYPE" in auto|checkpoint|float32|bfloat16) ;; *)
  echo "EVAL_DTYPE must be auto, checkpoint, float32 or bfloat16, not '$EVAL_DTYPE'" >&2; exit 2;; esac
case "$PROOF_STEPS" in all|data) ;; *) echo "PROOF_STEPS must be all or data, not '$PROOF_STEPS'" >&2; exit 2;; esac
case "+$SCHEMA_SERVERS+" in *"+$HELDOUT_SERVER+"*)
  echo "SCHEMA_SERVERS ($SCHEMA_SERVERS) must not name HELDOUT_SERVER ($HELDOUT_SERVER): it is held out" >&2; exit 2;;
esac
# the servers each family's tasks offer: the held-out server must be in none of them (proof_report checks the rows too)
declare -A FAMILY_SERVERS=([weather]=weather [search]=search [files]=files [code]=exec [code-repair]="files exec"
  [test-writing]="files exec" [tool-selection]="weather almanac search files")
for fam in ${SUITES//,/ }; do
  case " ${FAMILY_SERVERS[$fam]:-} " in *" $HELDOUT_SERVER "*)
    echo "SUITES holds $fam, whose tasks offer the $HELDOUT_SERVER server: it cannot be HELDOUT_SERVER" >&2; exit 2;;
  esac
done
FAMILIES=$(( $(tr -cd ',' <<<"$SUITES" | wc -c) + 1 ))
EVAL_SUITES="$SUITES,schema:$HELDOUT_SERVER"
EVAL_FAMILIES=$(( FAMILIES + 1 ))
if [ "$EVAL_TOOL_SELECTION" = 1 ] && [[ ",$SUITES," != *,tool-selection,* ]]; then EVAL_SUITES+=",tool-selection"; EVAL_FAMILIES=$(( EVAL_FAMILIES + 1 )); fi
TEST_TASKS=$(( TEST_PER_FAMILY * EVAL_FAMILIES ))  # held-out tasks per model, round-robin over EVAL_SUITES

DB="$PROOF_DIR/proof.db"
# A batched generation over several ~1,500-token prompts can take minutes on a busy CPU: allow it.
export MCPGYM_STEP_TIMEOUT_S="${MCPGYM_STEP_TIMEOUT_S:-3600}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
rm -rf "$PROOF_DIR"
mkdir -p "$PROOF_DIR"
STAGE_NAME="" STAGE_T0=0
stage() {  # stage "name": close the running stage (its wall time goes to stages.tsv), open the next
  local now; now=$(date +%s)
  [ -n "$STAGE_NAME" ] && printf '%s\t%s\n' "$STAGE_NAME" $(( now - STAGE_T0 )) >> "$PROOF_DIR/stages.tsv"
  STAGE_NAME="$1" STAGE_T0=$now
}
{
  printf 'COMMAND\t%s\n' "$COMMAND"
  printf 'STARTED\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
  printf 'CPU\t%s\n' "$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)"
  printf 'CORES\t%s\n' "$(nproc)"
  printf 'LOAD_START\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
  for v in SUITES SCHEMA_SERVERS HELDOUT_SERVER EVAL_TOOL_SELECTION TRAIN_TASKS SCHEMA_TASKS MAX_TOKENS \
    TEST_PER_FAMILY EPOCHS BATCH GRAD_ACCUM LR MAX_TURNS MAX_NEW_TOKENS GRPO_FAMILY GRPO_STEPS GRPO_PROMPTS \
    GRPO_GENERATIONS GRPO_COMPLETION GRPO_TOOL_CALLS GRPO_LR GRPO_TEST_TASKS GRPO_TEMPERATURE EVAL_CONCURRENCY \
    EVAL_DTYPE GRAD_CKPT PRECISION TOOL_DESCRIPTIONS SEED; do printf '%s\t%s\n' "$v" "${!v}"; done
} > "$PROOF_DIR/settings.tsv"

stage collect
echo "[$(stamp)] 1/6 collect $TRAIN_TASKS scripted-expert episodes (train split of $SUITES)" \
  "and $SCHEMA_TASKS schema episodes over $SCHEMA_SERVERS"
"$MCPGYM" tasks --suite "$SUITES" --split train --limit "$TRAIN_TASKS" --seed "$SEED" > "$PROOF_DIR/proof.tasks.jsonl"
"$MCPGYM" tasks --suite "schema:$SCHEMA_SERVERS" --split train --limit "$SCHEMA_TASKS" --seed "$SEED" \
  >> "$PROOF_DIR/proof.tasks.jsonl"
"$MCPGYM" collect --tasks "$SUITES" --policy scripted --split train --limit "$TRAIN_TASKS" --seed "$SEED" \
  --db "$DB" --run expert --concurrency 8 --quiet
"$MCPGYM" collect --tasks "schema:$SCHEMA_SERVERS" --policy scripted --split train --limit "$SCHEMA_TASKS" \
  --seed "$SEED" --db "$DB" --run expert-schema --concurrency 8 --quiet
"$PYTHON" -m training.proof_report --dir "$PROOF_DIR" --check-heldout "$HELDOUT_SERVER" --run expert --run expert-schema

stage dataset
echo "[$(stamp)] 2/6 build the SFT dataset"
"$MCPGYM" dataset sft --db "$DB" --runs expert,expert-schema --out "$PROOF_DIR/sft" --eval-fraction 0 \
  --seed "$SEED" --max-tokens "$MAX_TOKENS"
"$MCPGYM" dataset sft --db "$DB" --runs expert,expert-schema --out "$PROOF_DIR/sft-all" --eval-fraction 0 \
  --seed "$SEED" --max-tokens 1000000 >/dev/null
"$PYTHON" - "$PROOF_DIR" "$MAX_TOKENS" "$SUITES,schema" <<'PY' | tee "$PROOF_DIR/lengths.md"
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
  stage ""
  echo "[$(stamp)] done (PROOF_STEPS=data): lengths in $PROOF_DIR/lengths.md, dataset in $PROOF_DIR/sft"
  exit 0
fi

stage sft
echo "[$(stamp)] 3/6 SFT SmolLM2-135M on the CPU ($EPOCHS epochs, batch $BATCH x $GRAD_ACCUM, lr $LR)"
"$MCPGYM" train sft --data "$PROOF_DIR/sft" --model smollm2-135m --out "$PROOF_DIR/ckpt" --profile cpu \
  --epochs "$EPOCHS" --batch-size "$BATCH" --grad-accum "$GRAD_ACCUM" --lr "$LR" --max-length "$MAX_TOKENS" \
  --seed "$SEED" "$CKPT_FLAG" --precision "$PRECISION"

stage eval-sft
echo "[$(stamp)] 4/6 evaluate base vs SFT on $TEST_TASKS test tasks ($TEST_PER_FAMILY per family of $EVAL_SUITES)"
"$MCPGYM" eval --model smollm2-135m --model "$PROOF_DIR/ckpt" --tasks "$EVAL_SUITES" --split test \
  --limit "$TEST_TASKS" --samples 1 --max-turns "$MAX_TURNS" --max-new-tokens "$MAX_NEW_TOKENS" \
  --temperature 0 --seed "$SEED" --concurrency "$EVAL_CONCURRENCY" --dtype "$EVAL_DTYPE" --db "$DB" \
  --json > "$PROOF_DIR/eval-sft.json"

stage grpo
echo "[$(stamp)] 5/6 GRPO from the SFT checkpoint on $GRPO_FAMILY ($GRPO_STEPS steps x $GRPO_GENERATIONS rollouts" \
  "of $GRPO_COMPLETION tokens, lr $GRPO_LR)"
"$MCPGYM" collect --tasks "$GRPO_FAMILY" --policy scripted --split train --limit "$GRPO_PROMPTS" --seed "$SEED" \
  --db "$DB" --run grpo-prompts --concurrency 8 --quiet
"$MCPGYM" dataset grpo --db "$DB" --runs grpo-prompts --out "$PROOF_DIR/grpo-data" --eval-fraction 0 --seed "$SEED"
"$MCPGYM" train grpo --data "$PROOF_DIR/grpo-data" --model "$PROOF_DIR/ckpt" --out "$PROOF_DIR/grpo" --profile cpu \
  --max-steps "$GRPO_STEPS" --batch-size "$GRPO_GENERATIONS" --num-generations "$GRPO_GENERATIONS" \
  --max-completion-length "$GRPO_COMPLETION" --max-tool-calls "$GRPO_TOOL_CALLS" --lr "$GRPO_LR" --seed "$SEED" "$CKPT_FLAG" \
  --temperature "$GRPO_TEMPERATURE" \
  --precision "$PRECISION"

stage eval-grpo
echo "[$(stamp)] 6/6 evaluate the SFT and the GRPO checkpoints on $GRPO_TEST_TASKS $GRPO_FAMILY test tasks"
"$MCPGYM" eval --model "$PROOF_DIR/ckpt" --model "$PROOF_DIR/grpo" --tasks "$GRPO_FAMILY" --split test \
  --limit "$GRPO_TEST_TASKS" --samples 1 --max-turns "$MAX_TURNS" --max-new-tokens "$MAX_NEW_TOKENS" --temperature 0 \
  --seed "$SEED" --concurrency "$EVAL_CONCURRENCY" --dtype "$EVAL_DTYPE" --db "$DB" --json > "$PROOF_DIR/eval-grpo.json"

stage ""
printf 'LOAD_END\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >> "$PROOF_DIR/settings.tsv"
"$PYTHON" -m training.proof_report --dir "$PROOF_DIR"
cat "$PROOF_DIR/proof.md"
echo "[$(stamp)] done: $PROOF_DIR/proof.md, $PROOF_DIR/proof.svg, episodes in $DB (mcpgym view --db $DB)"
}
main "$@"
exit
