"""The MCP GRPO environment against a real stdio weather server: generated methods, sessions, calls, verdicts."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from transformers.utils import get_json_schema

from collector.servers import ServerSpec
from training.environment import (
    MCPEnvironmentFactory,
    environment_key,
    make_tool_method,
    task_environment_key,
    use_mcp_schemas,
)
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
    env = cls()
    for name in methods:
        # execution only: a prompt rendered from the methods' signatures fails loudly instead of showing other schemas
        with pytest.raises(Exception, match="Cannot generate JSON schema|type hint"):
            get_json_schema(getattr(env, name))
    assert factory.factories([["weather"]]) == {"weather": cls}


def test_a_rollout_calls_the_real_server_by_the_episode_rules(factory: MCPEnvironmentFactory) -> None:
    env = factory.environment_class(["weather"])()
    assert env.reset(prompt=TASK["messages"], task=TASK) is None
    text = env.get_current_weather(location="Paris")  # type: ignore[attr-defined]
    assert "Paris" in text and not text.startswith("Error")
    bad = env.get_current_weather(city="Paris")  # type: ignore[attr-defined]
    assert bad.startswith("Error: invalid arguments for 'get_current_weather'")  # collection's text, not sent
    unknown = env.get_current_weather(location="Nowhereville-Xq")  # type: ignore[attr-defined]
    assert unknown.startswith("Error")
    kinds = [c.error_kind for c in env.state.calls]
    assert kinds[:2] == [None, "invalid_arguments"] and kinds[2] is not None
    assert [c.malformed for c in env.state.calls] == [False, True, False]
    assert env.state.verdict("It is sunny in Paris.")["passed"] is True
    assert env.state.verdict("No idea.")["passed"] is False
    judged = env.state.judge("It is sunny in Paris.")
    assert judged.components["success"] == 10.0 and judged.components["format"] == 0.0  # one malformed call
    env.reset(task=TASK)  # a fresh rollout starts with no calls
    assert env.state.calls == []
    env.state.close()


def test_reset_needs_a_task(factory: MCPEnvironmentFactory) -> None:
    env = factory.environment_class(["weather"])()
    with pytest.raises(EnvironmentSetupError, match="must carry a 'task'"):
        env.reset(prompt=[])


def test_tool_methods_take_the_arguments_as_given() -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    method = make_tool_method("read", "Read\n a file.", lambda env, n, a: seen.append((n, a)) or "ok")
    assert method.__doc__ == "Read a file." and method.__name__ == "read"
    assert method(None, path="x", extra=[1]) == "ok" and seen[-1] == ("read", {"path": "x", "extra": [1]})
    for bad in ("read-file", "reset", "_private", "class"):
        with pytest.raises(EnvironmentSetupError, match="cannot become an environment method"):
            make_tool_method(bad, "", lambda *a: "")
    assert environment_key(["files", "exec", "files"]) == "exec+files"
    assert environment_key(["files", "exec"], {"files": ["write_file", "read_text_file"], "exec": ["run_shell"]}) == (
        "exec+files[exec:run_shell;files:read_text_file,write_file]")


def test_a_task_s_tool_subset_has_its_own_environment(factory: MCPEnvironmentFactory) -> None:
    forecast = {**TASK, "id": "w2", "tools": {"weather": ["get_forecast"]}}
    assert task_environment_key(forecast) == "weather[weather:get_forecast]"
    envs = factory.factories_for([TASK, forecast, {**forecast, "id": "w3"}])
    assert list(envs) == ["weather", "weather[weather:get_forecast]"]  # one tool list per environment, as TRL renders
    cls = envs["weather[weather:get_forecast]"]
    assert set(_tool_methods(cls)) == {"get_forecast"}  # TRL dispatches no other name: an unknown tool
    assert [t["function"]["name"] for t in factory.tools["weather[weather:get_forecast]"]] == ["get_forecast"]
    env = cls()
    env.reset(task=forecast)
    assert env.state.session is not None and [t["function"]["name"] for t in env.state.session.tools] == [
        "get_forecast"]
    text = env.get_forecast(location="Paris", days=2)  # type: ignore[attr-defined]
    assert "Paris" in text and not text.startswith("Error")
    with pytest.raises(EnvironmentSetupError, match="task 'w1' needs environment 'weather', not "
                                                    r"'weather\[weather:get_forecast\]'"):
        env.reset(task=TASK)  # a row routed to another task's environment
    env.state.close()
    with pytest.raises(EnvironmentSetupError, match="server 'weather' has no tool 'get_weather' to offer; its tools: "
                                                    "get_current_weather, get_forecast, geocode"):
        factory.environment_class(["weather"], {"weather": ["get_weather"]})


def test_use_mcp_schemas_refuses_a_trainer_it_does_not_know(factory: MCPEnvironmentFactory) -> None:
    class Other:
        pass

    with pytest.raises(EnvironmentSetupError, match="no per-environment tool list"):
        use_mcp_schemas(Other(), factory)
