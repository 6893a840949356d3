"""The rules of an episode, written once: how a call is read, which calls are malformed, how an episode is judged.

Collection (`collector.loop.run_episode`), the GRPO environment (`training.environment`), the TRL reward functions
(`training.rewards`), the dataset filters and `mcpgym reverify` all use these functions, so a reward means the same
thing wherever it is computed (docs/architecture.md, "The episode core").

Public API:

    MALFORMED_KINDS                                   error kinds of a call the model wrote wrongly
    ToolIndex(refs, servers) / ToolIndex.from_openai(tools, servers)
                                                      the tools offered: exposed name -> server, tool, schema
    parse_call(name, arguments, tools, *, call_id="", parse_error=None) -> CallRecord
                                                      read one call (once): namespace split, JSON, schema check
    tool_message(text, is_error) -> str               what the model reads back from a call
    read_completion(messages, tools) -> Transcript    read an assistant/tool message list (a TRL completion)
    calls_from_rows(rows) -> list[CallRecord]         the calls of a stored episode (its tool_calls rows)
    code_reward(report) -> float                      the code reward of a run_tests report
    score(task, verdict, calls, final_answer, *, test_report=None) -> Judgement
                                                      the reward components of a judged episode
    async judge(task, calls, final_answer, *, files=None, run_tests=None) -> Judgement
                                                      run the task's verifier, then `score`
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from collector import rewards
from collector.chat_template import parse_completion
from collector.tools import MALFORMED_KINDS, NAMESPACE_SEP, ToolRef, check_arguments, split_name
from collector.types import Message, OpenAITool, Verdict

__all__ = [
    "MALFORMED_KINDS",
    "NAMESPACE_SEP",
    "CallRecord",
    "Judgement",
    "MessageRecord",
    "ToolIndex",
    "Transcript",
    "calls_from_rows",
    "code_reward",
    "judge",
    "parse_call",
    "read_completion",
    "score",
    "tool_message",
    "verify_context_calls",
]

RunTests = Callable[[str, str, str | None], Awaitable[dict[str, Any]]]

_PARSE_MESSAGES = {
    "invalid_json": "the <tool_call> block is not a JSON object",
    "missing_name": "the <tool_call> block has no \"name\"",
    "invalid_arguments": "the <tool_call> block's \"arguments\" is missing or not a JSON object",
    "unclosed_tag": "the <tool_call> block is never closed with </tool_call>",
}
_ASSERTION = re.compile(r"^\s*AssertionError\b")


@dataclass
class CallRecord:
    """One tool call as the model emitted it, read once.

    Attributes:
        id: the call id.
        name: the name as emitted (possibly `server__tool`).
        raw_arguments: the arguments exactly as emitted (a JSON string, or a malformed block's verbatim text).
        arguments: the decoded arguments; None when they are not a JSON object.
        server: the server of the tool (None when the name names no offered tool).
        tool: the tool's own (un-namespaced) name.
        error_kind: None for a call that ran without error; one of MALFORMED_KINDS for a call the model wrote
            wrongly (it is never sent to a server); else the tool's or the server's error ("tool_error", "timeout",
            "protocol_error").
        message: what the model reads back: the tool's output, or an error it can act on.
        turn: the assistant turn (0-based) that made the call.
        duration_s: wall time of the call.
        from_text: read from `<tool_call>` text left in an assistant message's content (a trainer that could not
            parse the turn hands it over as text and runs none of its calls).
    """

    id: str
    name: str
    raw_arguments: str
    arguments: dict[str, Any] | None
    server: str | None
    tool: str
    error_kind: str | None = None
    message: str | None = None
    turn: int = 0
    duration_s: float = 0.0
    from_text: bool = False

    @property
    def malformed(self) -> bool:
        """The model wrote the call wrongly (unknown tool, bad JSON, arguments that break the schema, bad block)."""
        return self.error_kind in MALFORMED_KINDS

    @property
    def is_error(self) -> bool:
        """The call failed, for whatever reason."""
        return self.error_kind is not None

    @property
    def ok(self) -> bool:
        """A correct tool call: well formed and ran without error (what the tool-use reward counts)."""
        return self.error_kind is None

    def store_row(self) -> dict[str, Any]:
        """The call as a row of the store's `tool_calls` table."""
        return {
            "call_id": self.id, "turn": self.turn, "server": self.server, "tool": self.tool or self.name,
            "arguments": self.raw_arguments, "result": self.message, "is_error": int(self.is_error),
            "malformed": int(self.malformed), "error_kind": self.error_kind, "duration_s": round(self.duration_s, 6),
        }


