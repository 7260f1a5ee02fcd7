"""Noisy experiment: QAOA under depolarizing and amplitude-damping noise.

For small seeded synthetic instances, QAOA angles are optimised without noise (COBYLA from the
linear ramp, on qsim), then the same circuit runs with a noise channel on every qubit after every
moment (the Hadamards, each cost layer, each mixer layer: 2p + 1 channels per qubit). The
averages come from the exact density matrix (``cirq.DensityMatrixSimulator``); qsim's quantum
trajectories (``qsimcirq.QSimSimulator(noise=...)``) are checked against it on a subset.

Metrics of the final (mixed) state rho, with C the normalised cost diagonal (penalties included,
so every infeasible state costs more than every feasible one):

* approximation ratio ``(C_max - tr(rho C)) / (C_max - C_min)``: 1 at the optimum;
* probability of the optimum: the weight of the optimal placements in rho.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cirq
import numpy as np
import numpy.typing as npt

from greenshard import hamiltonian, harness, instances, model
from greenshard.errors import InfeasibleError
from greenshard.experiments import report
from greenshard.solvers import backends, exact
from greenshard.solvers.qaoa.engine import QAOAEngine
from greenshard.solvers.qaoa.options import QAOAOptions
from greenshard.solvers.qaoa.sampling import optimal_indices
from greenshard.solvers.qaoa.schedule import schedule

NOISES: dict[str, Callable[[float], cirq.Gate]] = {
    "depolarizing": cirq.depolarize,
    "amplitude damping": cirq.amplitude_damp,
}


@dataclass(frozen=True)
class NoisyConfig:
    qubits: tuple[int, ...] = (6, 8)
    depths: tuple[int, ...] = (1, 2, 3, 4, 5)
    rates: tuple[float, ...] = (0.0, 0.001, 0.003, 0.01, 0.03, 0.1)
    cobyla_evaluations: int = 40
    trajectories: int = 100  # qsim check
    check_depths: tuple[int, ...] = (1, 3)
    check_rates: tuple[float, ...] = (0.01, 0.1)


QUICK = NoisyConfig(
    qubits=(6,),
    depths=(1, 3),
    rates=(0.0, 0.01, 0.1),
    cobyla_evaluations=12,
    trajectories=16,
    check_depths=(1,),
    check_rates=(0.1,),
)


@dataclass
class Instance:
    qubits: int
    seed: int
    problem: model.Problem
    cost: npt.NDArray[np.float64]  # normalised cost diagonal
    optimal: npt.NDArray[np.int64]  # basis indices of the optimal placements


def instance(qubits: int, seed: int) -> Instance:
    for s in range(seed, seed + 64):
        problem = instances.synthetic_problem(qubits, s)
        try:
            reference = exact.solve_exact(problem)
        except InfeasibleError:
            continue
        ham = hamiltonian.CostHamiltonian(problem)
        offset, scale = ham.lower_bound, ham.scale()
        cost32 = ham.scaled_diagonal(offset, scale)
        optimal = optimal_indices(problem, ham, cost32, reference.emissions, offset, scale)
        return Instance(qubits, s, problem, cost32.astype(np.float64), optimal)
    raise RuntimeError(f"no feasible {qubits}-qubit instance from seed {seed}")


def angles(
    inst: Instance, depth: int, evaluations: int, seed: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Noiseless COBYLA angles (every angle) from the default linear ramp."""
    ham = hamiltonian.CostHamiltonian(inst.problem)
    backend = backends.Backend(backends.BackendOptions("qsim", threads=1))
    engine = QAOAEngine(ham, depth, backend, "diagonal")
    options = QAOAOptions(
        depth=depth,
        seed=seed,
        optimizer="cobyla",
        max_evaluations=max(evaluations, 2 * depth + 3),
    )
    return schedule(engine, options)


def circuit(
    cost: npt.NDArray[np.float64],
    gammas: npt.NDArray[np.float64],
    betas: npt.NDArray[np.float64],
    noise: cirq.Gate | None = None,
) -> tuple[cirq.Circuit, list[cirq.LineQubit]]:
    """|+>^n, then per layer exp(-i gamma C) (one diagonal gate) and the rx mixer; with
    ``noise``, the channel on every qubit after every moment."""
    n = round(math.log2(cost.size))
    qubits = cirq.LineQubit.range(n)
    moments: list[list[cirq.Operation]] = [list(cirq.H.on_each(*qubits))]
    for gamma, beta in zip(gammas, betas, strict=True):
        moments.append([cirq.DiagonalGate([float(-gamma * c) for c in cost]).on(*qubits)])
        moments.append(
            list(
                cirq.XPowGate(exponent=2.0 * float(beta) / np.pi, global_shift=-0.5).on_each(
                    *qubits
                )
            )
        )
    result = cirq.Circuit()
    for ops in moments:
        result.append(cirq.Moment(ops))
        if noise is not None:
            result.append(cirq.Moment(noise.on_each(*qubits)))
    return result, qubits


