"""The run_tests judge: the tests run and are decided in one process, the solution in another.

This file is stdlib-only on purpose: the process backend's fork server preloads it, and the docker backend sends
its source as the program. Inside a sandbox:

    judge (the execution itself: runs the test code, decides each test, writes one result line per test to stdout)
      └── solution process (forked before the tests are read, so they are never in its memory: runs the solution's
          code, then answers the judge's calls over two pipes; its stdin, stdout and stderr are /dev/null)

The test code is trusted; the solution is not. Calls from the tests into the solution (`candidate(...)`, or a
function of the solution the tests name) cross the pipes: the arguments go in, and the return value comes back as
plain data (`wire.py`: a tagged format whose decoder builds nothing but None, bool, int, float, complex, str, bytes
and lists, tuples, dicts, sets and frozensets of them, nested at most 100 deep and at most 16 MiB long). A returned object of any other type, a subclass of a builtin type included, fails the
test. An exception in the solution is raised in the judge again as a plain exception of the same name (a builtin
one for builtin names; `SystemExit` and `KeyboardInterrupt` become plain `Exception`s). Arguments that the
solution changed (lists, dicts, sets) are copied back. The judge ignores the signals it can, makes itself
non-dumpable (no ptrace, no access to its memory or descriptors through /proc) and imports nothing from the
workspace; in the process backend it is also pid 1 of its namespace, which its children cannot kill.

If the solution process ends (or breaks the protocol), the test in progress fails and so does every later test,
with the reason: restarting it would mean a fork of the judge, which holds the tests by then. A hung solution is
stopped by the execution's deadline, as any run is.

Tests that cannot be judged this way (they pass a callback or another object that is not plain data to the
solution, or use the solution's classes or other objects) run instead by `harness._run`, the solution and the tests in one
process, after a line {"untrusted": reason}: the server then marks the report `trusted: false`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

_harness: Any = sys.modules.get("mcpgym_harness")  # in a sandbox: preloaded (process) or made by the program (docker)
_wire: Any = sys.modules.get("mcpgym_wire")
if _harness is None or _wire is None:
    from mcp_servers.exec import harness as _harness
    from mcp_servers.exec import wire as _wire
_describe = _harness._describe
encode: Callable[..., bytes] = _wire.encode
decode: Callable[[bytes], Any] = _wire.decode
_send: Callable[[int, bytes], None] = _wire.send
_recv: Callable[..., bytes] = _wire.recv
WireError: type[ValueError] = _wire.WireError
PLAIN: str = _wire.PLAIN

__all__: list[str] = []

# ---------------------------------------------------------------- the solution's process


def _solution_main(solution: str, rfd: int, wfd: int) -> None:
    """The solution's process: run the solution's code, send the kinds of its names, then answer calls. Never
    returns."""
    import builtins

    try:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        low, high = sorted((rfd, wfd))
        os.closerange(3, low)
        os.closerange(low + 1, high)
        os.closerange(high + 1, 1 << 16)
        os.setsid()
        _prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL: it does not outlive the judge
    except BaseException:  # noqa: BLE001
        os._exit(127)
    ns: dict[str, Any] = {"__name__": "__solution__", "__builtins__": builtins}
    try:
        exec(compile(solution, "<solution>", "exec"), ns)  # noqa: S102 - intended
        kinds = {name: _kind(value) for name, value in list(ns.items()) if type(name) is str and name[:2] != "__"}
        reply = encode(("ready", kinds))
    except BaseException as exc:  # noqa: BLE001 - the solution's failure is the result
        try:
            reply = encode(("fatal", f"the solution raised {_describe(exc)}"))
        except BaseException:  # noqa: BLE001
            reply = encode(("fatal", "the solution raised an exception"))
    try:
        _send(wfd, reply)
        while True:
            try:
                request = decode(_recv(rfd))
            except (EOFError, OSError, WireError):
                break
            _send(wfd, _answer(ns, request))
    finally:
        os._exit(0)


def _kind(value: Any) -> str:
    import types

    try:
        if isinstance(value, type):
            return "class"
        if isinstance(value, types.ModuleType):
            name = value.__name__
            return "module:" + name if type(name) is str else "other"
        if isinstance(value, (types.FunctionType, types.BuiltinFunctionType)) or callable(value):
            return "function"
        return "data"
    except BaseException:  # noqa: BLE001
        return "other"


def _answer(ns: dict[str, Any], request: Any) -> bytes:
    """The reply to one call ("call", name, [encoded args], {name: encoded arg}) or look-up ("get", name)."""
    if request[0] == "get":
        return _value_reply(ns.get(request[1]), {})
    _, name, raw_args, raw_kwargs = request
    args = [decode(raw) for raw in raw_args]
    kwargs = {key: decode(raw) for key, raw in raw_kwargs.items()}
    try:
        result = ns[name](*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - SystemExit and KeyboardInterrupt included: they go back
        try:
            exc_args = exc.args if type(exc.args) is tuple else None
            encode(exc_args, 1 << 16)
        except BaseException:  # noqa: BLE001
            exc_args = None
        try:
            message = str(exc)[:500]
        except BaseException:  # noqa: BLE001
            message = ""
        name = type(exc).__name__
        return encode(("raise", name if type(name) is str else "Exception", exc_args, message))
    changed: dict[Any, Any] = {}
    pairs = [*zip(range(len(args)), args, raw_args), *((k, kwargs[k], raw_kwargs[k]) for k in kwargs)]
    for key, value, raw in pairs:
        if type(value) in (list, dict, set):
            try:
                same = encode(value) == raw
            except WireError:
                same = False
            if not same:
                changed[key] = value
    return _value_reply(result, changed)


def _value_reply(value: Any, changed: dict[Any, Any]) -> bytes:
    try:
        return encode(("ok", value, changed))
    except WireError:
        pass
    try:
        encode(value)
    except WireError as exc:
        return encode(("unplain", f"returned {exc}"))
    try:
        encode(changed)
    except WireError as exc:
        return encode(("unplain", f"changed an argument into {exc}"))
    return encode(("unplain", "returned more data than a reply may hold"))


def _prctl(option: int, value: int) -> bool:
    """prctl(2) through the fork server's helper where it is loaded, else ctypes; False when it failed."""
    helper = sys.modules.get("_nsutil")
    try:
        if helper is not None:
            helper.prctl(option, value)
            return True
        import ctypes

        return bool(ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) == 0)
    except Exception:  # noqa: BLE001
        return False


