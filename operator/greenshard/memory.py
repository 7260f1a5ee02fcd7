"""Memory: the one estimate of what a QAOA state vector costs, and this process's facts from
Linux procfs (for benchmarks and experiments; standard library only)."""

from __future__ import annotations

import os
import resource

#: Bytes per basis state (amplitude) while QAOA runs: the float32 cost (4), the complex64 state
#: (8) and the backend's copy of it (8), plus slack for sampling's blocks. Measured: 5342 MiB
#: peak at 28 qubits (README "Benchmark"), 20.9 bytes a basis state with the interpreter.
BYTES_PER_AMPLITUDE = 24


def qaoa_bytes(qubits: int) -> int:
    """About how much memory a QAOA solve or energy evaluation on ``qubits`` qubits needs."""
    return BYTES_PER_AMPLITUDE << qubits


def largest_qubits(available: float) -> int:
    """The most qubits whose QAOA state fits in ``available`` bytes."""
    return max(0, (int(available) // BYTES_PER_AMPLITUDE).bit_length() - 1)


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