@dataclass
class MessageRecord:
    """One message of an episode: the OpenAI message itself, and what is recorded about it beside it.

    Attributes:
        message: the OpenAI chat message, exactly as the policy produced or read it (no extra keys).
        malformed: the assistant output held a call the model wrote wrongly.
        latency_s: time the policy took for this turn (assistant messages).
        tokens: the turn's sampled tokens where the policy reported them (`TurnTokens.record()`).
    """

    message: dict[str, Any]
    malformed: bool = False
    latency_s: float | None = None
    tokens: dict[str, Any] | None = None

    def store_row(self) -> dict[str, Any]:
        """The message in the form `Store.finish_episode` takes (annotations in their own columns)."""
        row = dict(self.message)
        if self.malformed:
            row["malformed"] = True
        if self.latency_s is not None:
            row["latency_s"] = round(self.latency_s, 6)
        if self.tokens is not None:
            row["tokens"] = self.tokens
        return row


class ToolIndex:
    """The tools offered in an episode: exposed name -> `ToolRef` (server, MCP name, input schema).

    Args:
        refs: the offered tools.
        servers: the servers attached to the episode, in order (decides the namespace split).
    """

    def __init__(self, refs: Iterable[ToolRef], servers: Sequence[str]) -> None:
        self.refs: dict[str, ToolRef] = {r.exposed: r for r in refs}
        self.servers = tuple(servers)

    @classmethod
    def from_openai(cls, tools: Sequence[Mapping[str, Any]], servers: Sequence[str]) -> ToolIndex:
        """The index of OpenAI tools as offered (a stored episode's `tools`, a GRPO row's `tools`).

        Args:
            tools: OpenAI function tools (`{"type": "function", "function": {...}}`) or bare function specs.
            servers: the servers attached (the task's `servers`).
        """
        servers = list(dict.fromkeys(servers))
        refs = []
        for tool in tools:
            fn = tool.get("function", tool)
            exposed = str(fn.get("name") or "")
            server, name = split_name(exposed, servers)
            refs.append(ToolRef(exposed, server or "", name, dict(fn.get("parameters") or {"type": "object"})))
        return cls(refs, servers)

    def get(self, name: str) -> ToolRef | None:
        """The tool an emitted name refers to, or None."""
        return self.refs.get(name)

    def split(self, name: str) -> tuple[str | None, str]:
        """`(server, tool)` of an emitted name: the offered tool's; for a name not offered, no server and the name
        with an attached server's prefix removed."""
        ref = self.refs.get(name)
        if ref is not None:
            return ref.server or None, ref.tool
        return None, split_name(name, self.servers)[1]  # not offered: no server ran it


def parse_call(name: str, arguments: Any, tools: ToolIndex, *, call_id: str = "", parse_error: str | None = None,
               turn: int = 0) -> CallRecord:
    """Read one call, once: which tool it names, its decoded arguments, and whether the model wrote it wrongly.

    Args:
        name: the name as emitted.
        arguments: the arguments as emitted (a JSON string) or already decoded (a dict, as TRL hands them).
        tools: the tools offered.
        call_id: the call's id.
        parse_error: the kind the text parser gave the `<tool_call>` block (`ParsedCompletion.malformed`), if any;
            such a call is malformed whatever its name and arguments.
        turn: the assistant turn that made the call.

    Returns:
        The call; a malformed one carries its kind and the message the model reads back.
    """
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    if arguments is None:
        raw = ""
    ref = tools.get(name)
    server, tool = tools.split(name)
    record = CallRecord(id=call_id, name=name, raw_arguments=raw, arguments=None, server=server, tool=tool, turn=turn)
    if parse_error is not None:
        record.error_kind = parse_error if parse_error in MALFORMED_KINDS else "invalid_json"
        why = _PARSE_MESSAGES.get(record.error_kind, "the <tool_call> block could not be read")
        record.message = (f"Error: {why}. Write each call as <tool_call>{{\"name\": <tool name>, \"arguments\": "
                          "<JSON object>}</tool_call>.")
        decoded = _decode(raw)
        record.arguments = decoded if isinstance(decoded, dict) and "arguments" not in decoded else None
        return record
    if ref is None:
        offered = ", ".join(sorted(tools.refs)) or "none"
        record.error_kind = "unknown_tool"
        record.message = f"Error: unknown tool '{name}'. Available tools: {offered}."
        decoded = _decode(raw) if isinstance(arguments, str) else arguments
        record.arguments = decoded if isinstance(decoded, dict) else None
        return record
    args, kind, message = check_arguments(ref, arguments)
    record.arguments = args
    record.error_kind = kind
    record.message = message
    return record


