#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU, a bf16 SFT and a short GRPO of the shipped SmolLM2-135M on
# scripted-expert weather episodes, with steps per second for each. GRPO generates with vLLM when it is installed
# (pip install 'mcpgym[gpu]') and with transformers otherwise. Outputs go outside the repository.
#
#   scripts/gpu-check.sh                              # a few minutes on one GPU
#   GPU_DIR=/tmp/g SFT_STEPS=40 GRPO_STEPS=10 scripts/gpu-check.sh
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PY:-$ROOT/.venv/bin/python}"
MCPGYM="${MCPGYM:-$ROOT/.venv/bin/mcpgym}"
GPU_DIR="${GPU_DIR:-${TMPDIR:-/tmp}/mcpgym-gpu-check}"
TASKS="${TASKS:-24}"
SFT_STEPS="${SFT_STEPS:-30}"
GRPO_STEPS="${GRPO_STEPS:-5}"
BATCH="${BATCH:-4}"

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu-check: no NVIDIA GPU visible (nvidia-smi -L failed); this check needs one" >&2
  exit 2
fi
"$PY" - <<'PYEOF'
import sys
import torch
if not torch.cuda.is_available():
    sys.exit(f"gpu-check: torch {torch.__version__} has no CUDA; install a CUDA build (scripts/setup.sh does with a GPU)")
print(f"gpu-check: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"bf16 {'yes' if torch.cuda.is_bf16_supported() else 'NO'}")
try:
    import vllm
    print(f"gpu-check: vLLM {vllm.__version__}: GRPO generates with vLLM (colocated)")
except ImportError:
    print("gpu-check: vLLM not installed: GRPO generates with transformers")
PYEOF

rm -rf "$GPU_DIR"
mkdir -p "$GPU_DIR"
DB="$GPU_DIR/gpu.db"
stamp() { date -u +%H:%M:%S; }

echo "[$(stamp)] collect $TASKS scripted-expert weather episodes"
"$MCPGYM" collect --tasks weather --policy scripted --limit "$TASKS" --db "$DB" --run expert --concurrency 8 --quiet
"$MCPGYM" dataset sft --db "$DB" --runs expert --out "$GPU_DIR/sft" --eval-fraction 0 >/dev/null
"$MCPGYM" dataset grpo --db "$DB" --runs expert --out "$GPU_DIR/grpo" --eval-fraction 0 >/dev/null

echo "[$(stamp)] SFT, bf16, $SFT_STEPS steps of $BATCH rows"
"$MCPGYM" train sft --data "$GPU_DIR/sft" --out "$GPU_DIR/ckpt-sft" --profile gpu --max-steps "$SFT_STEPS" \
  --batch-size "$BATCH" --max-length 2048
echo "[$(stamp)] GRPO, bf16, $GRPO_STEPS steps of $BATCH completions (2 per prompt)"
"$MCPGYM" train grpo --data "$GPU_DIR/grpo" --model "$GPU_DIR/ckpt-sft" --out "$GPU_DIR/ckpt-grpo" --profile gpu \
  --max-steps "$GRPO_STEPS" --batch-size "$BATCH" --num-generations 2 --max-completion-length 128 --max-tool-calls 2

"$PY" - "$GPU_DIR" <<'PYEOF'
import json
import sys
from pathlib import Path

root = Path(sys.argv[1])
for kind in ("sft", "grpo"):
    run = json.loads((root / f"ckpt-{kind}" / "mcpgym-train.json").read_text())
    m = run["metrics"]
    steps = run.get("max_steps") or 0
    print(f"gpu-check: {kind}: {m.get('train_steps_per_second', float('nan')):.3f} steps/s "
          f"({steps} steps in {m.get('train_runtime', float('nan')):.1f} s, "
          f"{m.get('train_samples_per_second', float('nan')):.2f} samples/s, final loss {m.get('train_loss')})")
PYEOF
echo "[$(stamp)] done: $GPU_DIR"
