"""Errors of the tool servers, and the one function that turns them into MCP tool errors.

Hierarchy::

    McpGymServerError
    ├── PathSecurityError      a path is outside the workspace, escapes it through a symlink, or is malformed
    ├── ToolInputError         an argument broke a rule (names the argument and the rule)
    │   ├── NotFoundError      the named file, directory, document or location does not exist
    │   └── ConflictError      the target already exists / the edit text is ambiguous
    ├── WorkspaceError         no workspace for this caller (e.g. sessionless HTTP without a workspace header)
    ├── BackendError           a backend (sandbox, index, remote API) failed; the message says which and why
    │   └── BackendTimeoutError
    ├── ServerUnavailableError a server module is not installed or not built yet
    └── ConfigError            a setting is invalid or a required one (e.g. a token) is missing

Tools raise these; `as_tool_error` (or the `tool_errors` decorator) turns them into the SDK's `ToolError`, which
the client receives as a result with `is_error=True` and a one-line message, never a stack trace.
"""

from __future__ import annotations

import errno
import functools
import inspect
import logging
import re
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar, cast, overload

__all__ = [
    "BackendError",
    "BackendTimeoutError",
    "ConfigError",
    "ConflictError",
    "McpGymServerError",
    "NotFoundError",
    "PathSecurityError",
    "ServerUnavailableError",
    "ToolInputError",
    "WorkspaceError",
    "as_tool_error",
    "tidy_validation_message",
    "tool_errors",
    "validation_message_middleware",
]

_log = logging.getLogger("mcp_servers")

P = ParamSpec("P")
R = TypeVar("R")


class McpGymServerError(Exception):
    """Base class of every error the tool servers raise on purpose."""


class PathSecurityError(McpGymServerError):
    """A path is refused: outside the workspace root, a symlink escape, a NUL byte, or changed during the call."""


class ToolInputError(McpGymServerError):
    """A tool argument broke a rule; the message names the argument and what is accepted."""


class NotFoundError(ToolInputError):
    """The named file, directory, document or location does not exist."""


class ConflictError(ToolInputError):
    """The target already exists, or an edit's text matches more than once."""


class WorkspaceError(McpGymServerError):
    """The caller has no workspace (for example sessionless HTTP without the workspace header)."""


class BackendError(McpGymServerError):
    """A backend (sandbox, search index, remote API) failed."""


class BackendTimeoutError(BackendError):
    """A backend did not answer within its time limit."""


class ServerUnavailableError(McpGymServerError):
    """A server module is not available in this installation."""


class ConfigError(McpGymServerError):
    """A setting is invalid, or a required one is missing."""


_OS_MESSAGES: dict[int, str] = {
    errno.ENOENT: "does not exist",
    errno.EEXIST: "already exists",
    errno.ENOTDIR: "a path component is not a directory",
    errno.EISDIR: "is a directory, not a file",
    errno.ENOTEMPTY: "directory is not empty (pass recursive=true to delete it with its contents)",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ELOOP: "is a symbolic link where a real file or directory is required",
    errno.ENOSPC: "no space left in the workspace",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENAMETOOLONG: "name is too long",
    errno.EINVAL: "invalid argument",
}


def describe_os_error(exc: OSError, what: str | None = None) -> str:
    """A one-line, path-free description of an OS error (the caller's own path label is used instead).

    Args:
        exc: The OS error.
        what: How to name the object in the message, e.g. "path 'a/b.txt'".

    Returns:
        A message such as "path 'a.txt': does not exist".
    """
    reason = _OS_MESSAGES.get(exc.errno or 0, exc.strerror or type(exc).__name__)
    return f"{what}: {reason}" if what else reason


