"""Search server benchmark: index build time, bm25 queries/s against a full-scan baseline, MCP calls/s over stdio.

Usage: .venv/bin/python benchmarks/bench_search.py [--queries 200] [--calls 300]
Writes only to a temporary directory and benchmarks/results/ (gitignored).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from mcp import Client, StdioServerParameters

from mcp_servers.search.index import build_index, index_path, match_expression, search_index
from mcp_servers.settings import ServerSettings

QUERIES = [
    "speed of light", "who painted the Mona Lisa", "capital of Australia", "photosynthesis in plants",
    "largest desert", "French Revolution", "theory of evolution", "Mount Everest height", "jazz music origins",
    "ancient Egypt pyramids", "DNA double helix", "World War II", "Roman Empire", "black hole", "Olympic Games",
]  # fmt: skip


def _scan_baseline(path: Path, query: str, k: int = 10) -> list[str]:
    """Rank by counting query-word occurrences over every document (no index): what FTS5 replaces."""
    words = [w.strip('"') for w in match_expression(query).split(" OR ")]
    with contextlib.closing(sqlite3.connect(path)) as db:
        scored = []
        for doc_id, title, text in db.execute("SELECT id, title, text FROM docs"):
            body = (title + " " + text).lower()
            score = sum(body.count(w) for w in words) + 10 * sum(title.lower().count(w) for w in words)
            if score:
                scored.append((score, doc_id))
    return [d for _, d in sorted(scored, reverse=True)[:k]]


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}/s"


async def _stdio_calls(data_dir: Path, tool: str, server: str, args_list: list[dict[str, object]]) -> float:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", f"mcp_servers.{server}"], env={"MCPGYM_DATA_DIR": str(data_dir)}
    )
    async with Client(params) as client:
        await client.call_tool(tool, args_list[0])  # warm up (first use opens the index)
        start = time.perf_counter()
        for args in args_list:
            result = await client.call_tool(tool, args)
            assert not result.is_error, result.content
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=200, help="library-level queries per method")
    parser.add_argument("--calls", type=int, default=300, help="MCP tool calls per server over stdio")
    opts = parser.parse_args()
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = ServerSettings(data_dir=Path(tmp))
        stats = build_index(settings, rebuild=True)
        rows.append(("index build (10,033 docs, cold)", f"{stats['seconds']:.2f} s", "-"))
        path = index_path(settings)

        queries = [QUERIES[i % len(QUERIES)] for i in range(opts.queries)]
        start = time.perf_counter()
        for q in queries:
            search_index(settings, q, k=10)
        fts = time.perf_counter() - start
        n_scan = max(5, opts.queries // 20)
        start = time.perf_counter()
        for q in queries[:n_scan]:
            _scan_baseline(path, q)
        scan = time.perf_counter() - start
        rows.append(
            ("search_index, FTS5 bm25 (library)", _rate(opts.queries, fts), f"{fts / opts.queries * 1e3:.2f} ms")
        )
        rows.append(("baseline: full scan word count", _rate(n_scan, scan), f"{scan / n_scan * 1e3:.2f} ms"))

        search_args: list[dict[str, object]] = [
            {"query": QUERIES[i % len(QUERIES)], "k": 10} for i in range(opts.calls)
        ]
        geo_args: list[dict[str, object]] = [{"name": "Paris"} for _ in range(opts.calls)]
        t_search = asyncio.run(_stdio_calls(Path(tmp), "search", "search", search_args))
        t_geo = asyncio.run(_stdio_calls(Path(tmp), "geocode", "weather", geo_args))
        rows.append(("MCP search over stdio", _rate(opts.calls, t_search), f"{t_search / opts.calls * 1e3:.2f} ms"))
        rows.append(("baseline: MCP geocode (offline) over stdio", _rate(opts.calls, t_geo),
                     f"{t_geo / opts.calls * 1e3:.2f} ms"))  # fmt: skip

    width = max(len(r[0]) for r in rows)
    print(f"{'measurement':<{width}}  {'rate / time':>12}  {'per op':>10}")
    for name, rate, per in rows:
        print(f"{name:<{width}}  {rate:>12}  {per:>10}")
    print(f"FTS5 speed-up over the full scan: {(scan / n_scan) / (fts / opts.queries):.0f}x")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "bench_search.json").write_text(json.dumps({"rows": rows}, indent=2))


if __name__ == "__main__":
    main()
