"""The operator with exactly the chart's RBAC: create -> Ready -> update -> delete, no 403."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml
from chaos_harness import infd_doc
from operator_harness import ROOT, Operator

CHART = ROOT / "charts" / "greenshard"
PROFILE = yaml.safe_load((ROOT / "crds/samples/gridprofile.yaml").read_text())


def token_kubeconfig(cluster: Any, namespace: str, account: str, path: Path) -> str:
    """A kubeconfig that authenticates as the ServiceAccount with a bound token."""
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    server = admin["clusters"][0]["cluster"]
    token = cluster.kubectl(
        "create", "token", account, "--duration=1h", namespace=namespace
    ).stdout.strip()
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "local", "cluster": server}],
                "users": [{"name": account, "user": {"token": token}}],
                "contexts": [{"name": "sa", "context": {"cluster": "local", "user": account}}],
                "current-context": "sa",
            }
        )
    )
    return str(path)


def test_operator_as_the_chart_service_account(
    cluster: Any, namespace: str, tmp_path: Path
) -> None:
    release = f"rbac-{namespace.rsplit('-', 1)[-1]}"
    cluster.kubectl("apply", "-f", str(ROOT / "crds"))
    cluster.helm(
        "install",
        release,
        str(CHART),
        "--set",
        "replicaCount=0",
        "--set",
        "gridProfile.create=false",
        "--wait",
        namespace=namespace,
    )
    operator = None
    try:
        account = f"{release}-greenshard"
        who = cluster.kubectl(
            "auth",
            "whoami",
            "-o",
            "json",
            "--kubeconfig",
            token_kubeconfig(cluster, namespace, account, tmp_path / "sa.kubeconfig"),
        ).stdout
        assert json.loads(who)["status"]["userInfo"]["username"] == (
            f"system:serviceaccount:{namespace}:{account}"
        )
        profile = copy.deepcopy(PROFILE)
        profile["metadata"] = {"name": f"e2e-{release}"}
        cluster.apply_yaml(yaml.safe_dump(profile))
        operator = Operator(str(tmp_path / "sa.kubeconfig"), tmp_path)
        operator.start()
        # The 1B model on CPU pools: the test is about rights, not about GPUs other tests hold.
        doc = infd_doc("rbac", namespace, f"e2e-{release}", replicas=2)

        def wait_ready() -> None:
            cluster.kubectl(
                "wait",
                "--for=condition=Ready",
                "infd/rbac",
                "--timeout=90s",
                namespace=namespace,
                timeout=120,
            )

        cluster.apply_yaml(yaml.safe_dump(doc))  # create
        wait_ready()
        doc["spec"]["sharding"] = {"shards": 4, "replicas": 1}  # update
        cluster.apply_yaml(yaml.safe_dump(doc))
        cluster.wait(
            lambda: (
                cluster.get_json("infd", "rbac", namespace=namespace)["status"].get(
                    "observedGeneration"
                )
                == 2
            ),
            what="observedGeneration 2",
        )
        wait_ready()
        cluster.wait(
            lambda: (
                len(
                    cluster.items(
                        "statefulsets", "-l", "greenshard.io/deployment=rbac", namespace=namespace
                    )
                )
                == 4
            ),
            what="4 shards",
        )
        cluster.kubectl("delete", "infd", "rbac", namespace=namespace)  # delete
        cluster.wait(
            lambda: (
                not cluster.items(
                    "statefulsets", "-l", "greenshard.io/deployment=rbac", namespace=namespace
                )
            ),
            what="GC",
        )
        events = cluster.items("events", "--field-selector", "reason=Planned", namespace=namespace)
        assert events, "the operator could not post its Event"
        log = operator.log_path.read_text()
        assert "403" not in log and "Forbidden" not in log and "forbidden" not in log, (
            operator.log_tail()
        )
    finally:
        if operator is not None:
            operator.stop()
        cluster.kubectl("delete", "gridprofile", f"e2e-{release}", "--ignore-not-found")
        cluster.helm("uninstall", release, namespace=namespace, check=False)
