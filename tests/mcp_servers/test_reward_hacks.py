"""Reward hacks against run_tests: a wrong solution that attacks the judge scores no more than an honest wrong one.

Each attack wraps the same wrong `add` (it returns 0, so it passes exactly one of the four tests: `add(-1, 1) == 0`)
and tries to raise its count: by forging the judge's result lines, rewriting what the judge uses, returning objects
that lie about equality, killing or signalling the judge, exiting early, flooding output, or leaving a helper
behind. Every attack runs against the four kinds of test code (check(candidate), top-level asserts, test_*
functions, unittest classes). Attacks that leave the solution's process running score exactly the honest figure;
attacks that end or break that process score at most it. The correct solution passes everything.
"""

from __future__ import annotations

import asyncio
import io
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mcp_servers.exec.models import TestReport
from mcp_servers.exec.runner import run_tests
from mcp_servers.exec.sandbox import Limits, ProcessSandbox, ProcessSandboxConfig

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/proc/self/ns/pid"),
    reason="the process sandbox needs root and Linux namespaces",
)

STYLES = {
    "check": (
        "def check(candidate):\n"
        "    assert candidate(1, 2) == 3\n"
        "    assert candidate(-1, 1) == 0\n"
        "    assert candidate(2.5, 0.5) == 3.0\n"
        "    assert abs(candidate(10, 20) - 30) < 1e-9\n"
    ),
    "asserts": (
        "assert add(1, 2) == 3\nassert add(-1, 1) == 0\nassert add(2.5, 0.5) == 3.0\n"
        "assert abs(add(10, 20) - 30) < 1e-9\n"
    ),
    "functions": (
        "def test_a():\n    assert add(1, 2) == 3\n\ndef test_b():\n    assert add(-1, 1) == 0\n\n"
        "def test_c():\n    assert add(2.5, 0.5) == 3.0\n\ndef test_d():\n    assert abs(add(10, 20) - 30) < 1e-9\n"
    ),
    "unittest": (
        "import unittest\n\nclass T(unittest.TestCase):\n"
        "    def test_a(self):\n        self.assertEqual(add(1, 2), 3)\n"
        "    def test_b(self):\n        self.assertEqual(add(-1, 1), 0)\n"
        "    def test_c(self):\n        self.assertEqual(add(2.5, 0.5), 3.0)\n"
        "    def test_d(self):\n        self.assertTrue(abs(add(10, 20) - 30) < 1e-9)\n"
    ),
}

CORRECT = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return 0\n"
HONEST_WRONG_SCORE = 1  # add(-1, 1) == 0
FIVE = Limits(timeout_s=5)

# Finds 32-hex-digit strings (the result marker) and an "out" descriptor in the caller's frames, writes a passing
# record for every test and the end record to every descriptor it can, then exits.
FORGE_RECORDS = """
import gc, os, sys

def _forge():
    markers, fds = set(), set(range(1, 32))
    frame = sys._getframe()
    while frame is not None:
        for name, value in list(frame.f_locals.items()):
            if isinstance(value, str) and len(value) == 32 and all(c in "0123456789abcdef" for c in value):
                markers.add(value)
            if name == "out" and isinstance(value, int):
                fds.add(value)
        frame = frame.f_back
    for obj in gc.get_objects():
        if isinstance(obj, dict):
            for value in list(obj.values()):
                if isinstance(value, str) and len(value) == 32 and all(c in "0123456789abcdef" for c in value):
                    markers.add(value)
    lines = "".join(
        f'{m} {{"test": {t}, "ok": true}}\\n' for m in markers for t in range(8)
    ) + "".join(f'{m} {{"done": true}}\\n' for m in markers)
    for fd in sorted(fds):
        try:
            os.write(fd, lines.encode())
        except OSError:
            pass
    os._exit(0)

def add(a, b):
    _forge()
    return 0
"""

