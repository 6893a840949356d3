"""A real two-step SFT run of SmolLM2-135M on the CPU, and the checkpoint loading back into the local policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from episode_factory import weather_messages

from collector.chat_template import CHAT_TEMPLATE
from collector.models import load_model_and_tokenizer, resolve_model
from collector.store import Store
from training.datasets import SFTOptions, build_sft, save_dataset
from training.errors import TrainerConfigError
from training.trainers.sft import SFTRunConfig, train_sft

pytestmark = pytest.mark.slow


@pytest.fixture
def sft_data(store: Store, add_episode, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    for i, city in enumerate(["Paris", "Berlin", "Lima", "Oslo"]):
        add_episode("expert", f"weather-{i}", "weather", weather_messages(city, 10 + i))
    return save_dataset(build_sft(str(store.path), ["expert"], SFTOptions(eval_fraction=0.0)), tmp_path / "sft")


def test_two_step_sft_trains_and_loads_back(sft_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "ckpt"
    config = SFTRunConfig(data=sft_data, out=out, max_steps=2, batch_size=2, max_length=512, learning_rate=1e-4,
                          logging_steps=1)
    assert train_sft(config) == out
    run = (out / "mcpgym-train.json").read_text()
    assert '"kind": "sft"' in run and '"loss"' in run
    model, tokenizer = load_model_and_tokenizer(str(out), device="cpu")
    assert tokenizer.chat_template == CHAT_TEMPLATE
    base, _ = load_model_and_tokenizer(str(resolve_model(None)), device="cpu")
    changed = [n for (n, p), (_, q) in zip(model.named_parameters(), base.named_parameters(), strict=True)
               if not torch.equal(p, q)]
    assert changed, "two optimizer steps left every weight unchanged"


def test_assistant_only_loss_masks_everything_but_the_assistant(sft_data: Path) -> None:
    from datasets import load_from_disk

    from training.trainers.common import get_profile, load_model

    _, tokenizer = load_model(None, get_profile("cpu"))
    row = load_from_disk(str(sft_data))["train"][0]
    out = tokenizer.apply_chat_template(row["messages"], tools=row["tools"], tokenize=True, return_dict=True,
                                        return_assistant_tokens_mask=True)
    mask = out["assistant_masks"]
    trained = tokenizer.decode([t for t, m in zip(out["input_ids"], mask, strict=True) if m])
    assert "<tool_call>" in trained and "degrees Celsius" in trained
    assert "What is the temperature" not in trained and "temperature_c" not in trained  # user and tool text


def test_bad_data_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(TrainerConfigError, match="not a dataset directory"):
        train_sft(SFTRunConfig(data=tmp_path / "missing", out=tmp_path / "o"))
    with pytest.raises(TrainerConfigError, match="unknown profile 'tpu'"):
        train_sft(SFTRunConfig(data=tmp_path, out=tmp_path / "o", profile="tpu"))


def test_gradient_checkpointing_can_be_turned_off_with_the_same_loss(sft_data: Path, tmp_path: Path) -> None:
    from transformers import TrainerCallback

    seen: dict[bool, bool] = {}

    class Probe(TrainerCallback):  # type: ignore[misc]
        def __init__(self, asked: bool) -> None:
            self.asked = asked

        def on_train_begin(self, args: object, state: object, control: object, **kwargs: Any) -> None:
            seen[self.asked] = bool(kwargs["model"].is_activation_checkpointing)

    losses = {}
    for asked in (True, False):
        out = tmp_path / f"ckpt-{asked}"
        config = SFTRunConfig(data=sft_data, out=out, max_steps=1, batch_size=2, max_length=512, learning_rate=1e-4,
                              logging_steps=1, gradient_checkpointing=asked, precision="fp32")
        train_sft(config, callbacks=[Probe(asked)])
        run = json.loads((out / "mcpgym-train.json").read_text())
        assert run["gradient_checkpointing"] is asked
        losses[asked] = next(row["loss"] for row in run["log"] if "loss" in row)
    assert seen == {True: True, False: False}
    # recomputing activations changes where the work is done, not what is computed
    assert losses[False] == pytest.approx(losses[True], rel=1e-4)


def test_bf16_autocast_runs_the_matrix_products_in_bf16_with_float32_weights(sft_data: Path, tmp_path: Path) -> None:
    from transformers import TrainerCallback

    seen: dict[str, set[torch.dtype]] = {}

    class Probe(TrainerCallback):  # type: ignore[misc]
        """Record the dtype of the first linear layer's outputs, and of the weights, during the first step."""

        def __init__(self, precision: str) -> None:
            self.precision = precision

        def on_train_begin(self, args: object, state: object, control: object, **kwargs: Any) -> None:
            model = kwargs["model"]
            found = seen.setdefault(self.precision, set())
            seen[self.precision + "-weights"] = {p.dtype for p in model.parameters()}
            linear = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
            linear.register_forward_hook(lambda _m, _i, out: found.add(out.dtype))

    losses = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / f"ckpt-{precision}"
        config = SFTRunConfig(data=sft_data, out=out, max_steps=1, batch_size=2, max_length=512, learning_rate=1e-4,
                              logging_steps=1, precision=precision)
        train_sft(config, callbacks=[Probe(precision)])
        run = json.loads((out / "mcpgym-train.json").read_text())
        assert run["precision"] == precision and run["bf16"] is (precision == "bf16")
        losses[precision] = next(row["loss"] for row in run["log"] if "loss" in row)
        saved = load_model_and_tokenizer(str(out), device="cpu")[0]
        assert {p.dtype for p in saved.parameters()} == {torch.float32}  # the checkpoint keeps float32 weights
    assert seen["fp32"] == {torch.float32} and seen["bf16"] == {torch.bfloat16}
    assert seen["fp32-weights"] == seen["bf16-weights"] == {torch.float32}
    # the same loss to bf16's precision (8 bits of mantissa in the products)
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=2e-2)


def test_precision_choices_and_their_errors() -> None:
    from training.trainers.common import cpu_has_bf16_matmul, get_profile

    cpu, gpu = get_profile("cpu"), get_profile("gpu")
    # the probe agrees with what the kernel says of this CPU, and "auto" follows it for SFT
    flags = Path("/proc/cpuinfo").read_text(encoding="utf-8").split()
    assert cpu_has_bf16_matmul() is ("amx_tile" in flags)
    assert cpu.mixed_bf16("auto") is ("amx_tile" in flags)
    assert cpu.mixed_bf16("auto", generates=True) is False  # GRPO generates: float32 on the CPU unless asked
    assert cpu.mixed_bf16("bf16", generates=True) is True and cpu.mixed_bf16("fp32") is False
    assert gpu.mixed_bf16("auto") is True and gpu.trainer_kwargs(precision="bf16")["bf16"] is True
    with pytest.raises(TrainerConfigError, match="precision fp32 is not accepted"):
        gpu.mixed_bf16("fp32")
    with pytest.raises(TrainerConfigError, match="unknown precision 'fp16'; accepted: auto, fp32, bf16"):
        cpu.mixed_bf16("fp16")
