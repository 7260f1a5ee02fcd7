"""The chart rendered by `helm template` (hack/bin/helm, built by `make tools`): what each value
turns into. Installing it on the local control plane: tests/e2e/test_chart.py."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from greenshard import cli
from greenshard.k8s import runner

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "greenshard"


def helm_binary() -> str:
    built = ROOT / "hack" / "bin" / "helm"
    if built.is_file() and os.access(built, os.X_OK):
        return str(built)
    found = shutil.which("helm")
    if not found:
        pytest.fail("no helm: run `make tools` (hack/build-tools.sh builds hack/bin/helm)")
    return found


def render(*flags: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(
        [helm_binary(), "template", "gs", str(CHART), "--namespace", "gs-system", *flags],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if check:
        assert res.returncode == 0, res.stderr
    return res


def manifests(*flags: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(render(*flags).stdout) if d]


def only(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, [d["metadata"]["name"] for d in found]
    return found[0]


def operator_pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = only(docs, "Deployment", "gs-greenshard")["spec"]["template"]["spec"]
    return spec


# ------------------------------------------------------------------------------- defaults


def test_defaults_render_no_optional_objects() -> None:
    docs = manifests()
    kinds = sorted(d["kind"] for d in docs)
    assert "ServiceMonitor" not in kinds
    assert "ConfigMap" not in kinds
    pod = operator_pod(docs)
    for key in ("affinity", "topologySpreadConstraints", "tolerations", "nodeSelector"):
        assert key not in pod, key
    (container,) = pod["containers"]
    assert container["args"][-2:] == ["--log-level", "INFO"]
    assert "--namespace" not in container["args"]
    names = [e["name"] for e in container["env"]]
    assert names == [
        "GREENSHARD_MAX_QUBITS",
        "GREENSHARD_SOLVER_MEMORY_GIB",
        "GREENSHARD_ALLOWED_SERVICE_ACCOUNTS",
    ]


def test_no_dead_carbon_secret_env_vars() -> None:
    """The provider's Secret is named by the GridProfile (spec.provider.secretRef); the chart only
    grants reading it. GREENSHARD_CARBON_SECRET_* were read by nothing."""
    docs = manifests("--set", "carbonProvider.secretRef.name=carbon-key")
    (container,) = operator_pod(docs)["containers"]
    assert not [e for e in container["env"] if e["name"].startswith("GREENSHARD_CARBON_SECRET")]
    role = only(docs, "Role")
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["carbon-key"],
         "verbs": ["get"]}
    ]  # fmt: skip
    sources = "\n".join(p.read_text() for p in (ROOT / "operator").rglob("*.py"))
    assert "GREENSHARD_CARBON_SECRET" not in sources


# ---------------------------------------------------------------------- operator settings


def test_log_level_and_watch_namespaces_become_flags_the_cli_accepts() -> None:
    docs = manifests("--set", "logLevel=DEBUG", "--set", "watchNamespaces={team-a,team-b}")
    (container,) = operator_pod(docs)["containers"]
    args = container["args"]
    assert args[args.index("--log-level") + 1] == "DEBUG"
    assert [args[i + 1] for i, a in enumerate(args) if a == "--namespace"] == ["team-a", "team-b"]
    parsed = cli.build_parser().parse_args(args)
    assert parsed.func is cli.cmd_run
    assert (parsed.log_level, parsed.namespace) == ("DEBUG", ["team-a", "team-b"])


def test_log_level_reaches_the_extender_too() -> None:
    docs = manifests("--set", "logLevel=WARNING", "--set", "extender.enabled=true")
    extender = only(docs, "Deployment", "gs-greenshard-extender")
    (container,) = extender["spec"]["template"]["spec"]["containers"]
    parsed = cli.build_parser().parse_args(container["args"])
    assert parsed.func is cli.cmd_extender
    assert parsed.log_level == "WARNING"


def test_log_level_sets_the_root_logger() -> None:
    root = logging.getLogger()
    saved = root.level, list(root.handlers)
    try:
        runner.configure_logging("json", "WARNING")
        assert root.level == logging.WARNING
        runner.configure_logging("json", "DEBUG")
        assert root.level == logging.DEBUG
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]


@pytest.mark.parametrize(
    ("flag", "complaint"),
    [
        ("logLevel=LOUD", "/logLevel"),
        ("watchNamespaces={Team_A}", "/watchNamespaces/0"),
        ("extraEnv[0].value=x", "/extraEnv/0"),
        ("affinity.nodeAfinity.x=1", "additional properties 'nodeAfinity' not allowed"),
        ("topologySpreadConstraints[0].maxSkew=1", "/topologySpreadConstraints/0"),
        ("metrics.serviceMonitor.interval=often", "/metrics/serviceMonitor/interval"),
        ("grafana.dashboards.enabeld=true", "additional properties 'enabeld' not allowed"),
    ],
)
def test_schema_rejects_bad_new_values(flag: str, complaint: str) -> None:
    res = render("--set", flag, check=False)
    assert res.returncode != 0
    assert complaint in res.stderr, res.stderr


def test_extra_env_affinity_tolerations_and_spread() -> None:
    values = {
        "extraEnv": [
            {"name": "GREENSHARD_SOLVER_TIMEOUT", "value": "60"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["ops"]}]}
                    ]
                }
            }
        },
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops",
                         "effect": "NoSchedule"}],
        "topologySpreadConstraints": [
            {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
             "whenUnsatisfiable": "ScheduleAnyway"},
            {"maxSkew": 2, "topologyKey": "kubernetes.io/hostname",
             "whenUnsatisfiable": "DoNotSchedule",
             "labelSelector": {"matchLabels": {"custom": "yes"}}},
        ],
    }  # fmt: skip
    docs = manifests_with(values)
    pod = operator_pod(docs)
    (container,) = pod["containers"]
    assert container["env"][3:] == values["extraEnv"]
    assert pod["affinity"] == values["affinity"]
    assert pod["tolerations"] == values["tolerations"]
    default_selector = {
        "matchLabels": {"app.kubernetes.io/name": "greenshard", "app.kubernetes.io/instance": "gs"}
    }
    spread = pod["topologySpreadConstraints"]
    assert spread[0] == {
        **values["topologySpreadConstraints"][0],
        "labelSelector": default_selector,
    }
    assert spread[1] == values["topologySpreadConstraints"][1]  # its own selector is kept


def manifests_with(values: dict[str, Any]) -> list[dict[str, Any]]:
    res = subprocess.run(
        [helm_binary(), "template", "gs", str(CHART), "--namespace", "gs-system", "-f", "-"],
        input=json.dumps(values),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    return [d for d in yaml.safe_load_all(res.stdout) if d]


# ------------------------------------------------------------------------ ServiceMonitor


def test_service_monitor_scrapes_the_metrics_service() -> None:
    docs = manifests(
        "--set", "metrics.serviceMonitor.enabled=true",
        "--set", "metrics.serviceMonitor.interval=15s",
        "--set", "metrics.serviceMonitor.labels.release=kube-prometheus-stack",
    )  # fmt: skip
    monitor = only(docs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == "gs-system"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}
    ]
    service = only(docs, "Service", "gs-greenshard-metrics")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["gs-system"]}
    port_names = [p["name"] for p in service["spec"]["ports"]]
    assert "metrics" in port_names


# ------------------------------------------------------------------------------- Grafana


def dashboard_of(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    configmap = only(docs, "ConfigMap")
    (name,) = configmap["data"]
    assert name == "greenshard.json"
    dashboard: dict[str, Any] = json.loads(configmap["data"][name])
    return configmap, dashboard


def test_grafana_dashboard_configmap() -> None:
    docs = manifests(
        "--set", "grafana.dashboards.enabled=true",
        "--set", "grafana.dashboards.namespace=monitoring",
        "--set", "grafana.dashboards.annotations.grafana_folder=GreenShard",
    )  # fmt: skip
    configmap, dashboard = dashboard_of(docs)
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["namespace"] == "monitoring"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "GreenShard"}
    assert dashboard["uid"] == "greenshard-overview"
    titles = " | ".join(p["title"] for p in dashboard["panels"])
    for topic in ("gCO2e/h", "Savings", "intensity", "moves", "Solver time", "Errors"):
        assert topic.lower() in titles.lower(), titles
    # The sidecar's label is configurable.
    docs = manifests(
        "--set", "grafana.dashboards.enabled=true",
        "--set", "grafana.dashboards.label=dashboards",
        "--set", "grafana.dashboards.labelValue=greenshard",
    )  # fmt: skip
    labels = only(docs, "ConfigMap")["metadata"]["labels"]
    assert labels["dashboards"] == "greenshard" and "grafana_dashboard" not in labels


def dashboard_metrics() -> set[str]:
    """Every metric name a panel queries (PromQL identifiers that are not functions)."""
    dashboard = json.loads((CHART / "dashboards" / "greenshard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    words = set(re.findall(r"\b([a-z_][a-z0-9_]*)\b(?=\s*[{\[])", " ".join(exprs)))
    functions = {"rate", "increase", "sum", "by", "histogram_quantile"}
    return {w.removesuffix("_bucket") for w in words - functions}


def test_dashboard_queries_name_real_series() -> None:
    names = dashboard_metrics()
    assert "greenshard_predicted_emissions_grams_per_hour" in names
    assert "controller_runtime_reconcile_errors_total" in names
    assert len(names) >= 8


# ------------------------------------------------------------------------------------ RBAC


def test_aggregated_view_and_edit_cluster_roles() -> None:
    docs = manifests()
    view = only(docs, "ClusterRole", "gs-greenshard-view")
    edit = only(docs, "ClusterRole", "gs-greenshard-edit")
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert view["rules"][0]["verbs"] == ["get", "list", "watch"]
    assert set(view["rules"][0]["resources"]) >= {"inferencedeployments", "gridprofiles"}
    assert edit["rules"][0]["resources"] == ["inferencedeployments"]
    assert "create" in edit["rules"][0]["verbs"]
    docs = manifests("--set", "rbac.aggregateToDefaultRoles=false")
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "ClusterRole"] == ["gs-greenshard"]


def test_operator_may_update_finalizers_for_block_owner_deletion() -> None:
    role = only(manifests(), "ClusterRole", "gs-greenshard")
    rules = [r for r in role["rules"] if "inferencedeployments/finalizers" in r["resources"]]
    assert rules == [
        {"apiGroups": ["greenshard.io"], "resources": ["inferencedeployments/finalizers"],
         "verbs": ["update"]}
    ]  # fmt: skip


# ------------------------------------------------------------------ secondary scheduler

SCHEDULER = ("--set", "scheduler.secondary.enabled=true", "--set", "extender.enabled=true")


def kube_version() -> str:
    text = (ROOT / "hack" / "versions.env").read_text()
    match = re.search(r"^KUBE_VERSION=(\S+)", text, flags=re.MULTILINE)
    assert match
    return match.group(1)


def test_secondary_scheduler_is_off_by_default() -> None:
    names = [d["metadata"]["name"] for d in manifests()]
    assert not [n for n in names if "scheduler" in n], names


def test_secondary_scheduler_runs_the_pinned_upstream_image_with_the_extender() -> None:
    docs = manifests(*SCHEDULER)
    deployment = only(docs, "Deployment", "gs-greenshard-scheduler")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == f"registry.k8s.io/kube-scheduler:{kube_version()}"
    assert container["command"] == [
        "kube-scheduler", "--config=/etc/greenshard-scheduler/config.yaml", "--v=2",
    ]  # fmt: skip
    assert pod["serviceAccountName"] == "gs-greenshard-scheduler"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
    # Its pods are its own: neither the operator's Deployment nor a Service selects them.
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    for selector in (
        only(docs, "Deployment", "gs-greenshard")["spec"]["selector"]["matchLabels"],
        only(docs, "Service", "gs-greenshard-metrics")["spec"]["selector"],
        only(docs, "Service", "gs-greenshard-extender")["spec"]["selector"],
    ):
        assert not selector.items() <= labels.items()

    config = yaml.safe_load(
        only(docs, "ConfigMap", "gs-greenshard-scheduler")["data"]["config.yaml"]
    )
    assert config["kind"] == "KubeSchedulerConfiguration"
    assert config["profiles"] == [{"schedulerName": "greenshard-scheduler"}]
    assert config["leaderElection"] == {
        "leaderElect": True, "resourceLock": "leases",
        "resourceName": "gs-greenshard-scheduler", "resourceNamespace": "gs-system",
    }  # fmt: skip
    assert config["extenders"] == [
        {
            "urlPrefix": "http://gs-greenshard-extender.gs-system.svc:8888",
            "filterVerb": "filter",
            "prioritizeVerb": "prioritize",
            "weight": 10,
            "nodeCacheCapable": True,
            "ignorable": True,
            "httpTimeout": "2s",
        }
    ]


def test_secondary_scheduler_rbac() -> None:
    docs = manifests(*SCHEDULER)
    bindings = {
        d["roleRef"]["name"]: d
        for d in docs
        if d["kind"] in ("ClusterRoleBinding", "RoleBinding")
        and "scheduler" in d["metadata"]["name"]
    }
    assert set(bindings) == {
        "system:kube-scheduler", "system:volume-scheduler",
        "extension-apiserver-authentication-reader", "gs-greenshard-scheduler",
    }  # fmt: skip
    assert bindings["extension-apiserver-authentication-reader"]["metadata"]["namespace"] == (
        "kube-system"
    )
    for binding in bindings.values():
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "gs-greenshard-scheduler", "namespace": "gs-system"}
        ]
    role = only(docs, "Role", "gs-greenshard-scheduler")
    lease = {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "resourceNames": ["gs-greenshard-scheduler"],
        "verbs": ["get", "update"],
    }
    assert lease in role["rules"]


def test_secondary_scheduler_settings_and_config_rollout() -> None:
    base = only(manifests(*SCHEDULER), "Deployment", "gs-greenshard-scheduler")
    docs = manifests(
        "--set", "scheduler.secondary.enabled=true",
        "--set", "scheduler.secondary.extenderURL=https://extender.example:8443",
        "--set", "scheduler.secondary.extenderWeight=5",
        "--set", "scheduler.secondary.schedulerName=green",
        "--set", "scheduler.secondary.replicaCount=2",
        "--set", "scheduler.secondary.image.tag=v1.32.4",
    )  # fmt: skip
    config = yaml.safe_load(
        only(docs, "ConfigMap", "gs-greenshard-scheduler")["data"]["config.yaml"]
    )
    assert config["extenders"][0]["urlPrefix"] == "https://extender.example:8443"
    assert config["extenders"][0]["weight"] == 5
    assert config["profiles"] == [{"schedulerName": "green"}]
    changed = only(docs, "Deployment", "gs-greenshard-scheduler")
    assert changed["spec"]["replicas"] == 2
    assert changed["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":v1.32.4")
    hash_key = "greenshard.io/config-hash"
    assert (
        changed["spec"]["template"]["metadata"]["annotations"][hash_key]
        != base["spec"]["template"]["metadata"]["annotations"][hash_key]
    )


#: How Go's YAML (the API server's decoder) reads a plain scalar as a number; "12e45" is one.
GO_YAML_NUMBER = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
#: Namespaces whose scheduler config hashed (before `| quote`) to digits ("4732e1...") or all
#: digits: the API server refused that Deployment (CI, test_secondary_scheduler).
NUMERIC_HASH_NAMESPACES = ("gs-system", "gs-1022")  # gs-1022: 0549874471e19245


def _string_maps(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("annotations", "labels") and isinstance(value, dict):
                yield from value.items()
            else:
                yield from _string_maps(value)
    elif isinstance(node, list):
        for item in node:
            yield from _string_maps(item)


@pytest.mark.parametrize("namespace", NUMERIC_HASH_NAMESPACES)
def test_every_annotation_and_label_is_a_string_to_go(namespace: str) -> None:
    out = render(*SCHEDULER, "--namespace", namespace).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    pairs = [pair for doc in docs for pair in _string_maps(doc)]
    assert "greenshard.io/config-hash" in dict(pairs), "the scheduler Deployment rendered"
    for key, value in pairs:
        assert isinstance(value, str), (key, value)
        if GO_YAML_NUMBER.match(value):
            assert f"{key}: {value}" not in out, f"{key}: {value} is a number to Go: quote it"


def test_secondary_scheduler_needs_an_extender() -> None:
    res = render("--set", "scheduler.secondary.enabled=true", check=False)
    assert res.returncode != 0
    assert "set extender.enabled=true, or scheduler.secondary.extenderURL" in res.stderr


# ------------------------------------------------------------------------------- extender

EXTENDER = ("--set", "extender.enabled=true")


def test_extender_runs_as_its_own_list_and_watch_service_account() -> None:
    docs = manifests(*EXTENDER)
    pod = only(docs, "Deployment", "gs-greenshard-extender")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "gs-greenshard-extender"
    assert pod["automountServiceAccountToken"] is True  # it lists and watches with it
    account = only(docs, "ServiceAccount", "gs-greenshard-extender")
    assert account["metadata"]["namespace"] == "gs-system"
    role = only(docs, "ClusterRole", "gs-greenshard-extender")
    # Exactly watches.py's calls (through kube.ListWatch): list then watch Nodes and the
    # GridProfile; nothing else.
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list", "watch"]},
        {"apiGroups": ["greenshard.io"], "resources": ["gridprofiles"], "verbs": ["list", "watch"]},
    ]
    verbs = {v for rule in role["rules"] for v in rule["verbs"]}
    assert verbs <= {"get", "list", "watch"}
    binding = only(docs, "ClusterRoleBinding", "gs-greenshard-extender")
    assert binding["roleRef"]["name"] == "gs-greenshard-extender"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "gs-greenshard-extender", "namespace": "gs-system"}
    ]
    # The operator's account is bound to the operator's role only.
    operator = only(docs, "ClusterRoleBinding", "gs-greenshard")
    assert operator["subjects"][0]["name"] == "gs-greenshard"


def test_extender_service_account_settings() -> None:
    docs = manifests(
        *EXTENDER, "--set", "extender.serviceAccount.name=sched-ext",
        "--set", "extender.serviceAccount.annotations.team=infra",
    )  # fmt: skip
    account = only(docs, "ServiceAccount", "sched-ext")
    assert account["metadata"]["annotations"] == {"team": "infra"}
    pod = only(docs, "Deployment", "gs-greenshard-extender")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "sched-ext"
    binding = only(docs, "ClusterRoleBinding", "gs-greenshard-extender")
    assert binding["subjects"][0]["name"] == "sched-ext"

    # An existing account: nothing created, the name is required.
    docs = manifests(
        *EXTENDER, "--set", "extender.serviceAccount.create=false",
        "--set", "extender.serviceAccount.name=existing",
    )  # fmt: skip
    assert not [d for d in docs if d["kind"] == "ServiceAccount" and "extender" in str(d)]
    pod = only(docs, "Deployment", "gs-greenshard-extender")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "existing"
    res = render(*EXTENDER, "--set", "extender.serviceAccount.create=false", check=False)
    assert res.returncode != 0
    assert "extender.serviceAccount.name is required" in res.stderr

    # rbac.create=false: neither role nor binding.
    docs = manifests(*EXTENDER, "--set", "rbac.create=false")
    assert not [d for d in docs if d["kind"].startswith("ClusterRole")]


def test_extender_network_policy_admits_its_port_only() -> None:
    docs = manifests(*EXTENDER, "--set", "extender.port=9000")
    policy = only(docs, "NetworkPolicy", "gs-greenshard-extender")
    deployment = only(docs, "Deployment", "gs-greenshard-extender")
    assert policy["metadata"]["namespace"] == "gs-system"
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert policy["spec"]["podSelector"]["matchLabels"] == selector
    assert policy["spec"]["policyTypes"] == ["Ingress"]  # egress open by default
    (rule,) = policy["spec"]["ingress"]
    assert rule == {"ports": [{"protocol": "TCP", "port": 9000}]}  # from any source
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert [p["containerPort"] for p in container["ports"]] == [9000]  # its only port
    # The operator's pods are not selected.
    operator = only(docs, "Deployment", "gs-greenshard")["spec"]["template"]["metadata"]
    assert not policy["spec"]["podSelector"]["matchLabels"].items() <= operator["labels"].items()


def test_extender_network_policy_peers_egress_and_off() -> None:
    egress = [
        {
            "to": [{"ipBlock": {"cidr": "10.0.0.10/32"}}],
            "ports": [{"port": 6443, "protocol": "TCP"}],
        }
    ]
    values = {
        "extender": {
            "enabled": True,
            "networkPolicy": {"from": [{"ipBlock": {"cidr": "10.0.0.0/24"}}], "egress": egress},
        },
        "scheduler": {"secondary": {"enabled": True}},
    }
    docs = manifests_with(values)
    policy = only(docs, "NetworkPolicy", "gs-greenshard-extender")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    (rule,) = policy["spec"]["ingress"]
    scheduler = only(docs, "Deployment", "gs-greenshard-scheduler")
    assert rule["from"] == [
        {"ipBlock": {"cidr": "10.0.0.0/24"}},
        # the chart's own secondary scheduler is always let in
        {"podSelector": {"matchLabels": scheduler["spec"]["selector"]["matchLabels"]}},
    ]
    assert policy["spec"]["egress"] == egress

    docs = manifests(*EXTENDER, "--set", "extender.networkPolicy.enabled=false")
    assert not [d for d in docs if d["kind"] == "NetworkPolicy"]
    assert not [d for d in manifests() if d["kind"] == "NetworkPolicy"]  # extender off


def test_extender_schema_rejects_bad_network_policy_values() -> None:
    for flag in (
        "extender.networkPolicy.enable=true",
        "extender.networkPolicy.from[0].podSelecter.app=x",
        "extender.serviceAccount.nam=x",
    ):
        res = render(*EXTENDER, "--set", flag, check=False)
        assert res.returncode != 0, flag
        assert "don't meet the specifications of the schema" in res.stderr, res.stderr