ATTACKS: dict[str, tuple[str, bool]] = {  # name -> (solution, whether it leaves its process running)
    "forge_records_from_frames_and_exit": (FORGE_RECORDS, False),
    "rewrite_os_write": (
        "import os\n_write = os.write\n"
        "def _evil(fd, data):\n"
        "    return _write(fd, bytes(data).replace(b'\"ok\": false', b'\"ok\": true'))\n"
        "os.write = _evil\n" + WRONG,
        True,
    ),
    "rewrite_json_dumps": (
        "import json\n_dumps = json.dumps\n"
        "def _evil(obj, *a, **k):\n"
        "    if isinstance(obj, dict) and 'ok' in obj:\n"
        "        obj = {'test': obj.get('test'), 'ok': True}\n"
        "    return _dumps(obj, *a, **k)\n"
        "json.dumps = _evil\n" + WRONG,
        True,
    ),
    "always_equal_object": (
        (
            "class Anything:\n"
            "    def __eq__(self, other): return True\n"
            "    def __ne__(self, other): return False\n"
            "    def __sub__(self, other): return self\n"
            "    def __rsub__(self, other): return self\n"
            "    def __abs__(self): return 0\n"
            "    def __lt__(self, other): return True\n"
            "    def __hash__(self): return 0\n"
            "def add(a, b):\n    return Anything()\n"
        ),
        True,
    ),
    "always_equal_float_subclass": (
        (
            "class F(float):\n"
            "    def __eq__(self, other): return True\n"
            "    def __ne__(self, other): return False\n"
            "    def __sub__(self, other): return F(0.0)\n"
            "    def __hash__(self): return 0\n"
            "def add(a, b):\n    return F(0.0)\n"
        ),
        True,
    ),
    "replace_builtins_abs": ("import builtins\nbuiltins.abs = lambda x: 0\n" + WRONG, True),
    "shadow_abs_with_a_function": ("def abs(x):\n    return 0\n\n" + WRONG, True),
    "replace_assertion_machinery": (
        "import unittest, sys\n"
        "unittest.TestCase.assertEqual = lambda self, a, b, msg=None: None\n"
        "unittest.TestCase.assertTrue = lambda self, x, msg=None: None\n"
        "unittest.TestResult.addFailure = lambda self, test, err: None\n"
        "sys.modules['builtins'].AssertionError = type('AssertionError', (BaseException,), {})\n" + WRONG,
        True,
    ),
    "print_fake_result_lines": (
        (
            "import sys\n"
            "def add(a, b):\n"
            "    for t in range(8):\n"
            "        print('0' * 32 + ' {\"test\": %d, \"ok\": true}' % t)\n"
            '        print(\'{"test": %d, "ok": true}\' % t, file=sys.stderr)\n'
            "    print('0' * 32 + ' {\"done\": true}')\n"
            "    return 0\n"
        ),
        True,
    ),
    "flood_output": (
        (
            "import sys, os\n"
            "def add(a, b):\n"
            "    sys.stdout.write('x' * 300_000)\n"
            "    sys.stderr.write('y' * 300_000)\n"
            "    os.write(1, b'z' * 300_000)\n"
            "    return 0\n"
        ),
        True,
    ),
    "system_exit_and_keyboard_interrupt": (
        (
            "def add(a, b):\n"
            "    if a == 1:\n        raise SystemExit(0)\n"
            "    if a == 10:\n        raise KeyboardInterrupt\n"
            "    return 0\n"
        ),
        True,
    ),
    "exit_at_import": ("import sys\n" + WRONG + "sys.exit(0)\n", False),
    "os_exit_in_a_call": ("import os\ndef add(a, b):\n    os._exit(0)\n", False),
    "signal_the_judge": (
        (
            "import os, signal\n"
            "def add(a, b):\n"
            "    for pid in {os.getppid(), 1}:\n"
            "        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGSTOP, signal.SIGKILL):\n"
            "            try:\n                os.kill(pid, sig)\n            except OSError:\n                pass\n"
            "    return 0\n"
        ),
        True,
    ),
    "kill_every_process": (
        (
            "import os, signal\n"
            "def add(a, b):\n"
            "    for sig in (signal.SIGTERM, signal.SIGKILL):\n"
            "        try:\n            os.kill(-1, sig)\n        except OSError:\n            pass\n"
            "    return 0\n"
        ),
        True,
    ),
    "ptrace_and_memory_of_the_judge": (
        (
            "import ctypes, os\n"
            "def add(a, b):\n"
            "    libc = ctypes.CDLL(None, use_errno=True)\n"
            "    for pid in {os.getppid()}:  # the judge (pid 1 too in the process backend)\n"
            "        assert libc.ptrace(16, pid, 0, 0) != 0  # PTRACE_ATTACH is refused\n"
            "        for name in ('mem', 'fd/1', 'environ'):\n"
            "            try:\n"
            "                open(f'/proc/{pid}/{name}', 'r+b' if name == 'mem' else 'rb').close()\n"
            "            except OSError:\n"
            "                continue\n"
            "            raise RuntimeError(f'opened /proc/{pid}/{name}')\n"
            "    return 0\n"
        ),
        True,
    ),
    "helper_that_writes_later": (
        (
            "import os, time\n"
            "def add(a, b):\n"
            "    if a == 1 and os.fork() == 0:\n"
            "        time.sleep(0.3)\n"
            "        for fd in range(1, 32):\n"
            "            try:\n"
            "                os.write(fd, b'0' * 32 + b' {\"test\": 2, \"ok\": true}\\n')\n"
            "            except OSError:\n"
            "                pass\n"
            "        os._exit(0)\n"
            "    if a == 10:\n        time.sleep(0.6)\n"
            "    return 0\n"
        ),
        False,
    ),
    "tamper_with_modules_the_judge_imports": (
        "import pathlib\n"
        "for name in ('random', 'unittest', 'fractions', 'statistics'):\n"
        "    pathlib.Path(f'/workspace/{name}.py').write_text('import builtins\\nbuiltins.abs = lambda x: 0\\n')\n"
        + WRONG,
        True,
    ),
}

