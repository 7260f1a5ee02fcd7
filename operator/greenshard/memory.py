"""Memory: the one estimate of what a QAOA state vector costs, and this process's facts from
Linux procfs (for benchmarks and experiments; standard library only)."""

from __future__ import annotations

import ctypes
import os
import resource
from collections.abc import Iterator
from contextlib import contextmanager

#: Bytes per basis state (amplitude) while QAOA runs: the float32 cost (4), the complex64 state
#: (8) and the backend's new buffer of each call (8), plus slack for sampling's blocks. The one
#: estimate: the operator's bound (k8s/solving.py), the chart's memory (values.yaml
#: resources.memory.bytesPerAmplitude, held equal by a test) and bench. bench measures the peak of
#: an evaluation above the worker's memory before the setup: 20.0-20.3 at 24-28 qubits.
BYTES_PER_AMPLITUDE = 24


#: The glibc tunable that makes malloc ask for transparent huge pages (glibc >= 2.35): qsim's new
#: state buffer of every call is then faulted in 2 MiB at a time (see solvers/backends.py).
HUGEPAGE_TUNABLE = "glibc.malloc.hugetlb=1"


#: The one-hot ansatz (solvers/onehot.py): the complex64 state (8 bytes an amplitude) and the
#: bit-packed feasibility mask (1/8), updated in place; no cost vector above 2**22 amplitudes.
ONEHOT_BYTES_PER_AMPLITUDE = 8.125
#: Its fixed part: the interpreter with numpy, scipy and cirq, and the block scratch. Measured
#: peak RSS 2.13 GiB at 12 shards x 5 pools (244,140,625 amplitudes: 1.85 GiB of state and mask).
ONEHOT_OVERHEAD_BYTES = 320 << 20


def onehot_bytes(amplitudes: int) -> int:
    """About how much memory a one-hot QAOA solve over ``amplitudes`` placements needs."""
    return int(amplitudes * ONEHOT_BYTES_PER_AMPLITUDE) + ONEHOT_OVERHEAD_BYTES


#: The threshold ansatz (solvers/threshold.py): no state vector (two amplitudes are exact, see
#: there), only the placement table's bit-packed feasibility mask (1/8 byte a placement) and the
#: block scratch of its scans; the same fixed part as the one-hot ansatz.
THRESHOLD_BYTES_PER_AMPLITUDE = 0.125


def threshold_bytes(amplitudes: int) -> int:
    """About how much memory a threshold-ansatz solve over ``amplitudes`` placements needs."""
    return int(amplitudes * THRESHOLD_BYTES_PER_AMPLITUDE) + ONEHOT_OVERHEAD_BYTES


def qaoa_bytes(qubits: int) -> int:
    """About how much memory a QAOA solve or energy evaluation on ``qubits`` qubits needs."""
    return BYTES_PER_AMPLITUDE << qubits


def largest_qubits(available: float) -> int:
    """The most qubits whose QAOA state fits in ``available`` bytes."""
    return max(0, (int(available) // BYTES_PER_AMPLITUDE).bit_length() - 1)


def resident_bytes() -> int:
    """This process's resident memory now (VmRSS), 0 where /proc cannot be read."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


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


def hugepage_malloc(environ: dict[str, str] | None = None) -> dict[str, str]:
    """``environ`` (default: this process's) with :data:`HUGEPAGE_TUNABLE` added to
    ``GLIBC_TUNABLES``, for a process about to be started (glibc reads it once, at start)."""
    env = dict(os.environ if environ is None else environ)
    tunables = [t for t in env.get("GLIBC_TUNABLES", "").split(":") if t]
    name = HUGEPAGE_TUNABLE.split("=", 1)[0]
    tunables = [t for t in tunables if t.split("=", 1)[0] != name] + [HUGEPAGE_TUNABLE]
    env["GLIBC_TUNABLES"] = ":".join(tunables)
    return env


def without_hugepage_malloc(environ: dict[str, str] | None = None) -> dict[str, str]:
    """``environ`` (default: this process's) without :data:`HUGEPAGE_TUNABLE`."""
    env = dict(os.environ if environ is None else environ)
    name = HUGEPAGE_TUNABLE.split("=", 1)[0]
    kept = [t for t in env.get("GLIBC_TUNABLES", "").split(":") if t and not t.startswith(name)]
    if kept:
        env["GLIBC_TUNABLES"] = ":".join(kept)
    else:
        env.pop("GLIBC_TUNABLES", None)
    return env


def hugepage_malloc_active(probe_bytes: int = 64 << 20) -> bool:
    """Whether malloc hands this process transparent huge pages: a fresh ``probe_bytes`` block
    from libc's malloc, touched, is looked up in /proc/self/smaps. (64 MiB: above glibc's largest
    dynamic mmap threshold, so the block is a new mapping, not heap that numpy may have advised
    for huge pages already. The tunable is read once, at
    start, and only where the kernel's THP mode allows it; glibc also rewrites the variable in
    the process's initial environment, so this looks at the pages, not at the variable.)"""
    try:
        libc = ctypes.CDLL(None)
        libc.malloc.restype = ctypes.c_void_p
        libc.malloc.argtypes = [ctypes.c_size_t]
        libc.free.argtypes = [ctypes.c_void_p]
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        return False
    pointer = libc.malloc(probe_bytes)
    if not pointer:
        return False
    try:
        ctypes.memset(pointer, 1, probe_bytes)
        return _anon_huge_kib(pointer) > 0
    finally:
        libc.free(pointer)


def _anon_huge_kib(address: int) -> int:
    """AnonHugePages (KiB) of the mapping that holds ``address``, from /proc/self/smaps."""
    inside = False
    try:
        with open("/proc/self/smaps", encoding="ascii", errors="replace") as handle:
            for line in handle:
                head = line.split(maxsplit=1)[0] if line.strip() else ""
                if "-" in head and not head.endswith(":"):
                    lo, _, hi = head.partition("-")
                    inside = int(lo, 16) <= address < int(hi, 16)
                elif inside and head == "AnonHugePages:":
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


@contextmanager
def hugepage_children() -> Iterator[None]:
    """Processes started inside this block (spawn copies the environment) ask malloc for
    transparent huge pages; this process's environment is restored after."""
    saved = os.environ.get("GLIBC_TUNABLES")
    os.environ["GLIBC_TUNABLES"] = hugepage_malloc()["GLIBC_TUNABLES"]
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("GLIBC_TUNABLES", None)
        else:
            os.environ["GLIBC_TUNABLES"] = saved
