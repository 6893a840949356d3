"""What the SFT and GRPO trainers share: profiles, loading data and the model, LoRA, saving a checkpoint."""

from __future__ import annotations

import copy
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from collector.errors import CollectorError
from training.errors import TrainerConfigError

__all__ = ["PRECISIONS", "PROFILES", "Profile", "cpu_has_bf16_matmul", "get_profile", "is_main_process", "load_model",
           "load_splits", "lora_config", "process_count", "save_checkpoint", "uses_vllm"]


PRECISIONS = ("auto", "fp32", "bf16")


def cpu_has_bf16_matmul() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (Intel AMX), where bf16 autocast pays.

    Measured on a 2-core Xeon with AMX (SmolLM2-135M, one 1,500-token row, forward and backward): 14.5 s in float32,
    8.7 s under bf16 autocast. Without AMX, bf16 is emulated and slower than float32.
    """
    import torch

    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private: absent in some builds means "no"
    return bool(probe()) if callable(probe) else False


@dataclass(frozen=True)
class Profile:
    """Hardware defaults of a training run.

    Attributes:
        name: "cpu" or "gpu".
        use_cpu: force the CPU even when a GPU is visible.
        bf16: load the weights in bfloat16 and train in bfloat16 (the GPU profile).
        use_vllm: GRPO generates with vLLM (colocated with training on each GPU).
        gradient_checkpointing: trade compute for memory.
        dataloader_num_workers: data loading processes.
    """

    name: Literal["cpu", "gpu"]
    use_cpu: bool
    bf16: bool
    use_vllm: bool
    gradient_checkpointing: bool
    dataloader_num_workers: int

    def mixed_bf16(self, precision: str = "auto", *, generates: bool = False) -> bool:
        """Whether to train under bfloat16 autocast.

        Args:
            precision: "auto" (the GPU profile: yes; the CPU profile: yes on a CPU with bf16 matrix hardware, see
                `cpu_has_bf16_matmul`, when the trainer does not generate, float32 otherwise), "fp32" or "bf16".
                On the CPU profile the weights stay float32 and only the matrix products run in bfloat16.
            generates: the trainer generates (GRPO). On the CPU, token-by-token generation under autocast was
                slower than in float32 (GRPO steps of 4 weather rollouts: 60 and 80 s against 53 and 61 s), so
                "auto" keeps float32 there.

        Raises:
            TrainerConfigError: unknown precision, or "fp32" on the GPU profile (whose weights load in bfloat16).
        """
        if precision not in PRECISIONS:
            raise TrainerConfigError(f"unknown precision {precision!r}; accepted: {', '.join(PRECISIONS)}")
        if self.bf16:
            if precision == "fp32":
                raise TrainerConfigError(f"the {self.name} profile loads bfloat16 weights: precision fp32 is not "
                                         "accepted there (use --profile cpu for float32)")
            return True
        return precision == "bf16" or (precision == "auto" and not generates and cpu_has_bf16_matmul())

    def trainer_kwargs(self, gradient_checkpointing: bool | None = None, precision: str = "auto", *,
                       generates: bool = False) -> dict[str, Any]:
        """The TRL/transformers config fields this profile sets (shared by SFTConfig and GRPOConfig).

        Args:
            gradient_checkpointing: overrides the profile's choice when not None.
            precision, generates: see `mixed_bf16`.
        """
        return {
            "use_cpu": self.use_cpu,
            "bf16": self.mixed_bf16(precision, generates=generates),
            # transformers' current name; `gradient_checkpointing` is its deprecated alias
            "activation_checkpointing": (self.gradient_checkpointing if gradient_checkpointing is None
                                         else gradient_checkpointing),
            "dataloader_num_workers": self.dataloader_num_workers,
        }


PROFILES: dict[str, Profile] = {
    # SmolLM2-135M on a laptop CPU: float32, no vLLM, single process. Gradient checkpointing stays on: tool
    # schemas make rows 1,500-3,000 tokens long, and without it one batch of 4 such rows needs over 20 GB. At batch
    # 1 turning it off (`--no-gradient-checkpointing`) makes SFT steps ~18% faster for ~10 GB of memory.
    "cpu": Profile("cpu", use_cpu=True, bf16=False, use_vllm=False, gradient_checkpointing=True,
                   dataloader_num_workers=0),
    # One or more GPUs (launch with `accelerate launch` for several): bf16, vLLM generation for GRPO.
    "gpu": Profile("gpu", use_cpu=False, bf16=True, use_vllm=True, gradient_checkpointing=True,
                   dataloader_num_workers=2),
}


def uses_vllm(profile: Profile) -> bool:
    """Whether GRPO generates with vLLM: the profile asks for it and vLLM is installed.

    A GPU machine without vLLM (it is not installed everywhere: `pip install 'mcpgym[gpu]'`) generates with
    transformers instead, slower; a warning says so.
    """
    if not profile.use_vllm:
        return False
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        logging.getLogger(__name__).warning(
            "the %s profile generates with vLLM, which is not installed: generating with transformers "
            "(pip install 'mcpgym[gpu]' for vLLM)", profile.name)
        return False
    return True


def get_profile(name: str) -> Profile:
    """The named profile.

    Raises:
        TrainerConfigError: unknown name.
    """
    try:
        return PROFILES[name]
    except KeyError:
        raise TrainerConfigError(f"unknown profile {name!r}; accepted: {', '.join(PROFILES)}") from None


def load_splits(data: str | Path, columns: tuple[str, ...]) -> tuple[Any, Any | None]:
    """Load the train (and eval, when present) split of a dataset saved by `mcpgym dataset`.

    Args:
        data: the dataset directory.
        columns: columns every row must have (e.g. ("messages", "tools") for SFT).

    Returns:
        (train, eval or None) as `datasets.Dataset`.

    Raises:
        TrainerConfigError: the directory is missing, is not a saved dataset, or lacks a column.
    """
    from datasets import DatasetDict, load_from_disk

    path = Path(data)
    if not (path / "dataset_dict.json").is_file():
        raise TrainerConfigError(
            f"{path} is not a dataset directory (no dataset_dict.json); build one with 'mcpgym dataset sft|grpo --out'"
        )
    dd = load_from_disk(str(path))
    if not isinstance(dd, DatasetDict) or "train" not in dd:
        raise TrainerConfigError(f"{path} has no 'train' split")
    missing = [c for c in columns if c not in dd["train"].column_names]
    if missing:
        raise TrainerConfigError(
            f"{path} lacks column(s) {', '.join(missing)} (has {', '.join(dd['train'].column_names)}); "
            f"expected a dataset with {', '.join(columns)} (was it built for the other trainer?)"
        )
    return dd["train"], dd.get("eval")


def load_model(name_or_path: str | None, profile: Profile, *, padding_side: str = "right") -> tuple[Any, Any]:
    """Load a causal LM (float32 on CPU, bfloat16 on GPU) and its tokenizer with the project's chat template.

    Args:
        name_or_path: a built-in model name (default smollm2-135m) or a checkpoint directory.
        profile: the hardware profile.
        padding_side: "right" for SFT, "left" for GRPO generation.

    Raises:
        TrainerConfigError: the model cannot be resolved or loaded.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from collector.models import prepare_tokenizer, resolve_model

    try:
        path = resolve_model(name_or_path)
    except CollectorError as exc:
        raise TrainerConfigError(str(exc)) from exc
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            path, local_files_only=True, dtype=torch.bfloat16 if profile.bf16 else torch.float32
        )
    except (OSError, ValueError) as exc:
        raise TrainerConfigError(f"cannot load the model from {path}: {exc}") from exc
    prepare_tokenizer(tokenizer)
    tokenizer.padding_side = padding_side
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def lora_config(enabled: bool, rank: int = 16, alpha: int = 32) -> Any:
    """A PEFT LoRA config over every linear layer, or None when disabled."""
    if not enabled:
        return None
    from peft import LoraConfig

    return LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")