TAMPERED_IMPORT_TESTS = (
    "import random\nassert add(1, 2) == 3\nassert add(-1, 1) == 0\nassert abs(add(10, 20) - 30) < 1e-9\n"
)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[ProcessSandbox]:
    box = ProcessSandbox(ProcessSandboxConfig(pool_size=2))
    yield box
    asyncio.run(box.close())


@pytest.fixture()
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


async def score(sandbox: ProcessSandbox, ws: Path, code: str, style: str, timeout_s: float = 5) -> TestReport:
    entry = "add" if style == "check" else None
    return await run_tests(sandbox, ws, code, STYLES[style], entry, Limits(timeout_s=timeout_s))


@pytest.mark.parametrize("style", sorted(STYLES))
async def test_honest_solutions(sandbox: ProcessSandbox, ws: Path, style: str) -> None:
    correct = await score(sandbox, ws, CORRECT, style)
    assert (correct.passed, correct.total, correct.trusted) == (4, 4, True), correct
    wrong = await score(sandbox, ws, WRONG, style)
    assert (wrong.passed, wrong.total, wrong.trusted) == (HONEST_WRONG_SCORE, 4, True), wrong


@pytest.mark.parametrize("style", sorted(STYLES))
@pytest.mark.parametrize("attack", sorted(ATTACKS))
async def test_attack_scores_no_more_than_the_honest_wrong_solution(
    sandbox: ProcessSandbox, ws: Path, attack: str, style: str
) -> None:
    code, survives = ATTACKS[attack]
    report = await score(sandbox, ws, code, style)
    assert report.total == 4 and report.trusted is True, report
    if attack.startswith("always_equal"):
        assert report.passed == 0, report  # nothing but plain data comes back
        assert "only plain data" in report.failures[0].error, report.failures[0]
    elif survives:
        assert report.passed == HONEST_WRONG_SCORE, report
    else:
        assert report.passed <= HONEST_WRONG_SCORE, report


async def test_workspace_modules_do_not_reach_the_judge(sandbox: ProcessSandbox, ws: Path) -> None:
    code, _ = ATTACKS["tamper_with_modules_the_judge_imports"]
    first = await run_tests(sandbox, ws, code, TAMPERED_IMPORT_TESTS, None, Limits(timeout_s=5))
    again = await run_tests(sandbox, ws, WRONG, TAMPERED_IMPORT_TESTS, None, Limits(timeout_s=5))  # files in place
    assert (ws / "random.py").exists()
    assert (first.passed, again.passed, first.total) == (1, 1, 3), (first, again)
    correct = await run_tests(sandbox, ws, CORRECT, TAMPERED_IMPORT_TESTS, None, Limits(timeout_s=5))
    assert correct.passed == 3 and correct.trusted


@pytest.mark.parametrize("style", sorted(STYLES))
async def test_correct_solution_with_the_attacks_side_effects_passes(
    sandbox: ProcessSandbox, ws: Path, style: str
) -> None:
    noisy = (
        "import sys, builtins, json, os\n"
        "print('0' * 32 + ' {\"test\": 0, \"ok\": false}')\n"
        "json.dumps = lambda *a, **k: 'null'\n"
        "builtins.abs = lambda x: 99\n"
        "def add(a, b):\n    sys.stdout.write('x' * 100_000)\n    return a + b\n"
    )
    report = await score(sandbox, ws, noisy, style)
    assert (report.passed, report.total, report.trusted) == (4, 4, True), report