def tool_message(text: str, is_error: bool) -> str:
    """What the model reads back from a call: the tool's output; an error always starts with "Error" (so that a
    reader of the conversation alone, such as a reward function without the environment, can tell)."""
    if is_error and not text.lstrip().startswith("Error"):
        return f"Error: {text}"
    return text


def _decode(text: str) -> Any:
    try:
        return json.loads(text) if text.strip() else {}
    except ValueError:
        return None


@dataclass
class Transcript:
    """A completion read by the episode's rules.

    Attributes:
        calls: every call, in order (results and errors filled in from the tool messages that follow them).
        final_answer: the last assistant text, when the completion ended on an assistant turn without calls.
    """

    calls: list[CallRecord] = field(default_factory=list)
    final_answer: str = ""


def _text(content: Any) -> str:
    if isinstance(content, list):  # content parts: keep the text
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def read_completion(messages: Sequence[Mapping[str, Any]] | str, tools: ToolIndex) -> Transcript:
    """Read assistant and tool messages (a TRL completion, or an episode's messages after its prompt).

    An assistant turn's structured `tool_calls` are read with `parse_call`. An assistant text that still holds
    `<tool_call>` blocks (TRL falls back to plain text when a block cannot be parsed) is read with the collector's
    text parser, exactly as the local policy reads its model's output: its blocks are the turn's calls, and the
    turn is not a final answer. Tool messages that follow a turn are the results of its calls, in order.

    Args:
        messages: the messages (or one plain-text completion).
        tools: the tools offered.

    Returns:
        The calls and the final answer; a call's error kind is only its malformedness (the executor knows the rest).
    """
    if isinstance(messages, str):
        messages = [{"role": "assistant", "content": messages}]
    out = Transcript()
    pending: list[CallRecord] = []
    turn = -1
    for msg in messages:
        role = msg.get("role")
        if role == "assistant":
            turn += 1
            content = _text(msg.get("content"))
            calls = list(msg.get("tool_calls") or [])
            parse_errors: dict[int, str] = {}
            from_text = False
            if not calls and "<tool_call>" in content:
                from_text = True
                parsed = parse_completion(content)
                calls = [dict(c) for c in parsed.tool_calls]
                parse_errors = {int(m["index"]): str(m["kind"]) for m in parsed.malformed}
                content = parsed.content or ""
            pending = []
            for i, call in enumerate(calls):
                fn = call.get("function", call)
                record = parse_call(str(fn.get("name") or ""), fn.get("arguments"), tools,
                                    call_id=str(call.get("id") or f"call_{turn}_{i}"),
                                    parse_error=parse_errors.get(i), turn=turn)
                record.from_text = from_text
                out.calls.append(record)
                pending.append(record)
            out.final_answer = "" if calls else content.strip()
        elif role == "tool" and pending:
            record = pending.pop(0)
            if not record.malformed:
                record.message = _text(msg.get("content"))
    return out


def calls_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[CallRecord]:
    """The calls of a stored episode, from its `tool_calls` rows (error kinds as recorded, not judged again)."""
    out = []
    for r in rows:
        raw = r.get("arguments")
        raw = "" if raw is None else raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False)
        decoded = _decode(raw)
        out.append(CallRecord(
            id=str(r.get("call_id") or ""), name=str(r.get("tool") or ""), raw_arguments=raw,
            arguments=decoded if isinstance(decoded, dict) else None, server=r.get("server") or None,
            tool=str(r.get("tool") or ""), error_kind=r.get("error_kind") or ("tool_error" if r.get("is_error") else None),
            message=r.get("result"), turn=int(r.get("turn") or 0), duration_s=float(r.get("duration_s") or 0.0),
        ))
    return out


def verify_context_calls(calls: Iterable[CallRecord]) -> list[dict[str, Any]]:
    """The calls as a verifier sees them: `{"name": un-namespaced tool name, "arguments": dict or None, "turn": the
    assistant turn that made it}` (tool_use checks that independent calls came in one turn)."""
    return [{"name": c.tool, "arguments": c.arguments, "turn": c.turn} for c in calls]


def code_reward(report: Mapping[str, Any] | None) -> float:
    """The code reward of a `run_tests` report: the mean over tests of 1 (passed), 0 (failed an assertion) and
    -0.5 (raised anything else).

    When the whole run failed (the solution or the test code raised on load, the run timed out or was cut, no
    test ran, or there was no code to test: `report` None) every test counts -0.5. A failure the report does not
    list (it lists the first 20) counts as a failed assertion.
    """
    if not report:
        return rewards.CODE_CRASH
    total = int(report.get("total") or 0)
    if total <= 0 or report.get("error") or report.get("timed_out"):
        return rewards.CODE_CRASH
    passed = min(max(int(report.get("passed") or 0), 0), total)
    errored = sum(1 for f in report.get("failures") or [] if not _ASSERTION.match(str(_failure_error(f))))
    errored = min(errored, total - passed)
    return (passed * rewards.CODE_PASS + errored * rewards.CODE_CRASH) / total


