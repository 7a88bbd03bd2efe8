"""How much memory this machine has, so that an absurd size is refused with a
clear error before anything is allocated, instead of ending in a MemoryError
or the kernel's out-of-memory killer.

The limit is the physical memory, or the container's memory limit (cgroup)
when that is smaller.
"""

from __future__ import annotations

import os
from pathlib import Path

_CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max",  # cgroup v2
                  "/sys/fs/cgroup/memory/memory.limit_in_bytes")  # cgroup v1


def memory_limit() -> int | None:
    """Bytes of memory this process may use, or None when it cannot be told."""
    limits = []
    try:
        limits.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # not on this system (Windows)
        pass
    for path in _CGROUP_LIMITS:
        try:
            limits.append(int(Path(path).read_text().strip()))
        except (OSError, ValueError):  # absent, or "max" (no limit)
            pass
    return min(limits) if limits else None


def too_big(nbytes: int) -> str | None:
    """None when ``nbytes`` fit in memory, else a phrase for a message, such
    as ``8.0 TB, more than the 23.5 GB of memory here``."""
    limit = memory_limit()
    if limit is None or nbytes <= limit:
        return None
    return f"{format_bytes(nbytes)}, more than the {format_bytes(limit)} of memory here"


def format_bytes(nbytes: int) -> str:
    """``1536`` -> ``1.5 KB`` (powers of 1024, as memory is counted)."""
    units = ("bytes", "KB", "MB", "GB", "TB", "PB", "EB")
    size, unit = float(nbytes), 0
    while size >= 1024 and unit < len(units) - 1:
        size, unit = size / 1024, unit + 1
    return f"{nbytes} bytes" if unit == 0 else f"{size:.1f} {units[unit]}"
