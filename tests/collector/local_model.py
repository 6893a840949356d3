"""The real SmolLM2-135M for tests: converted once per test process into a private cache, loaded once."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path
from typing import Any

from collector.models import load_model_and_tokenizer, resolve_model


@functools.lru_cache(maxsize=1)
def model_cache() -> Path:
    """A fresh model cache holding the converted default model (removed when the test process exits)."""
    directory = Path(tempfile.mkdtemp(prefix="mcpgym-test-models-"))
    atexit.register(shutil.rmtree, directory, True)
    resolve_model(None, cache_dir=directory)
    return directory


@functools.lru_cache(maxsize=1)
def loaded_model() -> tuple[Any, Any]:
    """The default model and its prepared tokenizer, loaded from `model_cache()` on the CPU."""
    return load_model_and_tokenizer(None, cache_dir=model_cache(), device="cpu")
