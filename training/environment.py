"""The MCP GRPO environment: a TRL `environment_factory` whose tool methods run live MCP tools by the episode's rules.

Each MCP tool a session offers becomes a method of a generated class (TRL executes the methods it finds on the
class). A class is made per server set and tool subset (a task's `tools`), so a rollout is offered exactly the tools
collection offers the task; a call to a tool the class has no method for is an unknown tool, as it is in collection. The *schemas* the policy sees are not derived from those methods: TRL 1.16 renders an environment's tools
with `transformers.utils.get_json_schema` on the methods' signatures, which cannot carry `$ref` items, defaults,
bounds or nested properties. `use_mcp_schemas(trainer, factory)` therefore hands the trainer the exact OpenAI tool
dicts of `collector.tools.mcp_tool_to_openai` (the conversion collection and SFT use) for rendering prompts and
reading responses, and the methods are kept for execution only (they take `**arguments`, so a prompt rendered from
them instead fails loudly rather than showing other schemas).

Each rollout uses one MCP session (one workspace) opened by `reset()`, which also writes the task's setup files.
A call is read by `collector.episode.parse_call` (the namespace split, JSON and schema check of collection): a
malformed call is answered with the same error text as in collection and never sent; a well-formed one goes to the
same sandboxed servers. The verdict and reward components come from `collector.episode.judge`.

TRL discovers every public method of the class as a tool, so the rollout's bookkeeping lives on `env.state`
(a `RolloutState`), not in methods. TRL's `get_reward()` takes no arguments and cannot see the completion, while most
verifiers judge the final answer; the reward functions of `training.rewards` hand the completion to
`env.state.judge(...)`.
"""

from __future__ import annotations

import asyncio
import json
import keyword
import logging
import re
import threading
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from collector.episode import CallRecord, Judgement, ToolIndex, judge, parse_call, tool_message
from collector.errors import CollectorError
from collector.pool import ToolPool, ToolSession
from collector.servers import ServerSpec
from collector.settings import CollectorSettings
from collector.tasks.model import Task
from collector.types import OpenAITool, Verdict
from collector.workspace import EXEC_SERVER, FILES_SERVER
from training.errors import EnvironmentSetupError

