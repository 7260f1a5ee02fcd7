"""Our QAOA simulators beside QOKit's fast-uniform-rotation (FUR) ones, on the same instances.

    python hack/bench_qokit.py            # creates hack/.build/qokit-venv (PyPI qokit) once

QOKit (Lykov et al. 2023, PyPI ``qokit``) simulates QAOA on the full 2^n register: the cost as a
precomputed diagonal, the X mixer (``furx``) or XY mixers (``furxy`` on qubit pairs) as in-place
rotations. Where it applies:

* **binary ansatz** (X mixer, n = S * ceil(log2 K) qubits): our qsim path
  (``harness.time_evaluation``) against QOKit's ``furx`` simulator on the same cost diagonal; one
  p = 3 state each (QOKit: phase + mixer, in place; ours: the state and its energy);
* **one-hot XY ansatz** (an XY mixer on each shard's K qubits, S * K qubits): our K^S subspace
  simulator against QOKit's ``furxy`` on every edge of every shard's complete graph over the
  2^(S K) register (the one-hot states' costs, every other bitstring a penalty), p = 3.

QOKit runs in its own virtual environment (its dependencies are not GreenShard's); this script
writes each diagonal to a file and times QOKit in a child process, on its C backend (built here:
the wheel ships its sources; its pure-Python backend took 72.8 s for one 20-qubit p = 3 state,
no fair comparison) with one thread, as ours. No GPU here (QOKit's cuda backends not run). The
table is seconds per p = 3 state (median of 3 after a warm-up); ``QOKit/ours`` is the ratio.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "operator"))

from greenshard import hamiltonian, harness, instances, subspace  # noqa: E402
from greenshard.solvers import onehot  # noqa: E402

VENV = ROOT / "hack" / ".build" / "qokit-venv"
QOKIT = "qokit==0.1.4"
DEPTH = 3
BINARY_QUBITS = (20, 24)
ONEHOT_SIZES = ((6, 3), (5, 4), (8, 3))  # 18, 20, 24 qubits in QOKit's register

CHILD = r"""
import ctypes, json, sys, time, warnings
warnings.simplefilter("ignore")
import numpy as np
from numpy.ctypeslib import ndpointer
from qokit.fur import choose_simulator
from qokit.fur.c.csim import wrapper
from qokit.fur.c.csim.lib import lib
kind, path, n, gammas, betas, edges = json.loads(sys.argv[1])
diag = np.load(path)
apply_diagonal = lib.apply_diagonal  # QOKit's own phase kernel (its C simulators call it)
apply_diagonal.restype = None
double_p = ndpointer(ctypes.c_double, flags="C_CONTIGUOUS")
apply_diagonal.argtypes = [double_p, double_p, ctypes.c_double, double_p, ctypes.c_size_t]
if kind == "x":
    sim = choose_simulator(name="c")(n, costs=diag)
else:
    sv0 = np.load(path.replace(".npy", "-sv0.npy"))
def state():
    if kind == "x":  # |+>^n, then the phase and the X mixer, in place
        return sim.simulate_qaoa(gammas, betas)
    re, im = sv0.real.copy(), sv0.imag.copy()  # the W states
    for g, b in zip(gammas, betas):
        apply_diagonal(re, im, -0.5 * g, diag, re.size)
        for q1, q2 in edges:
            wrapper.furxy(re, im, b, n - 1 - q1, n - 1 - q2)
    return re, im
state()  # warm-up
times = []
for _ in range(3):
    start = time.perf_counter(); state(); times.append(time.perf_counter() - start)
