"""Session-wide fixtures: the Docker engine the docker tests share, and what they leave behind.

`docker_engine` uses a running engine or starts `dockerd` once per session (as root). When the session ends (the last
one, where several test sessions share the engine) it removes the images the tests built (every tag of
`docker_base.TEST_IMAGE_REPOS`; `MCPGYM_KEEP_TEST_IMAGES=1` keeps them for a faster next run) and stops the daemon,
with its containerd, if a test session started it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from docker_base import Engine, EngineUnavailable, start_engine


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """The Docker engine for the session's docker tests (skips them, saying why, when there is none)."""
    try:
        engine = start_engine(tmp_path_factory.mktemp("dockerd") / "dockerd.log")
    except EngineUnavailable as exc:
        print(f"skipping the Docker tests: {exc}")
        pytest.skip(str(exc))
    try:
        yield engine
    finally:
        engine.release(remove_images=os.environ.get("MCPGYM_KEEP_TEST_IMAGES") != "1")
