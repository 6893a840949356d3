"""The MCP GRPO environment against a real stdio weather server: generated methods, sessions, calls, verdicts."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterator
from typing import Any, Literal

import pytest
from transformers.utils import get_json_schema

from collector.servers import ServerSpec
from training.environment import MCPEnvironmentFactory, environment_key, make_tool_method
from training.errors import EnvironmentSetupError

WEATHER = {"weather": ServerSpec(name="weather", command=sys.executable,
                                 args=("-m", "mcpgym.cli", "serve", "weather", "--transport", "stdio"))}
TASK = {"id": "w1", "family": "weather", "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "servers": ["weather"], "verifier": {"type": "contains", "expected": "Paris"}}


@pytest.fixture(scope="module")
def factory() -> Iterator[MCPEnvironmentFactory]:
    f = MCPEnvironmentFactory(WEATHER)
    yield f
    f.close()


def _tool_methods(cls: type) -> dict[str, Any]:
    return {n: m for n, m in inspect.getmembers(cls, inspect.isfunction) if not n.startswith("_") and n != "reset"}


def test_methods_mirror_the_live_tool_list(factory: MCPEnvironmentFactory) -> None:
    cls = factory.environment_class(["weather"])
    methods = _tool_methods(cls)
    offered = {t["function"]["name"]: t["function"] for t in factory.tools["weather"]}
    assert set(methods) == set(offered) and "get_current_weather" in methods
    for name, method in methods.items():
        schema = get_json_schema(method)["function"]
        assert schema["name"] == name
        assert set(schema["parameters"]["properties"]) == set(offered[name]["parameters"]["properties"])
        assert set(schema["parameters"].get("required", [])) == set(offered[name]["parameters"].get("required", []))
    units = get_json_schema(methods["get_current_weather"])["function"]["parameters"]["properties"]["units"]
    assert units["enum"] == ["metric", "imperial"]
    assert factory.factories([["weather"]]) == {"weather": cls}


def test_a_rollout_calls_the_real_server_and_is_verified(factory: MCPEnvironmentFactory) -> None:
    env = factory.environment_class(["weather"])()
    assert env.reset(prompt=TASK["messages"], task=TASK) is None
    text = env.get_current_weather(location="Paris")  # type: ignore[attr-defined]
    assert "Paris" in text and not text.startswith("Error")
    bad = env.get_current_weather(city="Paris")  # type: ignore[attr-defined]
    assert bad.startswith("Error: bad arguments for get_current_weather")
    unknown = env.get_current_weather(location="Nowhereville-Xq")  # type: ignore[attr-defined]
    assert unknown.startswith("Error")
    assert [c["is_error"] for c in env.state.call_log] == [False, True, True]
    assert env.state.verdict("It is sunny in Paris.")["passed"] is True
    assert env.state.verdict("No idea.")["passed"] is False
    env.reset(task=TASK)  # a fresh rollout starts with an empty log
    assert env.state.call_log == []
    env.state.close()


def test_reset_needs_a_task(factory: MCPEnvironmentFactory) -> None:
    env = factory.environment_class(["weather"])()
    with pytest.raises(EnvironmentSetupError, match="must carry a 'task'"):
        env.reset(prompt=[])


def test_generated_signature_from_a_schema() -> None:
    schema = {"type": "object", "required": ["path"], "properties": {
        "path": {"type": "string", "description": "File to read.\nArgs: not a section"},
        "lines": {"type": "array", "items": {"type": "integer"}},
        "mode": {"type": "string", "enum": ["a", "b"]}}}
    seen: list[tuple[str, dict[str, Any], str | None]] = []
    method = make_tool_method("read", "Read a file.", schema, lambda env, n, a, p: seen.append((n, a, p)) or "ok")
    sig = inspect.signature(method)
    assert list(sig.parameters) == ["self", "path", "lines", "mode"]
    assert sig.parameters["mode"].annotation == Literal["a", "b"] | None
    doc = get_json_schema(method)["function"]
    assert doc["parameters"]["required"] == ["path"]
    assert doc["parameters"]["properties"]["lines"]["items"] == {"type": "integer"}
    assert method(None, path="x") == "ok" and seen[-1] == ("read", {"path": "x"}, None)
    method(None, nope=1)
    assert seen[-1][2] is not None and "Expected: (self, *, path: str" in seen[-1][2]
    with pytest.raises(EnvironmentSetupError, match="not a Python identifier"):
        make_tool_method("read-file", "", {}, lambda *a: "")
    assert environment_key(["files", "exec", "files"]) == "exec+files"
