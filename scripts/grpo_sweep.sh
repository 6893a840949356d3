#!/usr/bin/env bash
# What size of GRPO run changes held-out success: GRPO from a finished proof's SFT checkpoint with each setting in
# POINTS, keeping a checkpoint every `save` steps so that one long run gives a learning curve, then the SFT checkpoint
# and every GRPO checkpoint evaluated on the same TEST held-out tasks of FAMILY (greedy, as the proof's stage 6).
#
#   scripts/grpo_sweep.sh                     # PROOF_DIR=~/.cache/mcpgym/proof FAMILY=weather TEST=32
#                                             # POINTS="steps=60,save=15"
#   POINTS="steps=30,lr=1e-4 steps=15,gen=8" scripts/grpo_sweep.sh
#   RESUME=1 scripts/grpo_sweep.sh            # keep SWEEP_DIR: skip trained points and finished evaluations
#
# A point is key=value pairs joined by commas: steps, gen (rollouts per step, all of one prompt), lr, temp, save
# (0: the final checkpoint only), completion (tokens per rollout, tool results included), calls (tool-calling rounds).
# Unset keys take the proof's GRPO defaults (steps=30, gen=4, lr=3e-5, temp=1.0, completion=512, calls=2).
# Writes $SWEEP_DIR/grpo-sweep.md (training/grpo_sweep.py) and keeps every episode in $SWEEP_DIR/sweep.db.
set -euo pipefail
main() {
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$HERE/.."
MCPGYM="${MCPGYM:-$ROOT/.venv/bin/mcpgym}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
VARS="PROOF_DIR SWEEP_DIR FAMILY POINTS TEST PROMPTS MAX_TURNS MAX_NEW_TOKENS EVAL_CONCURRENCY EVAL_DTYPE PRECISION
  TOOL_DESCRIPTIONS SEED RESUME"
COMMAND=""
for v in $VARS; do
  if [ -n "${!v+x}" ]; then case "${!v}" in *" "*) COMMAND+="$v=\"${!v}\" ";; *) COMMAND+="$v=${!v} ";; esac; fi
done
COMMAND+="scripts/grpo_sweep.sh"
PROOF_DIR="${PROOF_DIR:-$HOME/.cache/mcpgym/proof}"
SWEEP_DIR="${SWEEP_DIR:-$HOME/.cache/mcpgym/grpo-sweep}"
FAMILY="${FAMILY:-weather}"
POINTS="${POINTS:-steps=60,save=15}"
TEST="${TEST:-32}"
MAX_TURNS="${MAX_TURNS:-5}"
MAX_NEW_TOKENS="${MAX_NEW_TOKENS:-192}"
EVAL_CONCURRENCY="${EVAL_CONCURRENCY:-16}"
EVAL_DTYPE="${EVAL_DTYPE:-auto}"
PRECISION="${PRECISION:-auto}"
TOOL_DESCRIPTIONS="${TOOL_DESCRIPTIONS:-short}"  # as the proof's default: the checkpoint was trained on these
SEED="${SEED:-0}"
RESUME="${RESUME:-0}"
case "$RESUME" in 0|1) ;; *) echo "RESUME must be 0 or 1, not '$RESUME'" >&2; exit 2;; esac
case "$TOOL_DESCRIPTIONS" in short|full) ;; *) echo "TOOL_DESCRIPTIONS must be short or full, not '$TOOL_DESCRIPTIONS'" >&2
  exit 2;; esac
case "$TEST" in ''|*[!0-9]*|0) echo "TEST must be a positive integer, not '$TEST'" >&2; exit 2;; esac
if [ ! -f "$PROOF_DIR/ckpt/config.json" ]; then
  echo "no SFT checkpoint in $PROOF_DIR/ckpt: run scripts/proof.sh first (or set PROOF_DIR to a proof directory)" >&2
  exit 2
fi

# Parse every point before any work: a typo fails now, not an hour in.
declare -a NAMES=() ARGS=()
MAX_STEPS=0
i=0
for point in $POINTS; do
  i=$(( i + 1 ))
  steps=30 gen=4 lr=3e-5 temp=1.0 save=0 completion=512 calls=2
  IFS=, read -ra pairs <<<"$point"
  for kv in "${pairs[@]}"; do
    key="${kv%%=*}" val="${kv#*=}"
    case "$key" in
      steps|gen|save|completion|calls)
        case "$val" in ''|*[!0-9]*) echo "point '$point': $key must be a whole number, not '$val'" >&2; exit 2;; esac;;
      lr|temp) case "$val" in ''|*[!0-9.e-]*) echo "point '$point': $key must be a number, not '$val'" >&2; exit 2;; esac;;
      *) echo "point '$point': unknown key '$key' (accepted: steps, gen, lr, temp, save, completion, calls)" >&2
        exit 2;;
    esac
    printf -v "$key" '%s' "$val"
  done
  [ "$steps" -ge 1 ] && [ "$gen" -ge 2 ] || { echo "point '$point': steps must be >= 1 and gen >= 2" >&2; exit 2; }
  NAMES+=("p$i")
  ARGS+=("$point|$steps|$gen|$lr|$temp|$save|$completion|$calls")
  [ "$steps" -gt "$MAX_STEPS" ] && MAX_STEPS=$steps
done
[ "$i" -ge 1 ] || { echo "POINTS is empty: give at least one point, e.g. POINTS=\"steps=30\"" >&2; exit 2; }
PROMPTS="${PROMPTS:-$MAX_STEPS}"  # train-split prompts of FAMILY (one a step; cycled when fewer than steps)

