"""Gate-level noise on the compiled one-hot QAOA circuits, at the production schedules.

The circuit is the one tests/slow/test_onehot_equivalence.py proves equal to the subspace
simulator, compiled to 1- and 2-qubit gates (``cirq.decompose`` until every operation acts on at
most two qubits):

* W states: X and Givens rotations;
* cost layer: Z powers (compute), CZ powers (links between neighbouring shards), and the
  coupled-constraint penalty as one multi-controlled phase per infeasible placement (exact on the
  one-hot states: ``penalty * prod_s n(s, k_s)``), decomposed;
* mixers: ISWAP powers on the XY graph's edges.

``--ansatz threshold`` compiles the default ansatz instead (tests/slow/test_threshold_equivalence.py
proves that circuit equal to the two-level simulation): its production state, the fixed-point
schedule with the optimum marked (the threshold the descent ends on), the threshold phase as one
multi-controlled phase per marked placement and the Grover mixer (inverse W states, X, a
multi-controlled Z power, X, W states), decomposed to 1- and 2-qubit gates.

A noise channel follows *every* gate, on the gate's qubits: depolarizing (``cirq.depolarize``
per qubit) at rates 1e-4..1e-2, or amplitude damping (``cirq.amplitude_damp``) at the same rates.
The final state is the exact density matrix (``cirq.DensityMatrixSimulator``). Metrics, each beside
its uniform baseline (uniform over all 2**n bitstrings, and over the K**S placements):

* P(feasible): weight of the feasible placements (a state that leaked out of the one-hot subspace
  is no placement at all);
* P(opt): weight of the optimal placements;
* approximation ratio over feasible samples: ``(E_max - E[E | feasible]) / (E_max - E_opt)`` over
  the feasible set (1 at the optimum, uniform sampling of feasible placements scores
  ``(E_max - mean) / (E_max - E_opt)``); infeasible samples are not scored.

    python -m greenshard.experiments.gate_noise [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cirq
import numpy as np
import numpy.typing as npt

from greenshard import harness, instances, model, parsing, subspace
from greenshard.solvers import onehot, threshold

CHANNELS: dict[str, Callable[[float], cirq.Gate]] = {
    "depolarizing": cirq.depolarize,
    "amplitude damping": cirq.amplitude_damp,
}


@dataclass(frozen=True)
class GateNoiseConfig:
    shards: int = 3
    pools: int = 3
    family: str = "heldout-close-hops"
    seed: int = instances.HELD_OUT_SEEDS[300]
    depth: int = onehot.DEFAULT_DEPTH  # the production schedule
    rates: tuple[float, ...] = (1e-4, 1e-3, 1e-2)
    ansatz: str = "onehot"  # onehot | threshold
    delta: float = threshold.DEFAULT_DELTA  # threshold: the production schedule's delta


QUICK = GateNoiseConfig(shards=2, pools=3, depth=4, rates=(1e-3, 1e-2))
ANSATZE = ("onehot", "threshold")


def small_problem(config: GateNoiseConfig) -> subspace.PlacementSpace:
    """A held-out instance small enough for a density matrix, with some placements infeasible
    (roomier pools than the family: at 2-3 shards the family's band leaves nothing feasible)."""
    family = instances.HELD_OUT_FAMILIES[config.family]
    low, high = family.capacity
    roomy = instances.Family(
        **{**family.__dict__, "name": family.name, "capacity": (2 * low, 3 * high),
           "feasible": (1e-9, 0.8)}
    )  # fmt: skip
    rng = np.random.default_rng([config.seed, config.shards, config.pools])
    for _ in range(instances.MAX_DRAWS):
        deployment, nodes, profile = instances.family_documents(
            roomy, config.shards, config.pools, rng
        )
        problem = model.build_problem(
            parsing.parse_deployment(deployment),
            parsing.parse_nodes(nodes),
            parsing.parse_grid_profile(profile),
            0,
        )
        if problem.num_pools != config.pools:
            continue
        space = subspace.PlacementSpace(problem)
        if 0 < space.stats.count < space.size:
            return space
    raise ValueError("no small instance with both feasible and infeasible placements")


def compiled_circuit(
    sim: onehot.SubspaceSimulator, gammas: Sequence[float], betas: Sequence[float]
) -> tuple[cirq.Circuit, list[cirq.LineQubit]]:
    """The whole ansatz as 1- and 2-qubit gates (no measurement)."""
    space = sim.space
    qubits = onehot.register_qubits(space.num_shards, space.num_pools)
    infeasible = np.flatnonzero(~space.feasible_of(np.arange(space.size)))
    placements = space.placements(infeasible)
    circuit = onehot.initial_circuit(sim, qubits)
    for gamma, beta in zip(gammas, betas, strict=True):
        exponent = -gamma * sim.penalty / math.pi
        for row in placements:
            targets = [qubits[s * space.num_pools + int(k)] for s, k in enumerate(row)]
            gate = cirq.ZPowGate(exponent=exponent).controlled(len(targets) - 1)
            circuit.append(gate.on(*targets))
        circuit += onehot.qubit_circuit_layer(sim, qubits, gamma, beta)
    flat = cirq.Circuit(cirq.decompose(circuit, keep=lambda op: len(op.qubits) <= 2))
    return flat, qubits


def threshold_circuit(
    space: subspace.PlacementSpace, delta: float
) -> tuple[cirq.Circuit, list[cirq.LineQubit], npt.NDArray[np.complex128], int]:
    """The threshold ansatz's production state as 1- and 2-qubit gates: the optimum marked, the
    fixed-point schedule for K**S placements. Returns the circuit, its qubits, the ideal state on
    the placements (two-level simulation) and the layers."""
    s_count, k_count = space.num_shards, space.num_pools
    qubits = onehot.register_qubits(s_count, k_count)
    mask = threshold.Marked(space).mask(space.stats.least, inclusive=True)
    alphas, betas = threshold.fixed_point_angles(
        threshold.fixed_point_length(space.size, delta), delta
    )
    marked = space.placements(np.flatnonzero(mask))
    circuit = cirq.Circuit(
        onehot.w_state_ops(qubits[s * k_count : (s + 1) * k_count]) for s in range(s_count)
    )
    for alpha, beta in zip(alphas.tolist(), betas.tolist(), strict=True):
        for row in marked:  # exp(i beta) on each marked placement's one-hot state
            targets = [qubits[s * k_count + int(k)] for s, k in enumerate(row)]
            circuit.append(cirq.ZPowGate(exponent=beta / math.pi).controlled(s_count - 1)(*targets))
        circuit += threshold.grover_mixer_circuit(s_count, k_count, alpha)
    flat = cirq.Circuit(cirq.decompose(circuit, keep=lambda op: len(op.qubits) <= 2))
    ideal = threshold.state_vector(
        mask, threshold.evolve_two_level(float(mask.mean()), alphas, betas)
    )
    return flat, qubits, ideal, alphas.size


def with_noise(circuit: cirq.Circuit, channel: cirq.Gate | None) -> cirq.Circuit:
    """A channel on each qubit of every gate, right after the gate."""
    if channel is None:
        return circuit
    out = cirq.Circuit()
    for op in circuit.all_operations():
        out.append(op, strategy=cirq.InsertStrategy.NEW)
        out.append([channel.on(q) for q in op.qubits], strategy=cirq.InsertStrategy.NEW)
    return out


def metrics(space: subspace.PlacementSpace, probs: npt.NDArray[np.float64]) -> dict[str, float]:
    """P(feasible), P(opt) and the approximation ratio over feasible samples, from register
    probabilities (2**n)."""
    every = np.arange(space.size)
    register = onehot.register_index(space, every)
    feasible = space.feasible_of(every)
    emissions = space.emissions_of(every)
    p = probs[register]
    stats = space.stats
    p_feasible = float(p[feasible].sum())
    mean_feasible = (
        float((p[feasible] @ emissions[feasible]) / p_feasible) if p_feasible else math.nan
    )
    return {
        "pFeasible": p_feasible,
        "pOpt": float(probs[onehot.register_index(space, stats.optimal)].sum()),
        "approximationRatio": (stats.greatest - mean_feasible) / (stats.greatest - stats.least),
        "pOneHot": float(p.sum()),
    }


def baselines(space: subspace.PlacementSpace) -> dict[str, float]:
    stats = space.stats
    n = space.num_shards * space.num_pools
    return {
        "pFeasibleUniformBitstrings": stats.count / 2**n,
        "pFeasibleUniformPlacements": stats.count / space.size,
        "pOptUniformBitstrings": stats.optimal.size / 2**n,
        "pOptUniformPlacements": stats.optimal.size / space.size,
        "approximationRatioUniformFeasible": (stats.greatest - stats.mean)
        / (stats.greatest - stats.least),
    }


def run_experiment(config: GateNoiseConfig) -> dict[str, Any]:
    space = small_problem(config)
    if config.ansatz == "threshold":
        circuit, qubits, ideal, depth = threshold_circuit(space, config.delta)
        schedule = f"fixed-point schedule, delta {config.delta:g}, optimum marked"
    else:
        sim = onehot.SubspaceSimulator(space)
        gammas, betas = onehot.linear_ramp(
            config.depth, onehot.DEFAULT_RAMP_GAMMA, onehot.DEFAULT_RAMP_BETA
        )
        circuit, qubits = compiled_circuit(sim, list(gammas), list(betas))
        ideal, depth = sim.state(gammas, betas).astype(np.complex128), config.depth
        schedule = f"ramp, {sim.mixer} XY mixer"
    two = sum(1 for op in circuit.all_operations() if len(op.qubits) == 2)
    result: dict[str, Any] = {
        "ansatz": config.ansatz,
        "shards": space.num_shards,
        "pools": space.num_pools,
        "qubits": len(qubits),
        "depth": depth,
        "schedule": schedule,
        "feasible": space.stats.count,
        "placements": space.size,
        "gates": sum(1 for _ in circuit.all_operations()),
        "twoQubitGates": two,
        "baselines": baselines(space),
        "rows": [],
    }
    simulator = cirq.DensityMatrixSimulator(dtype=np.complex64)
    runs: list[tuple[str, float, cirq.Gate | None]] = [("none", 0.0, None)]
    runs += [(name, r, make(r)) for name, make in CHANNELS.items() for r in config.rates]
    progress = harness.Progress(len(runs), "gate noise: channels x rates")
    for name, rate, channel in runs:
        start = time.perf_counter()
        rho = simulator.simulate(
            with_noise(circuit, channel), qubit_order=qubits
        ).final_density_matrix
        probs = np.clip(np.real(np.diagonal(rho)).astype(np.float64), 0.0, None)
        row = {"channel": name, "rate": rate, **metrics(space, probs)}
        row["seconds"] = time.perf_counter() - start
        if channel is None:
            exact_probs = np.abs(ideal) ** 2
            row["subspacePOpt"] = float(exact_probs[space.stats.optimal].sum())
        result["rows"].append(row)
        print(json.dumps(row), flush=True)
        progress.advance()
    progress.close()
    return result


def render(result: dict[str, Any]) -> str:
    b = result["baselines"]
    lines = [
        f"# Gate-level noise on the {result['ansatz']} QAOA circuit",
        "",
        f"{result['shards']} shards x {result['pools']} pools ({result['qubits']} qubits, "
        f"{result['feasible']} of {result['placements']} placements feasible), the production "
        f"schedule at p={result['depth']} ({result['schedule']}), {result['gates']} gates of "
        f"which {result['twoQubitGates']} two-qubit; a channel after every gate on its qubits.",
        "",
        "| channel | rate per gate | P(feasible) | P(opt) | approx. ratio (feasible samples) "
        "| P(one-hot) |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['channel']} | {r['rate']:g} | {r['pFeasible']:.4f} | {r['pOpt']:.4f} | "
            f"{r['approximationRatio']:.3f} | {r['pOneHot']:.4f} |"
        )
    lines += [
        f"| uniform over 2^{result['qubits']} bitstrings | | {b['pFeasibleUniformBitstrings']:.4f} "
        f"| {b['pOptUniformBitstrings']:.5f} | {b['approximationRatioUniformFeasible']:.3f} | |",
        f"| uniform over the {result['placements']} placements | | "
        f"{b['pFeasibleUniformPlacements']:.4f} | {b['pOptUniformPlacements']:.4f} | "
        f"{b['approximationRatioUniformFeasible']:.3f} | 1 |",
        "",
    ]
    return "\n".join(lines)


def run(out: Path, seed: int = 0, quick: bool = False, ansatz: str = "onehot") -> Path:
    config = dataclasses.replace(QUICK if quick else GateNoiseConfig(), ansatz=ansatz)
    result = run_experiment(config)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gate_noise.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    path = out / "report.md"
    path.write_text(render(result), encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m greenshard.experiments.gate_noise")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--ansatz", choices=ANSATZE, default="onehot")
    parser.add_argument("--out", type=Path, default=Path("results/gate_noise"))
    args = parser.parse_args(argv)
    print(run(args.out, quick=args.quick, ansatz=args.ansatz).read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