# ---------------------------------------------------------------- the judge


class _Stop(BaseException):
    """Ends the statement in progress: the test fails with the judge's reason (not an Exception: tests that catch
    `Exception` do not catch it, and the judge checks its flags after each test anyway)."""


class _Fallback(BaseException):
    """The tests cannot be judged across processes: run them in-process, untrusted."""


class _Remote:
    """A function of the solution, as the tests see it: each call goes to the solution's process."""

    def __init__(self, judge: _Judge, name: str) -> None:
        self._judge = judge
        self._name = self.__name__ = self.__qualname__ = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._judge.call(self._name, args, kwargs)

    def __repr__(self) -> str:
        return f"<function {self._name} of the solution>"


class _Judge:
    """The judge's end of the pipes to the solution's process, and the state of the test in progress."""

    def __init__(self, pid: int, rfd: int, wfd: int) -> None:
        import select

        self.pid, self.rfd, self.wfd = pid, rfd, wfd
        self.dead: str | None = None  # why every later test fails
        self.failed: str | None = None  # why the test in progress fails, whatever it caught
        self.fallback: str | None = None  # why the tests must run in-process
        self.exceptions: dict[str, type] = {}
        self.poller = select.poll()
        self.poller.register(rfd, select.POLLIN)
        try:
            self.pidfd = os.pidfd_open(pid)
            self.poller.register(self.pidfd, select.POLLIN)
        except (AttributeError, OSError):
            self.pidfd = -1

    def stop(self, reason: str) -> None:
        """Fail the test in progress with `reason`."""
        if self.failed is None:
            self.failed = reason
        raise _Stop(reason)

    def settle(self) -> str | None:
        """After a statement: why it fails whatever it caught (None: as it ran); raises `_Fallback` when the tests
        cannot be judged here."""
        if self.fallback is not None:
            raise _Fallback(self.fallback)
        reason, self.failed = self.failed, None
        return reason

    def fall_back(self, reason: str) -> None:
        """Give up judging across processes."""
        if self.fallback is None:
            self.fallback = reason
        raise _Fallback(reason)

    def receive(self, what: str) -> Any:
        """The solution's next message, decoded; stops the test when the process ended or broke the protocol."""
        if self.dead:
            self.stop(f"not run: {self.dead}")
        try:
            while True:
                ready = dict(self.poller.poll())
                if self.rfd in ready:
                    break
                if self.pidfd in ready:
                    raise EOFError
            reply = decode(_recv(self.rfd))
            if type(reply) is not tuple or not reply or type(reply[0]) is not str:
                raise WireError("a reply that is not a tagged tuple")
            return reply
        except (OSError, EOFError):
            status = self.end(wait=True)
            self.dead = f"the solution process ended ({status}) in an earlier test"
            self.stop(f"the solution process ended ({status}) while {what} ran")
        except WireError as exc:
            self.end()
            self.dead = f"the solution process broke the protocol ({exc}) in an earlier test"
            self.stop(f"the solution process broke the protocol ({exc}) while {what} ran")

    def ask(self, request: tuple[Any, ...], what: str) -> Any:
        if self.dead:
            self.stop(f"not run: {self.dead}")
        try:
            _send(self.wfd, encode(request))
        except OSError:
            pass  # it is gone: `receive` says so
        return self.receive(what)

    def call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Call the solution's `name` with plain-data arguments; its return value, or its exception raised here."""
        try:
            raw_args = [encode(a) for a in args]
            raw_kwargs = {k: encode(v) for k, v in kwargs.items()}
        except WireError as exc:
            self.fall_back(f"a test passes {exc} to the solution's {name}")
        reply = self.ask(("call", name, raw_args, raw_kwargs), f"{name}()")
        tag = reply[0]
        if tag == "ok" and len(reply) == 3 and type(reply[2]) is dict:
            for key, value in reply[2].items():
                original = args[key] if type(key) is int and 0 <= key < len(args) else kwargs.get(key)
                if type(original) is list and type(value) is list:
                    original[:] = value
                elif type(original) in (dict, set) and type(value) is type(original):
                    original.clear()  # type: ignore[union-attr]
                    original.update(value)  # type: ignore[union-attr]
            return reply[1]
        if tag == "raise" and len(reply) == 4:
            raise self.exception(reply[1], reply[2], reply[3])
        if tag == "unplain" and len(reply) == 2 and type(reply[1]) is str:
            self.stop(f"the solution's {name} {reply[1][:200]}: {PLAIN}")
        self.end()
        self.dead = "the solution process broke the protocol in an earlier test"
        self.stop(f"the solution process broke the protocol while {name}() ran")

    def exception(self, name: Any, args: Any, message: Any) -> BaseException:
        """A plain exception named like the solution's: the builtin class of that name where it is an Exception,
        else a new Exception subclass of that name."""
        import builtins

        name = name if type(name) is str and name.isidentifier() else "Exception"
        message = message if type(message) is str else ""
        cls = getattr(builtins, name, None)
        if not (isinstance(cls, type) and issubclass(cls, Exception)):
            cls = self.exceptions.get(name)
            if cls is None:
                cls = self.exceptions[name] = type(name, (Exception,), {"__module__": "solution"})
        made: BaseException
        try:
            made = cls(*args) if type(args) is tuple else cls(message)
        except Exception:  # noqa: BLE001 - a builtin whose constructor wants other arguments
            plain = self.exceptions.get("~" + name) or type(name, (Exception,), {"__module__": "solution"})
            self.exceptions["~" + name] = plain
            made = plain(message)
        return made

    def end(self, wait: bool = False) -> str:
        """Stop the solution's process; how it ended. `wait`: it is ending (its pipe closed or its pidfd fired),
        give it a moment to exit by itself, for its own exit status."""
        import time

        if self.pid <= 0:
            return "already ended"
        status = None
        for _ in range(20 if wait else 0):
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                break
            time.sleep(0.005)
            status = None
        if status is None:
            try:
                os.kill(self.pid, 9)
                _, status = os.waitpid(self.pid, 0)
            except OSError:
                pass
        for fd in (self.rfd, self.wfd, self.pidfd):
            if fd >= 0:
                os.close(fd)
        self.rfd = self.wfd = self.pidfd = self.pid = -1
        if status is None:
            return "already reaped"
        if os.WIFSIGNALED(status):
            return f"killed by signal {os.WTERMSIG(status)}"
        return f"exit status {os.WEXITSTATUS(status)}"