export MCPGYM_TOOL_DESCRIPTIONS="$TOOL_DESCRIPTIONS"
export MCPGYM_STEP_TIMEOUT_S="${MCPGYM_STEP_TIMEOUT_S:-3600}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
[ "$RESUME" = 1 ] || rm -rf "$SWEEP_DIR"
mkdir -p "$SWEEP_DIR"
DB="$SWEEP_DIR/sweep.db"
if [ ! -f "$SWEEP_DIR/settings.tsv" ]; then
  {
    printf 'COMMAND\t%s\n' "$COMMAND"
    printf 'STARTED\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf 'CPU\t%s\n' "$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)"
    printf 'CORES\t%s\n' "$(nproc)"
    for v in PROOF_DIR FAMILY POINTS TEST PROMPTS MAX_TURNS MAX_NEW_TOKENS EVAL_DTYPE PRECISION TOOL_DESCRIPTIONS SEED; do
      printf '%s\t%s\n' "$v" "${!v}"; done
  } > "$SWEEP_DIR/settings.tsv"
else  # resumed: the report names the command that finished the sweep and its points (points keep their names p1...)
  sed -i -e "s|^COMMAND\t.*|COMMAND\t$COMMAND|" -e "s|^POINTS\t.*|POINTS\t$POINTS|" "$SWEEP_DIR/settings.tsv"
fi
[ -f "$SWEEP_DIR/runs.tsv" ] || printf 'name\tpoint\tsteps\tgen\tseconds\n' > "$SWEEP_DIR/runs.tsv"

evaluate() {  # evaluate NAME MODEL: one checkpoint on the TEST held-out tasks -> eval-NAME.json
  [ "$RESUME" = 1 ] && [ -s "$SWEEP_DIR/eval-$1.json" ] && return 0
  echo "[$(date -u +%H:%M:%S)] evaluate $2 on $TEST $FAMILY test tasks"
  "$MCPGYM" eval --model "$2" --tasks "$FAMILY" --split test --limit "$TEST" --samples 1 --max-turns "$MAX_TURNS" \
    --max-new-tokens "$MAX_NEW_TOKENS" --temperature 0 --seed "$SEED" --concurrency "$EVAL_CONCURRENCY" \
    --dtype "$EVAL_DTYPE" --db "$DB" --json > "$SWEEP_DIR/eval-$1.tmp"
  mv "$SWEEP_DIR/eval-$1.tmp" "$SWEEP_DIR/eval-$1.json"
}

if [ ! -f "$SWEEP_DIR/grpo-data/train.jsonl" ]; then
  echo "[$(date -u +%H:%M:%S)] $PROMPTS train-split $FAMILY prompts"
  "$MCPGYM" collect --tasks "$FAMILY" --policy scripted --split train --limit "$PROMPTS" --seed "$SEED" --db "$DB" \
    --run grpo-prompts --concurrency 8 --quiet --resume
  "$MCPGYM" dataset grpo --db "$DB" --runs grpo-prompts --out "$SWEEP_DIR/grpo-data" --eval-fraction 0 --seed "$SEED"
fi
evaluate sft "$PROOF_DIR/ckpt"
for k in "${!NAMES[@]}"; do
  name="${NAMES[$k]}"
  IFS='|' read -r point steps gen lr temp save completion calls <<<"${ARGS[$k]}"
  if [ "$RESUME" = 1 ] && [ -f "$SWEEP_DIR/$name/mcpgym-train.json" ] && grep -q "^$name	" "$SWEEP_DIR/runs.tsv"; then
    echo "[$(date -u +%H:%M:%S)] $name ($point) already trained"
  else
    echo "[$(date -u +%H:%M:%S)] $name: GRPO $point ($steps steps x $gen rollouts, lr $lr, temperature $temp)"
    t0=$(date +%s)
    "$MCPGYM" train grpo --data "$SWEEP_DIR/grpo-data" --model "$PROOF_DIR/ckpt" --out "$SWEEP_DIR/$name" \
      --profile cpu --max-steps "$steps" --batch-size "$gen" --num-generations "$gen" \
      --max-completion-length "$completion" --max-tool-calls "$calls" --lr "$lr" --temperature "$temp" \
      --seed "$SEED" --no-gradient-checkpointing --precision "$PRECISION" --save-steps "$save" \
      > "$SWEEP_DIR/$name.log" 2>&1 \
      || { echo "GRPO of $name failed; its log: $SWEEP_DIR/$name.log" >&2; tail -20 "$SWEEP_DIR/$name.log" >&2; exit 1; }
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$point" "$steps" "$gen" $(( $(date +%s) - t0 )) >> "$SWEEP_DIR/runs.tsv"
  fi
  # each point is evaluated as soon as it is trained: a sweep stopped early still reports what it finished
  for dir in "$SWEEP_DIR/$name"/step-*; do
    [ -d "$dir" ] && evaluate "$name-${dir##*step-}" "$dir"
  done
  evaluate "$name-$steps" "$SWEEP_DIR/$name"
  "$PYTHON" -m training.grpo_sweep --dir "$SWEEP_DIR" > /dev/null
done
cat "$SWEEP_DIR/grpo-sweep.md"
echo "[$(date -u +%H:%M:%S)] done: $SWEEP_DIR/grpo-sweep.md, episodes in $DB (mcpgym view --db $DB)"
}
main "$@"
exit
