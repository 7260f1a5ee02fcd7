#!/usr/bin/env python3
"""A day of the operator at work on the local cluster, as one picture (README's figure).

Starts the local control plane if it is not up (hack/cluster.sh), applies the CRDs, a GridProfile
of three regions whose cleanest region changes over the day, and an 8-shard Llama-70B in DryRun
mode (planned and reported; no pods), then runs `greenshard run` as a local process and walks it
through 24 UTC hours: each hour the GridProfile's intensities are set to that hour's values (what
a live provider does) and the operator's status is read back once it has re-planned. Writes
OUT.png (intensity per region; where each shard ran; gCO2e/h against the carbon-unaware
baseline) and OUT.json (the 24 statuses).

Usage: hack/operator-day.py [--out docs/operator-day] [--keep]
  --keep  leave the objects (and a cluster this script started) in place
Takes a few minutes. Exit status 0 done, 1 the cluster or operator failed, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
HACK = ROOT / "hack"
NAMESPACE = "greenshard-day"
NAME = "llama-70b"
PROFILE = "greenshard-day"
REGIONS = {
    # gCO2e/kWh per UTC hour: hydro with an evening peak; gas by day and wind at night; coal
    # with a deep solar dip around Sydney's noon (UTC 0-6).
    "eu-north-1": [60, 58, 55, 55, 60, 70, 90, 120, 150, 170, 180, 175,
                   165, 160, 170, 190, 230, 260, 250, 210, 160, 110, 80, 65],
    "us-east-1": [190, 170, 150, 140, 140, 150, 180, 230, 300, 360, 390, 400,
                  400, 390, 380, 370, 360, 340, 320, 300, 280, 260, 230, 210],
    "ap-southeast-2": [120, 70, 45, 35, 40, 60, 110, 220, 420, 560, 640, 680,
                       690, 700, 700, 690, 680, 660, 600, 520, 430, 330, 240, 170],
}  # fmt: skip
COLORS = {"eu-north-1": "#2b8cbe", "us-east-1": "#e6550d", "ap-southeast-2": "#31a354"}


def kubectl(kubeconfig: str, *args: str, stdin: str | None = None) -> str:
    res = subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, *args],
        input=stdin, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    if res.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)}: {res.stderr.strip()}")
    return res.stdout


def profile(hour: int) -> dict[str, Any]:
    sample = yaml.safe_load((ROOT / "crds/samples/gridprofile.yaml").read_text())
    spec = sample["spec"]
    spec["regions"] = {r: {"intensity": v[hour], "pue": 1.2} for r, v in REGIONS.items()}
    return {
        "apiVersion": "greenshard.io/v1alpha1",
        "kind": "GridProfile",
        "metadata": {"name": PROFILE},
        "spec": spec,
    }


def deployment() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "crds/samples/llama-70b.yaml").read_text())
    doc["metadata"] = {"name": NAME, "namespace": NAMESPACE}
    spec = doc["spec"]
    spec["placement"] = {
        "nodeSelector": {"matchLabels": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}},
        "maxRegionHops": 1,
    }
    spec["carbon"] = {"gridProfile": PROFILE, "minSavingsPercent": 5}
    spec["solver"] = {"algorithm": "exact"}
    spec["mode"] = "DryRun"
    spec.pop("template", None)
    return doc


def run_day(kubeconfig: str, workdir: Path) -> list[dict[str, Any]]:
    kubectl(kubeconfig, "apply", "-f", str(ROOT / "crds"))
    for crd in ("inferencedeployments.greenshard.io", "gridprofiles.greenshard.io"):
        kubectl(kubeconfig, "wait", "--for=condition=Established", f"crd/{crd}")
    kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}))  # fmt: skip
    hour_file = workdir / "hour"
    hour_file.write_text("0")
    kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps(profile(0)))
    env = {
        **os.environ,
        "GREENSHARD_HOUR_FILE": str(hour_file),
        "PYTHONPATH": str(ROOT / "operator"),
    }
    log = (workdir / "operator.log").open("wb")
    operator = subprocess.Popen(
        [sys.executable, "-m", "greenshard.cli", "run", "--kubeconfig", kubeconfig,
         "--liveness-port", "0", "--metrics-port", "0",
         "--log-format", "json"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
    )  # fmt: skip
    hours: list[dict[str, Any]] = []
    try:
        kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps(deployment()))
        for hour in range(24):
            hour_file.write_text(str(hour))
            kubectl(kubeconfig, "apply", "-f", "-", stdin=json.dumps(profile(hour)))
            deadline = time.monotonic() + (600 if hour == 0 else 180)
            while True:
                if operator.poll() is not None:
                    raise RuntimeError(f"the operator exited: see {workdir / 'operator.log'}")
                body = json.loads(
                    kubectl(kubeconfig, "get", "infd", NAME, "-n", NAMESPACE, "-o", "json")
                )
                status = body.get("status") or {}
                if (status.get("emissions") or {}).get("hour") == hour and status.get("placement"):
                    break
                if time.monotonic() > deadline:
                    tail = (workdir / "operator.log").read_text(errors="replace")[-1500:]
                    raise RuntimeError(
                        f"no plan for UTC hour {hour} in time; status {status}; log: {tail}"
                    )
                time.sleep(0.3)
            hours.append({"hour": hour, **{k: status[k] for k in ("placement", "emissions")}})
            pools = ",".join(sorted({r["region"] for r in status["placement"]}))
            print(f"hour {hour:2d}: {status['emissions']['gramsPerHour']:8.2f} gCO2e/h "
                  f"(baseline {status['emissions']['baselineGramsPerHour']:.2f}) on {pools}",
                  file=sys.stderr)  # fmt: skip
    finally:
        operator.terminate()
        try:
            operator.wait(30)
        except subprocess.TimeoutExpired:
            operator.kill()
    return hours


def draw(hours: list[dict[str, Any]], out: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from matplotlib.colors import ListedColormap  # noqa: PLC0415

    regions = list(REGIONS)
    fig, (top, mid, bottom) = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    x = range(24)
    for region in regions:
        top.step(x, REGIONS[region], where="mid", color=COLORS[region], label=region)
    top.set_ylabel("grid gCO2e/kWh")
    top.set_title("GreenShard on the local cluster: one day of an 8-shard Llama-70B (UTC)")
    top.legend(loc="upper left", fontsize=8)

    shards = len(hours[0]["placement"])
    grid = [[regions.index(h["placement"][s]["region"]) for h in hours] for s in range(shards)]
    mid.imshow(
        grid, aspect="auto", interpolation="nearest", origin="lower",
        cmap=ListedColormap([COLORS[r] for r in regions]), vmin=0, vmax=len(regions) - 1,
        extent=(-0.5, 23.5, -0.5, shards - 0.5),
    )  # fmt: skip
    mid.set_ylabel("shard (color: region)")
    mid.set_yticks(range(shards))

    grams = [h["emissions"]["gramsPerHour"] for h in hours]
    baseline = [h["emissions"]["baselineGramsPerHour"] for h in hours]
    bottom.plot(x, baseline, "o--", color="gray", label="carbon-unaware baseline")
    bottom.plot(x, grams, "o-", color="black", label="GreenShard (operator's status)")
    bottom.set_ylabel("gCO2e/h")
    bottom.set_xlabel("UTC hour")
    bottom.set_xticks(range(0, 24, 2))
    saved = 100 * (1 - sum(grams) / sum(baseline))
    bottom.legend(loc="upper left", fontsize=8, title=f"{saved:.0f}% less over the day")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=90)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="docs/operator-day", help="path without suffix")
    parser.add_argument("--keep", action="store_true", help="leave the objects in place")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cluster = ["bash", str(HACK / "cluster.sh")]
    started = subprocess.run([*cluster, "status"], capture_output=True, check=False).returncode != 0
    try:
        if started:
            subprocess.run([*cluster, "up", "--real-nodes-file", "none"], check=True)
        kubeconfig = subprocess.run(
            [*cluster, "kubeconfig"], capture_output=True, text=True, check=True
        ).stdout.strip()
        with tempfile.TemporaryDirectory() as tmp:
            try:
                hours = run_day(kubeconfig, Path(tmp))
            finally:
                if not args.keep:
                    kubectl(kubeconfig, "delete", "namespace", NAMESPACE, "--wait=false")
                    kubectl(kubeconfig, "delete", "gridprofile", PROFILE, "--ignore-not-found")
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"operator-day: {exc}", file=sys.stderr)
        return 1
    finally:
        if started and not args.keep:
            subprocess.run([*cluster, "down"], check=False)
    out.with_suffix(".json").write_text(json.dumps(hours, indent=1) + "\n")
    draw(hours, out)
    print(out.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