def metrics(inst: Instance, probabilities: npt.NDArray[np.float64]) -> tuple[float, float]:
    """(approximation ratio, probability of the optimum) of a distribution over basis states."""
    c_min, c_max = float(inst.cost.min()), float(inst.cost.max())
    energy = float(np.dot(probabilities, inst.cost))
    return (c_max - energy) / (c_max - c_min), float(probabilities[inst.optimal].sum())


def exact_metrics(
    inst: Instance,
    gammas: npt.NDArray[np.float64],
    betas: npt.NDArray[np.float64],
    noise: cirq.Gate | None,
) -> tuple[float, float]:
    circ, qubits = circuit(inst.cost, gammas, betas, noise)
    if noise is None:
        state = cirq.Simulator(dtype=np.complex128).simulate(circ, qubit_order=qubits)
        vector = state.final_state_vector
        return metrics(inst, np.abs(vector) ** 2)
    sim = cirq.DensityMatrixSimulator(dtype=np.complex128)
    rho = sim.simulate(circ, qubit_order=qubits).final_density_matrix
    return metrics(inst, np.real(np.diag(rho)).astype(np.float64))


def qsim_metrics(
    inst: Instance,
    gammas: npt.NDArray[np.float64],
    betas: npt.NDArray[np.float64],
    noise: cirq.Gate,
    trajectories: int,
    seed: int,
) -> tuple[float, float, float, float]:
    """Means and standard errors over qsim trajectories: (ratio, its s.e., P(opt), its s.e.)."""
    qsimcirq = backends._import_qsim()  # OMP_WAIT_POLICY before qsimcirq loads
    circ, qubits = circuit(inst.cost, gammas, betas, noise)
    sim = qsimcirq.QSimSimulator(qsimcirq.QSimOptions(cpu_threads=1), seed=seed)
    ratios, p_opts = [], []
    for _ in range(trajectories):
        vector = sim.simulate(circ, qubit_order=qubits).final_state_vector
        r, p = metrics(inst, np.abs(np.asarray(vector, dtype=np.complex128)) ** 2)
        ratios.append(r)
        p_opts.append(p)
    se = math.sqrt(trajectories)
    return (
        statistics.mean(ratios),
        statistics.stdev(ratios) / se if trajectories > 1 else 0.0,
        statistics.mean(p_opts),
        statistics.stdev(p_opts) / se if trajectories > 1 else 0.0,
    )


def run(out: Path, seed: int = 0, quick: bool = False) -> Path:
    config = QUICK if quick else NoisyConfig()
    started = time.perf_counter()
    load = report.load_average()
    rows: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    insts = {n: instance(n, seed) for n in config.qubits}
    progress = harness.Progress(len(insts) * len(config.depths), "noisy: qubits x depth")
    for n, inst in insts.items():
        for depth in config.depths:
            gammas, betas = angles(inst, depth, config.cobyla_evaluations, seed)
            clean = exact_metrics(inst, gammas, betas, None)
            for name, channel in NOISES.items():
                for rate in config.rates:
                    ratio, p_opt = (
                        clean if rate == 0.0 else exact_metrics(inst, gammas, betas, channel(rate))
                    )
                    rows.append(
                        {
                            "qubits": n,
                            "seed": inst.seed,
                            "depth": depth,
                            "noise": name,
                            "rate": rate,
                            "ratio": ratio,
                            "pOpt": p_opt,
                        }
                    )
                    if (
                        n == min(config.qubits)
                        and depth in config.check_depths
                        and (rate in config.check_rates)
                    ):
                        traj = qsim_metrics(
                            inst, gammas, betas, channel(rate), config.trajectories, seed
                        )
                        checks.append(
                            {
                                "qubits": n,
                                "depth": depth,
                                "noise": name,
                                "rate": rate,
                                "ratio": ratio,
                                "pOpt": p_opt,
                                "trajectories": traj,
                            }
                        )
            progress.advance()
    progress.close()
    return write_report(out, config, seed, insts, rows, checks, load, started)