__all__ = [
    "LoopThread",
    "MCPEnvironment",
    "MCPEnvironmentFactory",
    "RolloutState",
    "environment_key",
    "make_tool_method",
    "task_environment_key",
    "use_mcp_schemas",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class LoopThread:
    """An asyncio loop on a daemon thread, so synchronous callers (TRL's tool loop) can drive async MCP sessions."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="mcpgym-env-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        """Stop the loop and join the thread."""
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)


def _subset(tools: Mapping[str, Sequence[str]] | None) -> dict[str, tuple[str, ...]]:
    """A tool subset in one spelling: servers and tool names sorted, duplicates dropped."""
    return {s: tuple(sorted(set(names))) for s, names in sorted((tools or {}).items())}


def environment_key(servers: Sequence[str], tools: Mapping[str, Sequence[str]] | None = None) -> str:
    """The name of the environment for a set of servers and a tool subset (a GRPO row's `environment` column).

    `exec+files` when every tool of the servers is offered; with a subset the offered tools follow, e.g.
    `exec+files[exec:run_shell;files:edit_file,read_text_file]` (TRL renders one tool list per environment).
    """
    key = "+".join(sorted(dict.fromkeys(servers))) or "none"
    subset = _subset(tools)
    if subset:
        key += "[" + ";".join(f"{s}:{','.join(names)}" for s, names in subset.items()) + "]"
    return key


def task_environment_key(task: Task | Mapping[str, Any]) -> str:
    """The environment of a task (a Task or its dict): its servers and its tool subset."""
    if isinstance(task, Task):
        return environment_key(task.servers, task.tools)
    return environment_key(list(task.get("servers") or []), dict(task.get("tools") or {}))


def make_tool_method(name: str, description: str, call: Callable[[Any, str, dict[str, Any]], str]
                     ) -> Callable[..., str]:
    """Build a method `name(self, **arguments) -> str` that runs one tool (execution only: no schema is derived).

    Args:
        name: the exposed tool name (a Python identifier: TRL calls tools by attribute).
        description: the tool's description (the docstring).
        call: `(env, name, arguments) -> text` run when the model calls the tool.

    Returns:
        A function to set on the environment class.

    Raises:
        EnvironmentSetupError: the name is not a Python identifier.
    """
    if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_") or name in ("reset", "get_reward"):
        raise EnvironmentSetupError(
            f"tool name {name!r} cannot become an environment method: TRL calls tools by method name, which must be a "
            "Python identifier that does not start with '_' and is not 'reset' or 'get_reward'")

    def method(self: Any, **arguments: Any) -> str:
        return call(self, name, arguments)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = " ".join(str(description).split()) or f"The {name} tool."
    return method


class RolloutState:
    """One rollout's MCP session, task and calls (what reward functions read through `env.state`)."""

    def __init__(self, factory: MCPEnvironmentFactory, servers: Sequence[str], tools: Sequence[OpenAITool] = (),
                 subset: Mapping[str, Sequence[str]] | None = None) -> None:
        self.factory = factory
        self.servers = list(servers)
        self.tools = list(tools)
        self.subset = _subset(subset)
        self.session: ToolSession | None = None
        self.task: Task | None = None
        self.index: ToolIndex = ToolIndex.from_openai(self.tools, self.servers)
        self.calls: list[CallRecord] = []
        self._judgements: dict[str, Judgement] = {}

    def reset(self, task: Task) -> None:
        """Close the previous session, open a fresh one (fresh workspace) and write the task's setup files.

        Raises:
            EnvironmentSetupError: the task's servers or tool subset are not this environment's (a row routed to
                another task's environment), or the workspace cannot be prepared.
        """
        if sorted(dict.fromkeys(task.servers)) != sorted(self.servers) or _subset(task.tools) != self.subset:
            raise EnvironmentSetupError(
                f"task {task.id!r} needs environment {task_environment_key(task)!r}, not "
                f"{environment_key(self.servers, self.subset)!r}: route rows by training.environment."
                "task_environment_key (the `environment` column)")
        self.close()
        self.task = task
        self.calls = []
        self._judgements = {}
        try:
            self.session = self.factory.loop.run(self.factory.pool.open_session(self.servers, self.subset))
            self.index = ToolIndex(self.session.refs.values(), self.session.servers)
            if task.setup_files:
                self.factory.loop.run(self.session.setup_workspace(task.setup_files))
        except CollectorError as exc:
            raise EnvironmentSetupError(f"cannot prepare the workspace of task {task.id!r}: {exc}") from exc

    def call(self, name: str, arguments: dict[str, Any]) -> str:
        """Run one tool call by the episode's rules; errors come back as `Error: ...` text the model can read.

        Args:
            name: the exposed tool name.
            arguments: the arguments TRL decoded from the model's call.

        Returns:
            The tool's output, or the error message (the same text collection shows for the same call).
        """
        record = parse_call(name, arguments, self.index, call_id=f"call_{len(self.calls)}")
        self.calls.append(record)
        if record.malformed or record.server is None or record.arguments is None:
            return str(record.message)
        if self.session is None:
            record.error_kind = "protocol_error"
            record.message = "Error: the environment has no session (reset() was not called)"
            return record.message
        try:
            out = self.factory.loop.run(self.session.call_tool(record.server, record.tool, record.arguments))
        except CollectorError as exc:
            record.error_kind = "protocol_error"
            record.message = f"Error: {exc}"
            return record.message
        record.error_kind = out.error_kind if out.error_kind is not None or not out.is_error else "tool_error"
        record.message = tool_message(out.text, out.is_error)
        record.duration_s = out.duration_s
        return record.message

    def judge(self, final_answer: str = "", calls: Sequence[CallRecord] | None = None) -> Judgement:
        """The episode core's judgement of this rollout (cached per final answer and calls).

        Args:
            final_answer: the completion's final assistant text ("" when it ended without one).
            calls: every call of the completion (default: the calls this environment ran).
        """
        calls = list(self.calls if calls is None else calls)
        key = json.dumps([final_answer, [(c.name, c.raw_arguments, c.error_kind) for c in calls]])
        if key in self._judgements:
            return self._judgements[key]
        if self.task is None or self.session is None:
            raise EnvironmentSetupError("judge() before reset(): the rollout has no task")
        judgement = self.factory.loop.run(self._judge(self.task, final_answer, calls))
        self._judgements[key] = judgement
        return judgement

    def verdict(self, final_answer: str = "") -> Verdict:
        """The task's verifier on this rollout (the verdict of `judge`)."""
        return self.judge(final_answer).verdict

    async def _judge(self, task: Task, final_answer: str, calls: list[CallRecord]) -> Judgement:
        assert self.session is not None
        session = self.session
        needs_files = task.verifier.type in ("file_state", "mutation_score") or bool(task.verifier.solution_path)
        files = await session.snapshot_files() if needs_files and FILES_SERVER in session.servers else None
        run_tests = session.run_tests if EXEC_SERVER in session.servers else None
        run_python = session.run_python if EXEC_SERVER in session.servers else None
        return await judge(task, calls, final_answer, files=files, run_tests=run_tests, run_python=run_python)

    def close(self) -> None:
        """Close the session (its workspace goes with it)."""
        if self.session is not None:
            session, self.session = self.session, None
            try:
                self.factory.loop.run(session.aclose(), timeout=30)
            except Exception as exc:  # noqa: BLE001 - closing is best effort; a dead server must not stop training
                logger.warning("closing an MCP session failed: %s", exc)


class MCPEnvironment:
    """Base of the generated environment classes; TRL calls `reset(**row)` before each rollout."""

    _factory: MCPEnvironmentFactory
    _servers: tuple[str, ...] = ()
    _tools: tuple[OpenAITool, ...] = ()
    _tool_subset: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def __init__(self) -> None:
        self.state = RolloutState(self._factory, self._servers, self._tools, dict(self._tool_subset))

    def reset(self, **row: Any) -> str | None:
        """Start a rollout for a GRPO row: validate its task, open a fresh session and prepare the workspace.

        Args:
            **row: the dataset row (`task` is required; `tools`, when present, are checked against the live
                servers' tools; `prompt` is ignored).

        Returns:
            None: the prompt already holds the task.
        """
        task = row.get("task")
        if not isinstance(task, dict):
            raise EnvironmentSetupError("a GRPO row must carry a 'task' dict (build it with 'mcpgym dataset grpo')")
        tools = row.get("tools")
        if tools and list(tools) != list(self._tools) and not self._factory.warned_tools:
            self._factory.warned_tools = True
            logger.warning("the GRPO rows' tools differ from the live %s servers' tools: the policy is shown the live "
                           "tools (the servers changed since the episodes were collected?)",
                           environment_key(self._servers, dict(self._tool_subset)))
        self.state.reset(Task.model_validate(task))
        return None


def _call_tool(env: MCPEnvironment, name: str, arguments: dict[str, Any]) -> str:
    return env.state.call(name, arguments)


class MCPEnvironmentFactory:
    """Builds MCP environments for TRL: one class per server set and tool subset, methods from the live tool lists.

    Args:
        servers: name -> spec of the MCP servers (None: the collector's managed `mcpgym serve all` gateway).
        settings: collector settings (timeouts, output budget).

    Example:
        factory = MCPEnvironmentFactory()
        trainer = GRPOTrainer(..., environment_factory=factory.factories_for(train["task"]))
        use_mcp_schemas(trainer, factory)
    """

    def __init__(self, servers: Mapping[str, ServerSpec] | None = None, *,
                 settings: CollectorSettings | None = None) -> None:
        self.loop = LoopThread()
        self._classes: dict[str, type[MCPEnvironment]] = {}
        self.tools: dict[str, list[OpenAITool]] = {}
        self.warned_tools = False

        async def _start() -> ToolPool:
            pool = ToolPool(servers, settings=settings)
            await pool.start()
            return pool

        try:
            self.pool = self.loop.run(_start())
        except CollectorError as exc:
            self.loop.stop()
            raise EnvironmentSetupError(f"cannot start the MCP servers: {exc}") from exc

    def environment_class(self, servers: Sequence[str], tools: Mapping[str, Sequence[str]] | None = None
                          ) -> type[MCPEnvironment]:
        """The generated environment class for a set of servers and a tool subset (listed once, then cached).

        Args:
            servers: the server names.
            tools: server -> the tool names offered (a task's `tools`); a server not in it offers all its tools.

        Raises:
            EnvironmentSetupError: a server is unknown or unreachable, the subset names a server or tool the servers
                do not have, or a tool cannot become a method.
        """
        key = environment_key(servers, tools)
        if key in self._classes:
            return self._classes[key]
        names = sorted(dict.fromkeys(servers))
        subset = _subset(tools)

        async def _list() -> list[OpenAITool]:
            async with self.pool.session(names, tools=subset) as session:
                return [dict(t) for t in session.tools]  # type: ignore[misc]

        try:
            offered = self.loop.run(_list())
        except CollectorError as exc:
            raise EnvironmentSetupError(f"cannot list the tools of environment {key!r}: {exc}") from exc
        namespace: dict[str, Any] = {"_factory": self, "_servers": tuple(names), "_tools": tuple(offered),
                                     "_tool_subset": tuple(subset.items()), "__doc__": f"MCP environment {key}."}
        for tool in offered:
            fn = tool["function"]
            namespace[fn["name"]] = make_tool_method(fn["name"], fn.get("description") or "", _call_tool)
        cls = type("MCPEnvironment_" + re.sub(r"\W", "_", key), (MCPEnvironment,), namespace)
        self._classes[key] = cls
        self.tools[key] = offered
        return cls

    def factories(self, server_sets: Sequence[Sequence[str]]) -> dict[str, Callable[[], MCPEnvironment]]:
        """TRL's `environment_factory` dict: `environment_key(servers)` -> class, for each server set (all tools)."""
        return {environment_key(s): self.environment_class(s) for s in server_sets}

    def factories_for(self, tasks: Iterable[Task | Mapping[str, Any]]) -> dict[str, Callable[[], MCPEnvironment]]:
        """TRL's `environment_factory` dict for the tasks of a GRPO dataset: `task_environment_key(task)` -> class,
        one per distinct server set and tool subset (TRL renders one tool list per environment)."""
        out: dict[str, Callable[[], MCPEnvironment]] = {}
        for task in tasks:
            if isinstance(task, Task):
                servers, subset = task.servers, task.tools
            else:
                servers, subset = list(task.get("servers") or []), dict(task.get("tools") or {})
            key = environment_key(servers, subset)
            if key not in out:
                out[key] = self.environment_class(servers, subset)
        return out

    def close(self) -> None:
        """Stop the servers (managed gateway) and the loop."""
        try:
            self.loop.run(self.pool.aclose(), timeout=60)
        finally:
            self.loop.stop()


def use_mcp_schemas(trainer: Any, factory: MCPEnvironmentFactory) -> None:
    """Make a GRPOTrainer show the policy the MCP tools' own schemas, as collection and SFT do.

    TRL keeps, per environment name, the list of tools it renders into that environment's prompts and uses to read
    the model's responses (`GRPOTrainer._env_tools`); it builds it from the environment's methods. This replaces
    each list by the environment's OpenAI tool dicts (the schemas of `mcp_tool_to_openai`); the methods stay in
    TRL's per-rollout tool dicts, which only execute calls.

    Args:
        trainer: a `trl.GRPOTrainer` built with `environment_factory=factory.factories(...)`.
        factory: the factory whose classes the trainer uses.

    Raises:
        EnvironmentSetupError: the trainer does not keep per-environment tools the way TRL 1.16 does (another TRL
            version): training would show other schemas, so it does not start.
    """
    env_tools = getattr(trainer, "_env_tools", None)
    factories = getattr(trainer, "environment_factories", None)
    if not isinstance(env_tools, dict) or not isinstance(factories, dict):
        raise EnvironmentSetupError(
            "this TRL version keeps no per-environment tool list (GRPOTrainer._env_tools); mcpgym needs TRL 1.16's "
            "environment_factory handling to show the MCP tools' own schemas")
    by_class = {cls: key for key, cls in factory._classes.items()}
    for name, env_factory in factories.items():
        key = by_class.get(env_factory)
        if key is None:
            raise EnvironmentSetupError(f"environment {name!r} was not made by this MCPEnvironmentFactory")
        standalone = [t for t in env_tools.get(name, []) if getattr(t, "__self__", None) is None
                      or not isinstance(t.__self__, MCPEnvironment)]
        env_tools[name] = [*standalone, *factory.tools[key]]
