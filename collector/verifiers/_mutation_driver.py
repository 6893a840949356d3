"""The program that scores a test file against a module and its mutants, inside one sandbox execution.

Stdlib-only: its source is sent to the exec server's `run_python` with a configuration appended (`program`). The
tests under judgement are untrusted code; the module and its mutants are trusted. Three kinds of process:

- the **driver** (this program, the sandbox's first process): makes itself non-dumpable (no other process of the
  sandbox may read its memory, descriptors or environment), runs the variants in a random order (the correct
  module `CORRECT_RUNS` times among the mutants), resets the workspace and `/tmp` after each run, and alone
  writes the report to its standard output;
- per run, a **function process** (a fresh interpreter, non-dumpable, its own memory padded by a random amount)
  that receives one variant's source over a pipe only it holds, and answers calls;
- per run, a **test process** (a fresh interpreter: no copy of the driver's memory) that runs the test file. The
  module's functions are proxies there: arguments and results cross the pipe as plain data (None, bool, int,
  float, str, bytes, and lists, tuples, dicts, sets of them), decoded by a decoder that builds nothing else; an
  exception comes back as an exception of the same builtin type (or a plain Exception subclass of that name).

So the test process holds no source of the variant (no `inspect.getsource`, no code object, no file of it), cannot
read another process's memory, and cannot forge the report; the module's file in the workspace is set aside during
the runs. A run passes when the test process exits with 0 within `RUN_TIMEOUT_S`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from typing import Any

CORRECT_RUNS = 3
RUN_TIMEOUT_S = 5.0
TOTAL_S = 45.0

CODEC = r'''
import json
_MAX_DEPTH = 60
def enc(x, d=0):
    if d > _MAX_DEPTH: raise TypeError("nested too deeply")
    t = type(x)
    if x is None or t in (bool, int, str): return x
    if t is float: return x if x == x and x not in (float("inf"), float("-inf")) else {"__n": repr(x)}
    if t is list: return [enc(v, d + 1) for v in x]
    if t is tuple: return {"__t": [enc(v, d + 1) for v in x]}
    if t is set: return {"__s": [enc(v, d + 1) for v in x]}
    if t is frozenset: return {"__f": [enc(v, d + 1) for v in x]}
    if t is dict: return {"__d": [[enc(k, d + 1), enc(v, d + 1)] for k, v in x.items()]}
    if t is bytes:
        import base64
        return {"__b": base64.b64encode(x).decode()}
    raise TypeError(f"a {t.__name__} cannot cross to the function: use None, bool, int, float, str, bytes, "
                    "and lists, tuples, dicts and sets of them")
def dec(x, d=0):
    if d > _MAX_DEPTH: raise ValueError("nested too deeply")
    t = type(x)
    if x is None or t in (bool, int, float, str): return x
    if t is list: return [dec(v, d + 1) for v in x]
    if t is dict and len(x) == 1:
        (k, v), = x.items()
        if k == "__n" and v in ("nan", "inf", "-inf"): return float(v)
        if k == "__b" and type(v) is str:
            import base64
            return base64.b64decode(v)
        if k in ("__t", "__s", "__f") and type(v) is list:
            items = [dec(i, d + 1) for i in v]
            return tuple(items) if k == "__t" else set(items) if k == "__s" else frozenset(items)
        if k == "__d" and type(v) is list:
            return {dec(p[0], d + 1): dec(p[1], d + 1) for p in v if type(p) is list and len(p) == 2}
    raise ValueError("not plain data")
def nondumpable():
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(4, 0, 0, 0, 0) != 0:  # PR_SET_DUMPABLE
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")
'''

FUNCTION_PROCESS = CODEC + r'''
import os, sys
nondumpable()
_pad = bytearray(4096 * (int.from_bytes(os.urandom(2), "big") % 128 + 1))  # RSS noise: no size signal
code_fd, req_fd, resp_fd = (int(a) for a in sys.argv[1:4])
with os.fdopen(code_fd, "rb") as fh:
    payload = json.loads(fh.read())
ns = {"__name__": payload["module"]}
exec(compile(payload["source"], payload["module"] + ".py", "exec"), ns)
funcs = {n: ns[n] for n in payload["names"] if callable(ns.get(n))}
del payload
out = os.fdopen(resp_fd, "wb")
for line in os.fdopen(req_fd, "rb"):
    try:
        req = json.loads(line)
        fn = funcs[req["f"]]
        args, kwargs = dec(req["a"]), dec(req["k"])
        if type(args) is not list or type(kwargs) is not dict or any(type(k) is not str for k in kwargs):
            raise ValueError("bad call")
    except Exception:
        reply = {"x": "RuntimeError", "m": "malformed call to the function process"}
    else:
        try:
            result = fn(*args, **kwargs)
            try:
                reply = {"r": enc(result)}
            except TypeError as exc:
                reply = {"x": "TypeError", "m": f"{req['f']} returned a {type(result).__name__}: {exc}"}
        except BaseException as exc:
            reply = {"x": type(exc).__name__, "m": str(exc)[:500]}
    out.write(json.dumps(reply).encode() + b"\n")
    out.flush()
'''

TEST_PROCESS = CODEC + r'''
import builtins, os, sys, traceback, types
req_fd, resp_fd = int(sys.argv[1]), int(sys.argv[2])
module, tests_path, names = sys.argv[3], sys.argv[4], sys.argv[5].split(",")
sys.path[:] = json.loads(sys.argv[6])  # the sandbox's module path, without running site (-S): a faster start
_req, _resp = os.fdopen(req_fd, "wb"), os.fdopen(resp_fd, "rb")
def _call(name, args, kwargs):
    _req.write(json.dumps({"f": name, "a": enc(list(args)), "k": enc(dict(kwargs))}).encode() + b"\n")
    _req.flush()
    line = _resp.readline()
    if not line:
        raise RuntimeError("the function's process is gone")
    reply = json.loads(line)
    if "r" in reply:
        return dec(reply["r"])
    kind = getattr(builtins, reply["x"], None)
    if not (isinstance(kind, type) and issubclass(kind, Exception)):
        kind = type(reply["x"], (Exception,), {})
    raise kind(reply["m"])
def _proxy(name):
    def call(*args, **kwargs):
        return _call(name, args, kwargs)
    call.__name__ = call.__qualname__ = name
    call.__module__ = module
    return call
mod = types.ModuleType(module)
for _n in names:
    setattr(mod, _n, _proxy(_n))
sys.modules[module] = mod
source = sys.stdin.read()
ns = {"__name__": tests_path[:-3].replace("/", "."), "__file__": tests_path}
failures = 0
try:
    exec(compile(source, tests_path, "exec"), ns)
except BaseException:
    traceback.print_exc()
    sys.exit(1)
tests = [v for k, v in ns.items() if k.startswith("test") and isinstance(v, types.FunctionType)]
unittest = sys.modules.get("unittest")  # a TestCase class needs it imported: no import (and its cost) otherwise
cases = [v for v in ns.values() if unittest and isinstance(v, type) and issubclass(v, unittest.TestCase)]
for test in tests:
    try:
        test()
    except BaseException:
        failures += 1
        traceback.print_exc()
if cases:
    suite = unittest.TestSuite(unittest.defaultTestLoader.loadTestsFromTestCase(c) for c in cases)
    result = unittest.TextTestRunner(stream=sys.stderr, verbosity=0).run(suite)
    failures += len(result.failures) + len(result.errors)
if not tests and not any(unittest.defaultTestLoader.getTestCaseNames(c) for c in cases) and "assert" not in source:
    print("no tests found: write test_* functions with asserts", file=sys.stderr)
    sys.exit(3)
sys.exit(1 if failures else 0)
'''


def _kill_all(groups: list[int]) -> None:
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass
    if os.getpid() == 1:  # the sandbox's first process: end every other process of the sandbox
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break


def _state(root: str) -> dict[str, bytes | None]:
    """Every path under root: file bytes, or None for a directory (at most 2,000 paths)."""
    out: dict[str, bytes | None] = {}
    for base, dirs, files in os.walk(root):
        for d in dirs:
            out[os.path.join(base, d)] = None
        for f in files:
            path = os.path.join(base, f)
            if len(out) > 2000:
                return out
            try:
                with open(path, "rb") as fh:
                    out[path] = fh.read(2_000_000)
            except OSError:
                out[path] = b""
    return out


def _restore(root: str, saved: dict[str, bytes | None]) -> None:
    for base, dirs, files in os.walk(root, topdown=False):
        for name in files + dirs:
            path = os.path.join(base, name)
            if path not in saved:
                try:
                    os.chmod(path, 0o700)
                except OSError:
                    pass
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    try:
                        os.unlink(path)
                    except OSError:
                        pass
    for path, data in saved.items():
        if data is None:
            os.makedirs(path, exist_ok=True)
            continue
        try:
            with open(path, "rb") as fh:
                same = fh.read(2_000_001) == data
        except OSError:
            same = False
        if not same:
            try:
                os.chmod(path, 0o600)
            except OSError:
                pass
            with open(path, "wb") as fh:
                fh.write(data)


def _one(cfg: dict[str, Any], source: str) -> tuple[bool, str]:
    code_r, code_w = os.pipe()
    req_r, req_w = os.pipe()
    resp_r, resp_w = os.pipe()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/tmp", "LANG": "C.UTF-8"}
    quiet = subprocess.DEVNULL
    function = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", FUNCTION_PROCESS, str(code_r), str(req_r), str(resp_w)],
        pass_fds=(code_r, req_r, resp_w), stdin=quiet, stdout=quiet, stderr=quiet, env=env, start_new_session=True)
    os.close(code_r)
    test = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", TEST_PROCESS, str(req_w), str(resp_r), cfg["module"], cfg["tests_path"],
         ",".join(cfg["names"]), json.dumps(sys.path)],
        pass_fds=(req_w, resp_r), stdin=subprocess.PIPE, stdout=quiet, stderr=subprocess.PIPE, env=env,
        start_new_session=True)
    for fd in (req_r, resp_w, req_w, resp_r):
        os.close(fd)
    try:
        os.write(code_w, json.dumps({"module": cfg["module"], "source": source, "names": cfg["names"]}).encode())
    except OSError:
        pass
    os.close(code_w)
    try:
        _, err = test.communicate(cfg["tests"].encode(), timeout=RUN_TIMEOUT_S)
        ok, detail = test.returncode == 0, err.decode(errors="replace")[-1500:]
    except subprocess.TimeoutExpired:
        ok, detail = False, f"the tests did not finish within {RUN_TIMEOUT_S:g}s"
    _kill_all([function.pid, test.pid])
    for proc in (function, test):
        try:
            proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass
    return ok, detail


def main(cfg: dict[str, Any]) -> None:
    """Run the test file `cfg["tests"]` on the correct module and each mutant; print one report line."""
    exec(CODEC, globals())  # noqa: S102 - defines nondumpable()
    protected = True
    try:
        globals()["nondumpable"]()
    except OSError:
        protected = False
    variants = [("correct", cfg["source"])] * CORRECT_RUNS + [(f"mutant{i}", m) for i, m in enumerate(cfg["mutants"])]
    order = list(range(len(variants)))
    secrets.SystemRandom().shuffle(order)
    module_file = os.path.join(os.getcwd(), cfg["module"] + ".py")
    saved_module = None
    if os.path.isfile(module_file):  # set aside: the tests see the function only through the proxies
        with open(module_file, "rb") as fh:
            saved_module = fh.read()
        os.unlink(module_file)
    roots = [os.getcwd(), "/tmp"]
    saved = {root: _state(root) for root in roots}
    outcomes: dict[int, tuple[bool, str]] = {}
    timing: dict[int, tuple[float, float]] = {}
    deadline = time.monotonic() + TOTAL_S
    try:
        for index in order:
            if time.monotonic() > deadline:
                break
            start = time.monotonic()
            outcomes[index] = _one(cfg, variants[index][1])
            ran = time.monotonic() - start
            for root in roots:
                _restore(root, saved[root])
            timing[index] = (round(ran, 3), round(time.monotonic() - start - ran, 3))
    finally:
        if saved_module is not None:
            with open(module_file, "wb") as fh:
                fh.write(saved_module)
    runs = []
    for index, (label, _) in enumerate(variants):
        ok, detail = outcomes.get(index, (False, "not run: out of time"))
        runs.append({"variant": label, "passed": ok, "detail": detail if label == "correct" else "",
                     "seconds": timing.get(index)})
    report = {"runs": runs, "protected": protected}
    sys.stdout.write(cfg["marker"] + " " + json.dumps(report) + "\n")
    sys.stdout.flush()