_IGNORED = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM", "SIGTSTP",
            "SIGTTIN", "SIGTTOU")  # fmt: skip


def _judge_main(solution: str, entry_point: str | None) -> None:
    """The sandbox's program for run_tests: fork the solution's process, then read the tests from stdin (the
    server's marshal data: test code, `sandbox_plan`, the result marker) and judge them, one result line each."""
    import _signal
    import marshal

    signals = [getattr(_signal, name) for name in _IGNORED if hasattr(_signal, name)]
    _prctl(4, 0)  # PR_SET_DUMPABLE: no ptrace, no /proc/<judge>/mem or fd (its child inherits it, harmlessly)
    for sig in signals:
        _signal.signal(sig, _signal.SIG_IGN)  # before the fork: no moment in which a signal could stop the judge
    sys.stdout.flush()
    to_r, to_w = os.pipe()
    from_r, from_w = os.pipe()
    helper = sys.modules.get("_nsutil")
    if helper is not None and hasattr(helper, "FORK_HOOKS"):  # the process backend: fork as its fork server clones
        pid = helper.clone(0, fork_hooks=helper.FORK_HOOKS)
    else:
        pid = os.fork()
    if pid == 0:
        os.close(to_w)
        os.close(from_r)
        for sig in signals:
            _signal.signal(sig, _signal.SIG_DFL)
        _solution_main(solution, to_r, from_w)
    os.close(to_r)
    os.close(from_w)
    chunks = []
    while True:
        chunk = os.read(0, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    test_code, plan, nonce = marshal.loads(b"".join(chunks))
    out = os.dup(1)
    sink = os.open(os.devnull, os.O_WRONLY)
    os.dup2(sink, 1)  # what the tests print goes nowhere; results go only to `out`
    os.close(sink)
    saved_path = sys.path[:]
    sys.path[:] = [p for p in sys.path if p and p not in (".", "/workspace", "/tmp") and p[:5] != "/tmp/"]
    judge = _Judge(pid, from_r, to_w)
    reason = None
    try:
        _judge(judge, entry_point, test_code, plan, nonce, out)
    except _Fallback:
        reason = judge.fallback
    finally:
        judge.end()
    if reason is not None:
        import json

        os.write(out, f"{nonce} {json.dumps({'untrusted': reason[:300]})}\n".encode())
        sys.path[:] = saved_path
        _harness._run(solution, test_code, entry_point, nonce, out, plan)
    os.close(out)


def _judge(judge: _Judge, entry_point: str | None, test_code: str, plan: dict[str, Any], nonce: str, out: int) -> None:
    """Bind the names the tests use to the solution's functions (`_Remote`) and plain data, then run the tests
    (`harness._execute`); raises `_Fallback` when they cannot be judged across processes."""
    import builtins
    import importlib
    import importlib.util

    emit, passed = _harness._emitters(nonce, out)
    try:
        ready = judge.receive("the solution's import")
    except _Stop:
        emit({"fatal": f"the test run ended early: {judge.failed}"})
        return
    if ready[0] == "fatal" and len(ready) == 2 and type(ready[1]) is str:
        emit({"fatal": ready[1][:600]})
        return
    if ready[0] != "ready" or len(ready) != 2 or type(ready[1]) is not dict:
        emit({"fatal": "the solution process broke the protocol"})
        return
    kinds = ready[1]
    ns: dict[str, Any] = {"__name__": "__solution__", "__builtins__": builtins}
    candidate = None
    try:
        if plan["kind"] == "check":
            kind = kinds.get(entry_point)
            if kind is None:
                emit({"fatal": f"the solution defines no {entry_point!r} (the entry_point)"})
                return
            if kind != "function":
                judge.fall_back(f"the entry point {entry_point} is not a function")
            candidate = _Remote(judge, str(entry_point))
        for name in plan.get("names", ()):
            kind = kinds.get(name)
            if type(kind) is not str or hasattr(builtins, name):
                continue  # a solution's `abs` or `sorted` never replaces the builtin the tests use
            if kind == "function":
                ns[name] = _Remote(judge, name)
            elif kind == "data":
                reply = judge.ask(("get", name), name)
                if reply[0] != "ok" or len(reply) != 3:
                    judge.fall_back(f"the tests use the solution's {name}, which is not plain data")
                ns[name] = reply[1]
            elif kind.startswith("module:"):  # the judge's own import of it: a loaded or standard module only
                module = kind[7:]
                stdlib = module.split(".")[0] in getattr(sys, "stdlib_module_names", ())
                try:
                    if module not in sys.modules and not stdlib:
                        raise ImportError(module)
                    ns[name] = importlib.import_module(module)
                except Exception:  # noqa: BLE001
                    judge.fall_back(f"the tests use the module {module}, which only the solution imports")
            else:
                judge.fall_back(f"the tests use the solution's {'class' if kind == 'class' else 'object'} {name}")
        for module in plan.get("imports", ()):
            if module in sys.modules:
                continue
            try:
                found = importlib.util.find_spec(module) is not None
            except (ImportError, ValueError):
                found = False
            if not found and (os.path.exists(f"/workspace/{module}.py") or os.path.isdir(f"/workspace/{module}")):
                judge.fall_back(f"the tests import {module} from the workspace")
    except _Stop:
        emit({"fatal": f"the test run ended early: {judge.failed}"})
        return
    if _harness._execute(test_code, plan, ns, candidate, emit, passed, judge):
        emit({"done": True})


def _warm_up() -> None:
    """Encode and decode a few values (the fork server calls it: see `_zygote.warm_up`)."""
    sample = ("call", "f", [encode([1, 2.5, "x", None, (True,)])], {"k": encode({"a": {1, 2}})})
    for _ in range(12):
        decode(encode(sample))
