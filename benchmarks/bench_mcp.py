"""Benchmark read_text_file calls/s over stdio and streamable HTTP: mcpgym's files server vs the reference Node server.

Every server is driven by the same TypeScript SDK client (tests/node/client.mjs) in the same run, in interleaved
rounds, reading 4 KB files: 1,000 sequential calls from one client, and the same number spread over 16 concurrent
clients. Over HTTP it also measures sessions: each opened, used for one call and closed (`--sessions` of them, one
at a time and 16 at a time), as an RL episode does. Prints a table; writes JSON to benchmarks/results/ (gitignored).

Usage:
    python benchmarks/bench_mcp.py [--calls 1000] [--clients 16] [--rounds 3] [--transports stdio,http]
                                   [--sessions 300] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "tests" / "node"
CLIENT = NODE_DIR / "client.mjs"
RESULTS = ROOT / "benchmarks" / "results"
HELPERS = Path(__file__).resolve().parent / "_mcp_bench_servers.py"
REFERENCE = NODE_DIR / "node_modules" / "@modelcontextprotocol" / "server-filesystem" / "dist" / "index.js"
TOKEN = "bench-token"
WORKSPACE_ID = "bench"


@dataclass
class Case:
    """One server under test on one transport."""

    name: str
    transport: str
    target: dict[str, Any]
    path_template: str
    pid: int | None = None  # HTTP servers: the process whose CPU time is measured
    runs: list[dict[str, Any]] = field(default_factory=list)


def _own_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(c) for c in task.read_text().split()]
    return found


def cpu_seconds(pid: int) -> float:
    """CPU seconds used so far by a process and its live descendants (a gateway with --workers has several)."""
    total, stack = 0.0, [pid]
    while stack:
        current = stack.pop()
        try:
            total += _own_cpu_seconds(current)
            stack += _children(current)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def run_client(case: Case, calls: int, clients: int, mode: str = "bench") -> dict[str, Any]:
    config = {
        "mode": mode,
        "target": case.target,
        "bench": {
            "tool": "read_text_file",
            "arguments": {"path": case.path_template},
            "calls": calls,
            "clients": clients,
        },
    }
    before = cpu_seconds(case.pid) if case.pid else None
    proc = subprocess.run(
        ["node", str(CLIENT), json.dumps(config)],
        check=False,
        capture_output=True,
        text=True,
        cwd=NODE_DIR,
        timeout=900,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{case.name}: client failed: {proc.stderr[-2000:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["kind"] = "calls" if mode == "bench" else "sessions"
    if case.pid and before is not None:
        out["serverCpuSeconds"] = cpu_seconds(case.pid) - before  # includes connect and warm-up calls
    if out["errors"]:
        raise RuntimeError(f"{case.name}: {out['errors']} calls failed")
    return out


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}) before answering {url}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answers (404/405/406 is fine: it is up)
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def make_files(directory: Path, count: int, size: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    line = ("lorem ipsum dolor sit amet " * 4)[:99] + "\n"
    body = (line * (size // len(line) + 1))[:size]
    for i in range(count):
        (directory / f"f{i}.txt").write_text(body)


def build_cases(
    transports: list[str],
    work: Path,
    procs: list[subprocess.Popen[bytes]],
    gateways: list[Any],
    workers: list[int],
    *,
    minimal: bool = True,
    other_tree: Path | None = None,
) -> list[Case]:
    from mcp_servers.gateway.process import GatewayProcess, free_port

    py = sys.executable
    direct = work / "direct"
    cases: list[Case] = []
    if "stdio" in transports:
        cases += [
            Case(
                "reference (Node server-filesystem)",
                "stdio",
                {"transport": "stdio", "command": "node", "args": [str(REFERENCE), str(direct)]},
                f"{direct}/f{{i}}.txt",
            ),
            Case(
                "minimal Python MCPServer tool",
                "stdio",
                {"transport": "stdio", "command": py, "args": [str(HELPERS), "minimal-stdio"]},
                f"{direct}/f{{i}}.txt",
            ),
            Case(
                "mcpgym files, SDK stdio streams",
                "stdio",
                {"transport": "stdio", "command": py, "args": [str(HELPERS), "files-sdk-stdio", str(direct)]},
                "f{i}.txt",
            ),
            Case(
                "mcpgym files (mcpgym serve files)",
                "stdio",
                {
                    "transport": "stdio",
                    "command": py,
                    "args": ["-m", "mcpgym.cli", "serve", "files", "--transport", "stdio", "--workspace", str(direct)],
                },
                "f{i}.txt",
            ),
        ]
    if "http" in transports:
        ref_port = free_port()
        ref = subprocess.Popen(
            ["node", str(NODE_DIR / "ref-http.mjs"), str(ref_port), str(direct)],
            cwd=NODE_DIR,
            stderr=subprocess.DEVNULL,
        )
        procs.append(ref)
        wait_http(f"http://127.0.0.1:{ref_port}/mcp", ref)
        cases.append(
            Case(
                "reference handler (Node SDK, HTTP)",
                "http",
                {"transport": "http", "url": f"http://127.0.0.1:{ref_port}/mcp"},
                f"{direct}/f{{i}}.txt",
                ref.pid,
            )
        )
        if minimal:
            min_port = free_port()
            minimal_proc = subprocess.Popen(
                [py, str(HELPERS), "minimal-http", str(min_port)], stderr=subprocess.DEVNULL
            )
            procs.append(minimal_proc)
            wait_http(f"http://127.0.0.1:{min_port}/mcp", minimal_proc)
            cases.append(
                Case(
                    "minimal Python MCPServer tool",
                    "http",
                    {"transport": "http", "url": f"http://127.0.0.1:{min_port}/mcp"},
                    f"{direct}/f{{i}}.txt",
                    minimal_proc.pid,
                )
            )
        gateway_root = work / "gateway"
        make_files(gateway_root / f"w-{WORKSPACE_ID}", 0, 0)
        for f in direct.iterdir():
            shutil.copy(f, gateway_root / f"w-{WORKSPACE_ID}" / f.name)
        variants: list[tuple[str, list[str], dict[str, str] | None]] = []
        if other_tree is not None:  # the gateway of another checkout (e.g. an older commit), same command
            env = {**os.environ, "PYTHONPATH": str(other_tree), "PYTHONSAFEPATH": "1"}  # not the working dir
            variants.append((f"gateway of {other_tree.name} /files/mcp", [], env))
        for n in workers:
            label = "mcpgym gateway /files/mcp" + (f" ({n} workers)" if n != 1 else "")
            variants.append((label, ["--workers", str(n)] if n != 1 else [], None))
        for label, extra, env in variants:
            gw = GatewayProcess(["files"], workspace=gateway_root, token=TOKEN, extra_args=extra, env=env).start()
            gateways.append(gw)
            assert gw.proc is not None
            cases.append(
                Case(
                    label,
                    "http",
                    {
                        "transport": "http",
                        "url": gw.url("files"),
                        "headers": {"Authorization": f"Bearer {TOKEN}", "Mcpgym-Workspace": WORKSPACE_ID},
                    },
                    "f{i}.txt",
                    gw.proc.pid,
                )
            )
    return cases


def summarize(cases: list[Case]) -> list[dict[str, Any]]:
    rows = []
    for case in cases:
        for kind, clients in sorted({(r["kind"], r["clients"]) for r in case.runs}):
            runs = [r for r in case.runs if r["clients"] == clients and r["kind"] == kind]
            rates = [r["calls"] / r["seconds"] for r in runs]
            cpu = [r["serverCpuSeconds"] / r["calls"] for r in runs if r.get("serverCpuSeconds") is not None]
            rows.append(
                {
                    "transport": case.transport,
                    "kind": kind,
                    "server": case.name,
                    "clients": clients,
                    "median_per_s": statistics.median(rates),
                    "best_per_s": max(rates),
                    "server_cpu_ms_per_op": statistics.median(cpu) * 1000 if cpu else None,
                    "rounds": len(runs),
                }
            )
    for row in rows:
        ref = next(
            r
            for r in rows
            if r["transport"] == row["transport"]
            and r["clients"] == row["clients"]
            and r["kind"] == row["kind"]
            and r["server"].startswith("reference")
        )
        row["vs_reference"] = row["median_per_s"] / ref["median_per_s"]
        if row["server_cpu_ms_per_op"] and ref["server_cpu_ms_per_op"]:
            row["cpu_vs_reference"] = ref["server_cpu_ms_per_op"] / row["server_cpu_ms_per_op"]
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'transport':9} {'measure':8} {'clients':>7}  {'server':40} {'per s (median)':>14} {'best':>7} "
        f"{'x ref':>6} {'srv CPU ms/op':>13} {'x ref (CPU)':>11}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        cpu = f"{r['server_cpu_ms_per_op']:.3f}" if r["server_cpu_ms_per_op"] else "-"
        cpu_x = f"{r['cpu_vs_reference']:.2f}" if r.get("cpu_vs_reference") else "-"
        print(
            f"{r['transport']:9} {r['kind']:8} {r['clients']:>7}  {r['server']:40} {r['median_per_s']:>14.0f} "
            f"{r['best_per_s']:>7.0f} {r['vs_reference']:>6.2f} {cpu:>13} {cpu_x:>11}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000, help="calls per measurement (default 1000)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients for the concurrent runs")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    parser.add_argument("--file-bytes", type=int, default=4096, help="size of each file read (default 4096)")
    parser.add_argument("--transports", default="stdio,http", help="comma-separated: stdio, http")
    parser.add_argument("--sessions", type=int, default=300, help="HTTP sessions per measurement (0: skip)")
    parser.add_argument("--workers", default="1", help="gateway --workers values to measure, comma-separated")
    parser.add_argument("--no-minimal", action="store_true", help="leave out the minimal Python server rows")
    parser.add_argument(
        "--other-tree",
        type=Path,
        default=None,
        help="also measure the gateway of another checkout of mcpgym (e.g. `git worktree add /tmp/old <commit>`)",
    )
    args = parser.parse_args()
    if shutil.which("node") is None or not REFERENCE.exists():
        raise SystemExit("needs Node 20 and `npm install` in tests/node (scripts/setup-system.sh does it)")
    transports = [t.strip() for t in args.transports.split(",") if t.strip()]
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    procs: list[subprocess.Popen[bytes]] = []
    gateways: list[Any] = []
    with tempfile.TemporaryDirectory(prefix="mcpgym-bench-") as tmp:
        work = Path(tmp)
        make_files(work / "direct", args.calls, args.file_bytes)
        try:
            cases = build_cases(
                transports, work, procs, gateways, workers, minimal=not args.no_minimal, other_tree=args.other_tree
            )
            for rnd in range(args.rounds):
                for kind, count in (("bench", args.calls), ("sessions", args.sessions)):
                    if count <= 0:
                        continue
                    for clients in (1, args.clients):
                        for case in cases:
                            if kind == "sessions" and case.transport != "http":
                                continue
                            result = run_client(case, count, clients, kind)
                            case.runs.append(result)
                            print(
                                f"round {rnd + 1} {case.transport:5} {result['kind']:8} {clients:2} clients "
                                f"{case.name}: {result['calls'] / result['seconds']:.0f}/s",
                                file=sys.stderr,
                            )
        finally:
            for gw in gateways:
                gw.stop()
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
    rows = summarize(cases)
    print_table(rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bench_mcp-{time.strftime('%Y%m%d-%H%M%S')}.json"
    load = os.getloadavg()
    out.write_text(json.dumps({"args": vars(args), "loadavg": load, "rows": rows}, indent=2, default=str))
    print(f"\nload average during run: {load[0]:.1f}; results: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