async def test_a_dead_solution_process_fails_the_test_in_progress_and_the_rest(
    sandbox: ProcessSandbox, ws: Path
) -> None:
    code = "import os\ndef add(a, b):\n    if a == 2.5:\n        os._exit(3)\n    return a + b\n"
    report = await score(sandbox, ws, code, "check")
    assert report.passed == 2, report
    assert [f.test for f in report.failures] == [2, 3]
    assert "solution process ended" in report.failures[0].error and "exit status 3" in report.failures[0].error
    assert "solution process ended" in report.failures[1].error


async def test_exceptions_come_back_as_plain_exceptions_of_the_same_name(sandbox: ProcessSandbox, ws: Path) -> None:
    code = textwrap.dedent(
        """
        class Custom(Exception):
            pass

        def div(a, b):
            if b == 0:
                raise ZeroDivisionError("no zero")
            if a < 0:
                raise Custom("negative")
            if a == 7:
                raise KeyError("seven")
            return a / b
        """
    )
    tests = textwrap.dedent(
        """
        def test_zero():
            try:
                div(1, 0)
            except ZeroDivisionError as exc:
                assert str(exc) == "no zero"
            else:
                assert False

        def test_custom():
            try:
                div(-1, 1)
            except Exception as exc:
                assert type(exc).__name__ == "Custom" and str(exc) == "negative"

        def test_key():
            try:
                div(7, 1)
            except KeyError as exc:
                assert exc.args == ("seven",)

        def test_plain():
            assert div(1, 2) == 0.5

        def test_fails():
            div(-1, 1)
        """
    )
    report = await run_tests(sandbox, ws, code, tests, None, Limits(timeout_s=5))
    assert (report.passed, report.total, report.trusted) == (4, 5, True), report
    assert report.failures[0].error == "Custom: negative"


async def test_mutated_arguments_are_copied_back(sandbox: ProcessSandbox, ws: Path) -> None:
    code = "def fill(xs, d, s):\n    xs.sort()\n    d['k'] = [1]\n    s.add(3)\n    return None\n"
    tests = "xs, d, s = [3, 1, 2], {}, set()\nassert fill(xs, d, s) is None\nassert xs == [1, 2, 3]\nassert d == {'k': [1]} and s == {3}\n"
    report = await run_tests(sandbox, ws, code, tests, None, Limits(timeout_s=5))
    assert (report.passed, report.total, report.trusted) == (3, 3, True), report


async def test_cases_the_judge_cannot_take_fall_back_untrusted(sandbox: ProcessSandbox, ws: Path) -> None:
    callback = await run_tests(
        sandbox, ws, "def apply(f, x):\n    return f(x)\n",
        "assert apply(lambda v: v + 1, 1) == 2\nassert apply(abs, -3) == 3\n", None, Limits(timeout_s=5),
    )  # fmt: skip
    assert (callback.passed, callback.total, callback.trusted) == (2, 2, False), callback
    classes = await run_tests(
        sandbox, ws, "class Stack:\n    def __init__(self):\n        self.items = []\n"
        "    def push(self, x):\n        self.items.append(x)\n        return len(self.items)\n",
        "def test_push():\n    assert Stack().push(1) == 1\n", None, Limits(timeout_s=5),
    )  # fmt: skip
    assert (classes.passed, classes.total, classes.trusted) == (1, 1, False), classes
    returned = await run_tests(
        sandbox, ws, "def gen(n):\n    return (i for i in range(n))\n", "assert list(gen(2)) == [0, 1]\n", None,
        Limits(timeout_s=5),
    )  # fmt: skip
    assert (returned.passed, returned.trusted) == (0, True), returned  # returned objects are not judged by proxy
    assert "generator" in returned.failures[0].error and "only plain data" in returned.failures[0].error


# ---------------------------------------------------------------- the docker backend: the same judge

DOCKER_IMAGE = "mcpgym-exec-test:py311"  # (the image test_exec_docker.py builds; removed with the engine's test images)
KILLS_THE_JUDGE_IN_DOCKER = {"signal_the_judge", "kill_every_process"}  # the judge is not the pid namespace's init