print(json.dumps({"seconds": sorted(times)[1]}))
"""


def ensure_venv() -> Path:
    """QOKit in its own venv, with its C simulator built: the PyPI wheel ships the C sources
    without their headers and without the library, so the prototypes are taken from the sources
    and the library is compiled here (-O3 -march=native -fopenmp, as QOKit's own build)."""
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", QOKIT], check=True)
    found = subprocess.run(
        [str(python), "-c", "import qokit, pathlib; print(pathlib.Path(qokit.__file__).parent)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    csim = Path(found.stdout.strip()) / "fur" / "c" / "csim"
    if not (csim / "libcsim.so").exists():
        sources = sorted((csim / "src").glob("*.c"))
        prototypes = [
            " ".join(m.group(1).split()) + ";"
            for source in sources
            for m in re.finditer(r"^(void [a-z_]+\([^)]*\))", source.read_text(), re.M)
        ]
        header = "#pragma once\n#include <stddef.h>\n" + "\n".join(prototypes) + "\n"
        for name in ("fur.h", "diagonal.h", "qaoa_fur.h"):
            (csim / "src" / name).write_text(header)
        subprocess.run(
            ["gcc", "-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", f"-I{csim / 'src'}",
             "-o", str(csim / "libcsim.so"), *map(str, sources), "-lm"],
            check=True,
        )  # fmt: skip
    return python


def qokit_seconds(python: Path, kind: str, diag_path: Path, n: int, edges: list) -> float:
    gammas = [0.1 * (j + 1) for j in range(DEPTH)]
    betas = [0.3 * (DEPTH - j) / DEPTH for j in range(DEPTH)]
    arg = json.dumps([kind, str(diag_path), n, gammas, betas, edges])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    done = subprocess.run(
        [str(python), "-c", CHILD, arg], capture_output=True, text=True, check=True, env=env
    )
    return float(json.loads(done.stdout.strip().splitlines()[-1])["seconds"])


def main() -> int:
    python = ensure_venv()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in BINARY_QUBITS:
            problem = instances.synthetic_problem(n, seed=instances.HELD_OUT_SEEDS[0])
            diag = hamiltonian.CostHamiltonian(problem).diagonal().astype(np.float64)
            path = Path(tmp) / f"x{n}.npy"
            np.save(path, diag)
            ours = harness.time_evaluation(
                problem, DEPTH, backend="qsim", threads=1, repeat=3
            ).seconds
            theirs = qokit_seconds(python, "x", path, n, [])
            rows.append(("binary, X mixer", f"{n} qubits", ours, theirs))
            print(json.dumps(rows[-1]), flush=True)
        for shards, pools in ONEHOT_SIZES:
            problem = instances.family_problem("heldout-close-hops", shards, pools, 100_000)
            space = subspace.PlacementSpace(problem)
            sim = onehot.SubspaceSimulator(space, mixer="complete", threads=1)
            n = shards * pools
            every = np.arange(space.size)
            register = onehot.register_index(space, every)
            cost = (space.emissions_of(every) - sim.offset) / sim.scale + sim.penalty * ~(
                space.feasible_of(every)
            )
            diag = np.full(2**n, 2.0 * (1.0 + sim.penalty), dtype=np.float64)
            diag[register] = cost
            path = Path(tmp) / f"xy{n}.npy"
            np.save(path, diag)
            sv0 = np.zeros(2**n, dtype=np.complex128)
            sv0[register] = 1.0 / math.sqrt(space.size)
            np.save(Path(tmp) / f"xy{n}-sv0.npy", sv0)
            del diag, sv0
            edges = [
                [s * pools + i, s * pools + j]
                for s in range(shards)
                for i, j in onehot.xy_edges(pools, "complete")
            ]
            gammas, betas = onehot.linear_ramp(DEPTH, 1.0, 0.3)
            times = []
            for _ in range(3):
                start = time.perf_counter()
                sim.state(gammas, betas)
                times.append(time.perf_counter() - start)
            ours = sorted(times)[1]
            theirs = qokit_seconds(python, "xy", path, n, edges)
            rows.append(("one-hot, XY complete", f"{shards}x{pools} ({n} qubits)", ours, theirs))
            print(json.dumps(rows[-1]), flush=True)
    print(f"\nseconds per p={DEPTH} state; load average {os.getloadavg()[0]:.1f}")
    print(f"{'ansatz':<22} {'size':<18} {'ours':>10} {'QOKit':>10} {'QOKit/ours':>11}")
    for name, size, ours, theirs in rows:
        print(f"{name:<22} {size:<18} {ours:>10.4f} {theirs:>10.4f} {theirs / ours:>11.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
