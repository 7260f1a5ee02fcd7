"""Process memory facts from Linux procfs, for benchmarks and experiments (standard library)."""

from __future__ import annotations

import os
import resource


def can_reset_peak() -> bool:
    """Whether this process may reset its peak-RSS mark (else measure in a fresh process)."""
    return os.access("/proc/self/clear_refs", os.W_OK) and os.path.exists("/proc/self/status")


def reset_peak() -> None:
    """Resets the kernel's peak-RSS mark of this process (Linux: clear_refs 5)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:
        pass


def peak_bytes() -> int:
    """This process's peak resident memory since the last reset (VmHWM), else ru_maxrss."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def available_bytes() -> int | None:
    """MemAvailable of the machine, or None where /proc/meminfo cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
