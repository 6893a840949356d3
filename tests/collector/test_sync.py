"""The synchronous facade over tool sessions (as TRL environments use it)."""

from __future__ import annotations

import pytest
from toy_fixtures import toy_stdio_spec

from collector.errors import ToolSessionError
from collector.sync import BackgroundLoop, SyncToolPool


def test_sync_pool_session_roundtrip() -> None:
    with SyncToolPool({"files": toy_stdio_spec()}) as pool:
        assert pool.server_names == ["files"]
        with pool.session(["files"]) as s:
            assert any(t["function"]["name"] == "add" for t in s.tools)
            s.setup_workspace({"x/y.txt": "why"})
            assert s.snapshot_files() == {"x/y.txt": "why"}
            assert s.call("add", '{"a": 3, "b": 4}').text == "7"
            assert s.call("add", "{").error_kind == "invalid_json"
            with pytest.raises(ToolSessionError, match="needs the 'exec' server"):
                s.run_tests("x = 1", "assert x == 1", None)


def test_background_loop_raises_the_coroutines_error() -> None:
    loop = BackgroundLoop()

    async def boom() -> None:
        raise ValueError("inside")

    try:
        with pytest.raises(ValueError, match="inside"):
            loop.run(boom())
    finally:
        loop.close()