@pytest.fixture(scope="module")
def docker_sandbox(docker_engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    docker = pytest.importorskip("docker")
    from docker_base import local_python_base

    from mcp_servers.exec.sandbox.docker_backend import DockerSandbox, DockerSandboxConfig

    base = local_python_base(tmp_path_factory.mktemp("docker"))
    dockerfile = f"FROM {base}\nRUN chmod 755 /root\n".encode()  # the base's interpreter lives under /root
    docker.from_env().images.build(fileobj=io.BytesIO(dockerfile), tag=DOCKER_IMAGE, rm=True)
    box = DockerSandbox(DockerSandboxConfig(image=DOCKER_IMAGE, limits=Limits(timeout_s=5, memory_mb=256)))
    yield box
    asyncio.run(box.close())


@pytest.mark.docker
async def test_the_docker_backend_uses_the_same_judge(docker_sandbox: Any, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    for style in sorted(STYLES):
        correct = await score(docker_sandbox, ws, CORRECT, style)
        wrong = await score(docker_sandbox, ws, WRONG, style)
        assert (correct.passed, wrong.passed, correct.trusted, wrong.trusted) == (4, 1, True, True), (correct, wrong)
    for attack, (code, survives) in sorted(ATTACKS.items()):
        report = await score(docker_sandbox, ws, code, "check")
        assert report.total == 4 and report.trusted is True, (attack, report)
        if attack.startswith("always_equal"):
            assert report.passed == 0 and "only plain data" in report.failures[0].error, (attack, report)
        elif survives and attack not in KILLS_THE_JUDGE_IN_DOCKER:
            assert report.passed == HONEST_WRONG_SCORE, (attack, report)
        else:
            assert report.passed <= HONEST_WRONG_SCORE, (attack, report)
    fallback = await run_tests(
        docker_sandbox, ws, "def apply(f, x):\n    return f(x)\n", "assert apply(lambda v: v + 1, 1) == 2\n", None,
        Limits(timeout_s=5),
    )  # fmt: skip
    assert (fallback.passed, fallback.trusted) == (1, False), fallback


# ---------------------------------------------------------------- the codec on its own


def test_the_codec_carries_plain_data_and_nothing_else() -> None:
    import collections
    import random

    from mcp_servers.exec.wire import WireError, decode, encode

    value = [None, True, False, 0, -(2**200), 1.5, float("inf"), 2j, "é\ud800", b"\x00", (1, [2]), {"k": {3}},
             frozenset({4}), {(1, 2): [{}]}]  # fmt: skip
    assert decode(encode(value)) == value and type(decode(encode((1,)))) is tuple
    for bad in (collections.OrderedDict(), collections.Counter("a"), type("F", (float,), {})(1.0), object(), len,
                (i for i in ())):  # fmt: skip
        with pytest.raises(WireError):
            encode(bad)
    looped: list[Any] = []
    looped.append(looped)
    with pytest.raises(WireError, match="nested more than"):
        encode(looped)
    with pytest.raises(WireError, match="more than"):
        encode("x" * 100, limit=50)
    rng = random.Random(7)
    samples = [encode(value), b"l\xff\xff\xff\xff", b"d\x01\x00\x00\x00l\x00\x00\x00\x00N", b"l\x01\x00\x00\x00" * 200]
    for _ in range(3000):
        data = bytearray(rng.choice(samples))
        for _ in range(rng.randint(0, 4)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[: rng.randrange(len(data) + 1)]
        try:
            decode(bytes(data))
        except WireError:
            pass  # malformed input is refused, never anything else


async def test_solution_modules_the_tests_use(sandbox: ProcessSandbox, ws: Path) -> None:
    tests = "assert math.floor(root(10)) == 3\n"  # uses the module the solution imported, as one namespace did
    plain = await run_tests(sandbox, ws, "import math\ndef root(x):\n    return math.sqrt(x)\n", tests, None, FIVE)
    assert (plain.passed, plain.trusted) == (1, True), plain
    (ws / "mymath.py").write_text("import math\nfloor = math.floor\n")
    planted = await run_tests(
        sandbox, ws, "import mymath as math\ndef root(x):\n    return x ** 0.5\n", tests, None, FIVE
    )  # a module only the solution can import never runs in the judge: the tests run in-process, untrusted
    assert (planted.passed, planted.trusted) == (1, False), planted
    assert "mymath" in str(planted.untrusted_reason)