def _failure_error(failure: Any) -> str:
    if isinstance(failure, Mapping):
        return str(failure.get("error") or "")
    return str(getattr(failure, "error", "") or "")


@dataclass
class Judgement:
    """An episode judged: the verdict, the reward components and their sum.

    Attributes:
        verdict: the task's verifier's verdict.
        components: "success", "efficiency", "tool_use", "format", and "code" for unit-test tasks.
        reward: the sum of the components.
        test_report: the `run_tests` report the verifier got (unit-test tasks), else None.
    """

    verdict: Verdict
    components: dict[str, float]
    reward: float
    test_report: dict[str, Any] | None = None

    @property
    def tests_trusted(self) -> bool | None:
        """Whether the unit tests ran in a sandbox that isolates them (None: no tests ran or the report says
        nothing; a report without the flag is not trusted)."""
        if self.test_report is None:
            return None
        return self.test_report.get("trusted") is True


def score(task: Any, verdict: Verdict, calls: Sequence[CallRecord], final_answer: str, *,
          test_report: Mapping[str, Any] | None = None) -> Judgement:
    """The reward components of a judged episode (`collector.rewards` holds the formulas).

    Args:
        task: the Task (or its dict): `optimal_steps` and the verifier's type are read.
        verdict: the verifier's verdict.
        calls: every call the model emitted, malformed ones included.
        final_answer: the final assistant text ("" when the episode ended without one).
        test_report: the run_tests report (unit-test tasks).
    """
    optimal = int(_field(task, "optimal_steps") or 0)
    verifier = _field(task, "verifier")
    vtype = verifier.get("type") if isinstance(verifier, Mapping) else getattr(verifier, "type", None)
    code = code_reward(test_report) if vtype == "unit_tests" else None
    components = rewards.reward_components(
        passed=bool(verdict["passed"]), tool_calls=len(calls), ok_tool_calls=sum(1 for c in calls if c.ok),
        malformed_calls=sum(1 for c in calls if c.malformed), has_final_answer=bool(final_answer.strip()),
        optimal_steps=optimal, code=code,
    )
    report = dict(test_report) if test_report is not None else None
    return Judgement(verdict, components, rewards.total_reward(components), report)


def _field(task: Any, name: str) -> Any:
    return task.get(name) if isinstance(task, Mapping) else getattr(task, name, None)


async def judge(task: Any, calls: Sequence[CallRecord], final_answer: str, *,
                files: dict[str, str] | None = None, run_tests: RunTests | None = None,
                run_python: Any = None) -> Judgement:
    """Judge an episode: run the task's verifier on its final answer, final files and calls, then score it.

    Args:
        task: the Task (or its dict).
        calls: every call the model emitted, in order.
        final_answer: the final assistant text ("" when none).
        files: the workspace's final files (file_state tasks).
        run_tests: runs unit tests in the sandbox (unit-test tasks); its report is kept for the code reward.
        run_python: runs a program in the sandbox (mutation_score tasks): async (code, timeout_s) -> result.

    Returns:
        The verdict, the reward components and the reward.

    Raises:
        VerifierError: the task's verifier spec is invalid.
    """
    from collector.verifiers import verify
    from collector.verifiers.spec import VerifierSpec, VerifyContext

    spec = _field(task, "verifier")
    if not isinstance(spec, VerifierSpec):
        spec = VerifierSpec.model_validate(spec)
    reports: list[dict[str, Any]] = []
    recording: RunTests | None = None
    if run_tests is not None:
        inner = run_tests

        async def recording(code: str, test_code: str, entry_point: str | None) -> dict[str, Any]:
            report = await inner(code, test_code, entry_point)
            reports.append(dict(report))
            return report

    ctx = VerifyContext(final_answer=final_answer, files=files, tool_calls=verify_context_calls(calls),
                        run_tests=recording, run_python=run_python)
    verdict = await verify(spec, ctx)
    return score(task, verdict, calls, final_answer, test_report=reports[-1] if reports else None)


def plain_messages(records: Iterable[MessageRecord]) -> list[Message]:
    """The OpenAI messages of some records."""
    return [r.message for r in records]  # type: ignore[misc]


def offered(tools: Sequence[OpenAITool]) -> list[str]:
    """The exposed names of some OpenAI tools."""
    return [str(t["function"]["name"]) for t in tools]
