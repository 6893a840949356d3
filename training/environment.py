"""The MCP GRPO environment: a TRL `environment_factory` whose tool methods are generated from live MCP tool lists.

Each MCP tool a session offers becomes a method of a generated class, with a real signature (parameters and type hints
from the tool's JSON schema) and a Google-style docstring, so TRL's tool calling renders the same schemas the
collector offers. Each rollout uses one MCP session (one workspace) opened by `reset()`, which also writes the task's
setup files; tool calls go to the same sandboxed servers as collection. The verdict comes from the task's verifier
(`collector.verifiers.verify`) over the rollout's final answer, calls and final workspace.

TRL discovers every public method of the class as a tool, so the rollout's bookkeeping lives on `env.state`
(a `RolloutState`), not in methods. TRL's `get_reward()` takes no arguments and cannot see the completion, while most
verifiers judge the final answer; success is therefore scored by `training.rewards.success_reward`, which hands the
completion's final answer to `env.state.verdict(...)`.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import keyword
import logging
import re
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Literal, TypeVar

from collector.errors import CollectorError
from collector.pool import ToolPool, ToolSession
from collector.servers import ServerSpec
from collector.settings import CollectorSettings
from collector.tasks.model import Task, VerifierSpec, VerifyContext
from collector.types import Verdict
from training.errors import EnvironmentSetupError

__all__ = [
    "LoopThread",
    "MCPEnvironment",
    "MCPEnvironmentFactory",
    "RolloutState",
    "environment_key",
    "make_tool_method",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_JSON_TYPES: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool, "object": dict,
                               "array": list}
_SECTION = re.compile(r"^\s*(Args|Returns|Raises):", re.MULTILINE)


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


def environment_key(servers: Sequence[str]) -> str:
    """The name of the environment for a set of servers (a GRPO row's `environment` column): `exec+files`."""
    return "+".join(sorted(dict.fromkeys(servers))) or "none"


def _python_type(schema: dict[str, Any]) -> Any:
    if isinstance(schema.get("enum"), list) and schema["enum"] and all(
            isinstance(v, (str, int, float, bool)) for v in schema["enum"]):
        return Literal.__getitem__(tuple(schema["enum"]))  # a Literal built at run time
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    if kind == "array":
        items = schema.get("items")
        return list.__class_getitem__(_python_type(items)) if isinstance(items, dict) and items.get("type") else list
    if kind == "object":
        return dict
    return _JSON_TYPES.get(str(kind), str)


def _one_line(text: str) -> str:
    return _SECTION.sub(lambda m: m.group(1).lower() + " -", " ".join(str(text).split()))


def make_tool_method(name: str, description: str, parameters: dict[str, Any],
                     call: Callable[[Any, str, dict[str, Any], str | None], str]) -> Callable[..., str]:
    """Build a method `name(self, <params>) -> str` for one tool, with a signature and docstring from its schema.

    Args:
        name: the exposed tool name (a Python identifier).
        description: the tool's description (first docstring line).
        parameters: the tool's JSON schema (`properties`, `required`).
        call: `(env, name, arguments, problem) -> text` run when the model calls the tool; `problem` says why the
            arguments do not fit the signature (None when they do).

    Returns:
        A function to set on the environment class.

    Raises:
        EnvironmentSetupError: the name or a parameter name is not a Python identifier.
    """
    if not name.isidentifier() or keyword.iskeyword(name):
        raise EnvironmentSetupError(f"tool name {name!r} is not a Python identifier; it cannot become a method")
    props: dict[str, Any] = dict(parameters.get("properties") or {})
    required = set(parameters.get("required") or [])
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    annotations: dict[str, Any] = {}
    arg_lines = []
    for pname in sorted(props, key=lambda p: p not in required):  # required first, as Python demands
        if not pname.isidentifier() or keyword.iskeyword(pname) or pname == "self":
            raise EnvironmentSetupError(f"tool {name!r} has parameter {pname!r}, which is not a Python identifier")
        schema = props[pname] if isinstance(props[pname], dict) else {}
        hint = _python_type(schema)
        if pname in required:
            params.append(inspect.Parameter(pname, inspect.Parameter.KEYWORD_ONLY, annotation=hint))
        else:
            hint = hint | None
            params.append(inspect.Parameter(pname, inspect.Parameter.KEYWORD_ONLY, annotation=hint, default=None))
        annotations[pname] = hint
        arg_lines.append(f"    {pname}: {_one_line(schema.get('description') or f'The {pname} argument.')}")
    annotations["return"] = str
    signature = inspect.Signature(params, return_annotation=str)

    def method(self: Any, **arguments: Any) -> str:
        try:
            signature.bind(self, **arguments)
        except TypeError as exc:
            return call(self, name, arguments, f"bad arguments for {name}: {exc}. Expected: {signature}")
        return call(self, name, {k: v for k, v in arguments.items() if v is not None or k in required}, None)

    method.__name__ = method.__qualname__ = name
    method.__signature__ = signature  # type: ignore[attr-defined]
    method.__annotations__ = annotations
    doc = _one_line(description) or f"The {name} tool."
    method.__doc__ = doc + ("\n\nArgs:\n" + "\n".join(arg_lines) if arg_lines else "") + \
        "\n\nReturns:\n    The tool's output as text."
    return method


class RolloutState:
    """One rollout's MCP session, task and call log (what reward functions read through `env.state`)."""

    def __init__(self, factory: MCPEnvironmentFactory, servers: Sequence[str]) -> None:
        self.factory = factory
        self.servers = list(servers)
        self.session: ToolSession | None = None
        self.task: Task | None = None
        self.call_log: list[dict[str, Any]] = []
        self._verdicts: dict[str, Verdict] = {}

    def reset(self, task: Task) -> None:
        """Close the previous session, open a fresh one (fresh workspace) and write the task's setup files."""
        self.close()
        self.task = task
        self.call_log = []
        self._verdicts = {}
        try:
            self.session = self.factory.loop.run(self.factory.pool.open_session(self.servers))
            if task.setup_files:
                self.factory.loop.run(self.session.setup_workspace(task.setup_files))
        except CollectorError as exc:
            raise EnvironmentSetupError(f"cannot prepare the workspace of task {task.id!r}: {exc}") from exc

    def call(self, name: str, arguments: dict[str, Any], problem: str | None = None) -> str:
        """Run one tool call through the session; errors come back as `Error: ...` text the model can read.

        Args:
            name: the exposed tool name.
            arguments: the arguments the model gave.
            problem: set when the arguments do not fit the tool's signature: the call is logged as an error and not
                sent.
        """
        if problem is not None:
            self.call_log.append({"name": name, "arguments": arguments, "is_error": True})
            return f"Error: {problem}"
        if self.session is None:
            return "Error: the environment has no session (reset() was not called)"
        try:
            result = self.factory.loop.run(self.session.call(name, json.dumps(arguments)))
        except CollectorError as exc:
            self.call_log.append({"name": name, "arguments": arguments, "is_error": True})
            return f"Error: {exc}"
        self.call_log.append({"name": name, "arguments": arguments, "is_error": result.is_error})
        text = result.text
        return text if not result.is_error or text.startswith("Error") else f"Error: {text}"

    def verdict(self, final_answer: str = "") -> Verdict:
        """The task's verifier on this rollout (cached per final answer).

        Args:
            final_answer: the completion's last assistant text.
        """
        if final_answer in self._verdicts:
            return self._verdicts[final_answer]
        if self.task is None or self.session is None:
            raise EnvironmentSetupError("verdict() before reset(): the rollout has no task")
        verdict = self.factory.loop.run(self._verify(self.task.verifier, final_answer))
        self._verdicts[final_answer] = verdict
        return verdict

    async def _verify(self, spec: VerifierSpec, final_answer: str) -> Verdict:
        from collector.verifiers import verify

        assert self.session is not None
        files = await self.session.snapshot_files() if "files" in self.session.servers else None
        calls = [{"name": c["name"].split("__", 1)[-1], "arguments": c["arguments"]} for c in self.call_log]
        run_tests = self.session.run_tests if "exec" in self.session.servers else None
        ctx = VerifyContext(final_answer=final_answer, files=files, tool_calls=calls, run_tests=run_tests)
        return await verify(spec, ctx)

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

    def __init__(self) -> None:
        self.state = RolloutState(self._factory, self._servers)

    def reset(self, **row: Any) -> str | None:
        """Start a rollout for a GRPO row: validate its task, open a fresh session and prepare the workspace.

        Args:
            **row: the dataset row (`task` is required; `prompt`, `tools` are ignored).

        Returns:
            None: the prompt already holds the task.
        """
        task = row.get("task")
        if not isinstance(task, dict):
            raise EnvironmentSetupError("a GRPO row must carry a 'task' dict (build it with 'mcpgym dataset grpo')")
        self.state.reset(Task.model_validate(task))
        return None


def _call_tool(env: MCPEnvironment, name: str, arguments: dict[str, Any], problem: str | None) -> str:
    return env.state.call(name, arguments, problem)


class MCPEnvironmentFactory:
    """Builds MCP environments for TRL: one class per server set, methods generated from the live tool lists.

    Args:
        servers: name -> spec of the MCP servers (None: the collector's managed `mcpgym serve all` gateway).
        settings: collector settings (timeouts, output budget).

    Example:
        factory = MCPEnvironmentFactory()
        trainer = GRPOTrainer(..., environment_factory=factory.factories([["weather"], ["files", "exec"]]))
    """

    def __init__(self, servers: Mapping[str, ServerSpec] | None = None, *,
                 settings: CollectorSettings | None = None) -> None:
        self.loop = LoopThread()
        self._classes: dict[str, type[MCPEnvironment]] = {}
        self.tools: dict[str, list[dict[str, Any]]] = {}

        async def _start() -> ToolPool:
            pool = ToolPool(servers, settings=settings)
            await pool.start()
            return pool

        try:
            self.pool = self.loop.run(_start())
        except CollectorError as exc:
            self.loop.stop()
            raise EnvironmentSetupError(f"cannot start the MCP servers: {exc}") from exc

    def environment_class(self, servers: Sequence[str]) -> type[MCPEnvironment]:
        """The generated environment class for a set of servers (listed once, then cached).

        Raises:
            EnvironmentSetupError: a server is unknown or unreachable, or a tool cannot become a method.
        """
        key = environment_key(servers)
        if key in self._classes:
            return self._classes[key]
        names = sorted(dict.fromkeys(servers))

        async def _list() -> list[dict[str, Any]]:
            async with self.pool.session(names) as session:
                return [dict(t) for t in session.tools]

        try:
            tools = self.loop.run(_list())
        except CollectorError as exc:
            raise EnvironmentSetupError(f"cannot list the tools of {names}: {exc}") from exc
        namespace: dict[str, Any] = {"_factory": self, "_servers": tuple(names),
                                     "__doc__": f"MCP environment over the {key} server(s)."}
        for tool in tools:
            fn = tool["function"]
            namespace[fn["name"]] = make_tool_method(fn["name"], fn.get("description") or "",
                                                     fn.get("parameters") or {}, _call_tool)
        cls = type("MCPEnvironment_" + re.sub(r"\W", "_", key), (MCPEnvironment,), namespace)
        self._classes[key] = cls
        self.tools[key] = tools
        return cls

    def factories(self, server_sets: Sequence[Sequence[str]]) -> dict[str, Callable[[], MCPEnvironment]]:
        """TRL's `environment_factory` dict: `environment_key(servers)` -> class, for each server set."""
        return {environment_key(s): self.environment_class(s) for s in server_sets}

    def close(self) -> None:
        """Stop the servers (managed gateway) and the loop."""
        try:
            self.loop.run(self.pool.aclose(), timeout=60)
        finally:
            self.loop.stop()