def is_main_process(trainer: Any) -> bool:
    """True in the process that writes files: the only one, or rank 0 under `accelerate launch`/`torchrun`."""
    accelerator = getattr(trainer, "accelerator", None)
    return bool(accelerator.is_main_process) if accelerator is not None else True


def process_count(trainer: Any) -> int:
    """How many processes train together (1 without a launcher)."""
    accelerator = getattr(trainer, "accelerator", None)
    return int(accelerator.num_processes) if accelerator is not None else 1


def save_checkpoint(trainer: Any, tokenizer: Any, out: Path, run_config: dict[str, Any], *,
                    during_training: bool = False) -> Path:
    """Save the trained model (LoRA merged into the base) and the tokenizer with the chat template.

    The directory loads back into the collector's `local` policy by path (`--model <out>`). Under several processes
    only the main process writes (every process holds the same weights after the last step); the others wait until
    the checkpoint is complete, so every process returns with it on disk. `during_training` saves a copy of the
    weights with LoRA merged, leaving the adapters of the model being trained in place.
    """
    if is_main_process(trainer):
        model = trainer.model
        if hasattr(model, "merge_and_unload"):
            model = (copy.deepcopy(model) if during_training else model).merge_and_unload()
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(str(out))
        tokenizer.padding_side = "left"
        tokenizer.save_pretrained(str(out))
        record = {**run_config, "processes": process_count(trainer),
                  "bf16": bool(getattr(getattr(trainer, "args", None), "bf16", False))}
        (out / "mcpgym-train.json").write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
    accelerator = getattr(trainer, "accelerator", None)
    if accelerator is not None:
        accelerator.wait_for_everyone()
    return out


def config_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as a JSON-ready dict."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
