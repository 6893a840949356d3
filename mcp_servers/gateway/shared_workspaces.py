"""Workspaces of a gateway with several worker processes over one workspace root.

A session's workspace (`s-<session id>`) is only ever used by the worker that opened the session (its requests are
routed there). A header workspace (`w-<Mcpgym-Workspace>`) may be used by every worker: each request goes to
whichever process accepted its connection, and all of them find the same directory under the shared root. Each
worker's `WorkspaceManager` tracks its own use, so one worker would remove a header workspace that it has not used
for the idle timeout while another worker is still using it. Here every use also stamps the directory's
modification time, and a worker removes a header workspace only when it has been idle there and on disk (no worker
used it) for the whole timeout.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from mcp_servers.workspace import WorkspaceManager

__all__ = ["SharedWorkspaceManager"]


class SharedWorkspaceManager(WorkspaceManager):
    """A `WorkspaceManager` whose header workspaces stay alive while any worker process uses them."""

    def current(self, ctx: Any | None) -> Path:
        path = super().current(ctx)
        if path.name.startswith("w-"):
            try:
                os.utime(path)
            except FileNotFoundError:  # removed by another worker, idle everywhere until this request
                path.mkdir(exist_ok=True)
        return path

    def sweep(self, now: float | None = None) -> list[str]:
        now = time.monotonic() if now is None else now
        wall = time.time()
        with self._lock:
            entries = [(k, e) for k, e in self._entries.items() if k.startswith("w-")]
        for _key, entry in entries:
            if now - entry.last_used <= self.idle_timeout_s:
                continue
            try:
                age = wall - os.stat(entry.path).st_mtime
            except FileNotFoundError:
                continue
            if age <= self.idle_timeout_s:  # another worker used it meanwhile
                entry.last_used = max(entry.last_used, now - age)
        return super().sweep(now)
