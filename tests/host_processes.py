"""Host processes by uid: what the sandbox tests check is gone after a call."""

from __future__ import annotations

import os
from pathlib import Path


def uid_processes(uid: int) -> list[int]:
    """Host pids whose real, effective, saved or file-system uid is `uid`."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            status = Path(f"/proc/{entry}/status").read_text() if entry.isdigit() else ""
        except OSError:
            continue
        if any(line.startswith("Uid:") and str(uid) in line.split()[1:] for line in status.splitlines()):
            found.append(int(entry))
    return found
