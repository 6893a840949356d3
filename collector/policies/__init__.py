"""Policies (the LLM side of an episode): `openai`, `local` and `scripted`, built by name with `make_policy`."""

from __future__ import annotations

import importlib
from typing import Any

from collector.errors import ConfigError
from collector.policies.base import Completion, Policy

__all__ = ["POLICIES", "Completion", "Policy", "make_policy"]

# name -> "module:class"; imported only when asked for, so `openai` never pays for torch.
POLICIES: dict[str, str] = {
    "openai": "collector.policies.openai:OpenAIPolicy",
    "local": "collector.policies.local:LocalPolicy",
    "scripted": "collector.policies.scripted:ScriptedPolicy",
}


def make_policy(name: str, **options: Any) -> Policy:
    """Build a policy by name.

    Args:
        name: `openai`, `local` or `scripted`.
        **options: the policy's constructor arguments (e.g. `model=`, `base_url=`, `api_key_env=` for openai;
            `model=`, `temperature=` for local); None values are dropped so defaults apply.

    Returns:
        The policy.

    Raises:
        ConfigError: unknown name, or options the policy does not accept.
    """
    target = POLICIES.get(name)
    if target is None:
        raise ConfigError(f"unknown policy {name!r}; accepted: {', '.join(POLICIES)}")
    module_name, attr = target.split(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except ImportError as exc:
        raise ConfigError(f"the {name!r} policy is not available: {exc}") from exc
    kwargs = {k: v for k, v in options.items() if v is not None}
    try:
        policy: Policy = cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"bad options for the {name!r} policy: {exc}") from exc
    return policy