def as_tool_error(exc: BaseException, tool: str | None = None) -> Exception:
    """Map an exception raised inside a tool onto the SDK's `ToolError` (an `is_error` result with a clear message).

    Our own errors keep their message; OS errors become a short description without internal paths; anything else
    becomes a generic message (and is logged with its traceback on the server side only).

    Args:
        exc: The exception the tool raised.
        tool: The tool name, used in the generic message.

    Returns:
        A `mcp.server.mcpserver.exceptions.ToolError` to raise.
    """
    from mcp.server.mcpserver.exceptions import ToolError

    if isinstance(exc, ToolError):
        return exc
    if isinstance(exc, McpGymServerError):
        return ToolError(str(exc))
    if isinstance(exc, OSError):
        return ToolError(describe_os_error(exc))
    if isinstance(exc, TimeoutError):
        return ToolError(f"{tool or 'tool'}: timed out")
    _log.error("tool %s failed unexpectedly", tool, exc_info=exc)
    return ToolError(f"{tool or 'tool'}: internal error ({type(exc).__name__}); the server log has details")


@overload
def tool_errors(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]: ...


@overload
def tool_errors(fn: Callable[P, R]) -> Callable[P, R]: ...


def tool_errors(fn: Callable[P, Any]) -> Callable[P, Any]:
    """Decorate a tool function so that every exception it raises reaches the client via `as_tool_error`.

    Works for sync and async functions and keeps the signature (the SDK builds the input schema from it). The
    docstring, which becomes the description a model reads, is dedented.

    Args:
        fn: The tool function.

    Returns:
        The wrapped function.
    """
    name = getattr(fn, "__name__", "tool")
    if inspect.iscoroutinefunction(fn):
        afn = cast(Callable[P, Coroutine[Any, Any, Any]], fn)

        @functools.wraps(fn)
        async def awrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            try:
                return await afn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a tool error, none a stack trace
                raise as_tool_error(exc, name) from None

        awrapper.__doc__ = inspect.cleandoc(fn.__doc__ or "")
        return awrapper
    sfn = fn

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
        try:
            return sfn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a tool error, none a stack trace
            raise as_tool_error(exc, name) from None

    wrapper.__doc__ = inspect.cleandoc(fn.__doc__ or "")
    return wrapper


_VALIDATION_HEADER = re.compile(r"^Error executing tool (?P<tool>\S+): \d+ validation errors? for \S+$")


def tidy_validation_message(text: str) -> str | None:
    """Rewrite the SDK's pydantic argument-validation message into one line naming each argument and its rule.

    Args:
        text: The text of an `is_error` tool result.

    Returns:
        E.g. "Error executing tool read_text_file: invalid arguments: 'path': Field required; 'head': Input should be
        greater than or equal to 0" (the SDK's prefix is kept, as for every other tool error), or None if `text` is not
        an argument-validation message.
    """
    lines = text.splitlines()
    match = _VALIDATION_HEADER.match(lines[0]) if lines else None
    if match is None:
        return None
    problems: list[str] = []
    i = 1
    while i < len(lines):
        loc = lines[i]
        if loc and not loc.startswith(" ") and i + 1 < len(lines):
            rule = re.sub(r"\s*\[type=.*$", "", lines[i + 1].strip())
            problems.append(f"'{loc}': {rule}")
            i += 2
        else:
            i += 1
    if not problems:
        return None
    return f"Error executing tool {match['tool']}: invalid arguments: " + "; ".join(problems)


def validation_message_middleware() -> Callable[[Any, Any], Coroutine[Any, Any, Any]]:
    """A server middleware that replaces the SDK's multi-line validation errors with `tidy_validation_message`.

    Returns:
        The middleware, for `MCPServer.middleware.append(...)`.
    """

    async def middleware(ctx: Any, call_next: Any) -> Any:
        result = await call_next(ctx)
        if getattr(ctx, "method", None) != "tools/call":
            return result
        if isinstance(result, dict):  # the serialized wire form
            content = result.get("content") or []
            if result.get("isError") and content and isinstance(content[0], dict):
                tidy = tidy_validation_message(str(content[0].get("text", "")))
                if tidy is not None:
                    content[0]["text"] = tidy
        elif getattr(result, "is_error", False) and getattr(result, "content", None):
            first = result.content[0]
            tidy = tidy_validation_message(getattr(first, "text", "") or "")
            if tidy is not None:
                first.text = tidy
        return result

    return middleware