def write_report(
    out: Path,
    config: NoisyConfig,
    seed: int,
    insts: dict[int, Instance],
    rows: list[dict[str, Any]],
    checks: list[dict[str, Any]],
    load: float,
    started: float,
) -> Path:
    doc = report.Report(
        out, "Noisy experiment: QAOA under depolarizing and amplitude damping", started
    )
    doc.text(
        "Seeded synthetic instances ("
        + ", ".join(
            f"{n} qubits: seed {i.seed}, {i.problem.num_shards} shards on {i.problem.num_pools} "
            f"pools, {i.optimal.size} optimal basis state(s)"
            for n, i in insts.items()
        )
        + f"). QAOA angles for p = {', '.join(map(str, config.depths))} are optimised without "
        f"noise (COBYLA, up to {config.cobyla_evaluations} evaluations, from the linear ramp); "
        "the same circuit then runs with a channel on every qubit after every moment: the "
        "Hadamards, each cost layer (one diagonal gate exp(-i gamma C)) and each mixer layer, "
        "so 2p + 1 channels per qubit. Rates are the depolarizing probability p and the "
        "amplitude-damping gamma per channel. Curves are exact averages from the density matrix "
        "(`cirq.DensityMatrixSimulator`); qsim's quantum trajectories are checked against them "
        "below.",
        "Approximation ratio: `(C_max - <C>) / (C_max - C_min)` over the normalised cost "
        "diagonal (penalties included), 1 at the optimum. Strong depolarizing noise leads to the "
        "maximally mixed state (the `uniform` values and the dotted lines); amplitude damping "
        "leads to |0...0>, every shard on pool 0, which may cost more than average.",
        f"Load average at the start: {load}.",
    )
    largest = max(insts)
    for n, inst in insts.items():
        doc.heading(f"{n} qubits")
        uniform = metrics(inst, np.full(inst.cost.size, 1.0 / inst.cost.size))
        for metric, title in (("ratio", "approximation ratio"), ("pOpt", "P(optimum)")):
            doc.text(
                f"**{title}** by depth (rows) and noise rate (columns); "
                f"uniform state: {uniform[0 if metric == 'ratio' else 1]:.4g}."
            )
            header = ["noise", "p", *[f"{r:g}" for r in config.rates]]
            table = []
            for name in NOISES:
                for depth in config.depths:
                    values = {
                        r["rate"]: r[metric]
                        for r in rows
                        if r["qubits"] == n and r["noise"] == name and r["depth"] == depth
                    }
                    table.append([name, depth, *[f"{values[rate]:.4f}" for rate in config.rates]])
            doc.table(header, table)
        with doc.figure(
            f"noise-rate-{n}q.png",
            f"{n} qubits: approximation ratio (top) and probability of the optimum (bottom) "
            "against the noise rate, one line per depth p; dotted: the maximally mixed state.",
            (10.0, 7.0),
        ) as fig:
            axes = fig.subplots(2, len(NOISES), sharex=True)
            for col, name in enumerate(NOISES):
                for row, metric in enumerate(("ratio", "pOpt")):
                    ax = axes[row][col]
                    for depth in config.depths:
                        pts = sorted(
                            (r["rate"], r[metric])
                            for r in rows
                            if r["qubits"] == n and r["noise"] == name and r["depth"] == depth
                        )
                        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"p={depth}")
                    ax.axhline(uniform[row], color="gray", linestyle=":", label="mixed")
                    ax.set_xscale("symlog", linthresh=1e-3)
                    ax.grid(True, alpha=0.3)
                    ax.set_title(f"{name}", fontsize=9)
                    ax.set_ylabel("approximation ratio" if metric == "ratio" else "P(optimum)")
                    if row == 1:
                        ax.set_xlabel("noise rate per channel")
                    ax.legend(fontsize=7)
    doc.heading("Approximation ratio against depth")
    with doc.figure(
        "depth.png",
        f"{largest} qubits: approximation ratio against depth, one line per noise rate.",
        (10.0, 4.0),
    ) as fig:
        axes = fig.subplots(1, len(NOISES), sharey=True)
        for ax, name in zip(axes, NOISES, strict=True):
            for rate in config.rates:
                pts = sorted(
                    (r["depth"], r["ratio"])
                    for r in rows
                    if r["qubits"] == largest and r["noise"] == name and r["rate"] == rate
                )
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=f"rate {rate:g}")
            ax.set_title(name, fontsize=9)
            ax.set_xlabel("depth p")
            ax.set_ylabel("approximation ratio")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
    doc.heading("qsim trajectories against the exact density matrix")
    doc.table(
        (
            "qubits",
            "p",
            "noise",
            "rate",
            "trajectories",
            "ratio: exact",
            "ratio: qsim (± s.e.)",
            "P(opt): exact",
            "P(opt): qsim (± s.e.)",
        ),
        [
            (
                c["qubits"],
                c["depth"],
                c["noise"],
                c["rate"],
                config.trajectories,
                f"{c['ratio']:.4f}",
                f"{c['trajectories'][0]:.4f} ± {c['trajectories'][1]:.4f}",
                f"{c['pOpt']:.4f}",
                f"{c['trajectories'][2]:.4f} ± {c['trajectories'][3]:.4f}",
            )
            for c in checks
        ],
    )
    summary = []
    for name in NOISES:
        cells = []
        for rate in config.rates:
            best = max(
                (
                    r
                    for r in rows
                    if r["qubits"] == largest and r["noise"] == name and r["rate"] == rate
                ),
                key=lambda r: (r["ratio"], -r["depth"]),
            )
            cells.append(f"{best['ratio']:.4f} (p={best['depth']})")
        summary.append((name, *cells))
    doc.heading("Summary")
    doc.text(
        f"Best approximation ratio over depths at {largest} qubits, and the depth that gives "
        "it. Without noise deeper is better; as the rate grows, the extra layers add more "
        "noise than they gain and the best depth falls.",
    )
    doc.table(("noise", *[f"rate {r:g}" for r in config.rates]), summary)
    return doc.write()
