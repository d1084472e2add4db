"""The Helm chart, rendered by Helm's own template engine (helm-python-sdk binds Helm's Go SDK).

Renders helm/rules-engine with the default values and with tests/helm/values-all-on.yaml (every
optional object on), runs `helm lint --strict`, validates each manifest against the Kubernetes
JSON schemas in strict mode (kubernetes-validate), checks what operations rely on (security
context, gRPC probes, graceful termination, port names, ruleset mounts, Redis settings, TLS,
client authentication, workers and limits), and checks the alert rules and the dashboard's
queries with promtool when it is installed. Besides the default and all-on values, two TLS
variants (`TLS_ONLY`, `MTLS_SECRET_CA`) go through the generic checks; one test starts the real
server with a rendered pod's environment and runs the rendered TLS probes against it.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import referencing
import yaml
from cryptography.x509.oid import ExtendedKeyUsageOID
from kubernetes_validate import utils as kv_utils

from tests.certs import Authority
from tests.redis_server import RedisServer
from tests.serve_process import stop

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "rules-engine"
ALL_ON = Path(__file__).resolve().parent / "values-all-on.yaml"
STARTER = ROOT / "rulesets" / "starter"

RELEASE = "re"
NAMESPACE = "safeguarding"
FULLNAME = "re-rules-engine"
# The oldest Kubernetes minor the chart supports with native gRPC probes GA is 1.27; validate
# against a current one that kubernetes-validate ships.
KUBE_VERSION = "1.30.0"
HEALTH_SERVICE = "rules_engine.v1.RulesEngineService"

# Custom resources of the Prometheus Operator: kubernetes-validate has no schema for them, so
# they are skipped by the schema test and checked by the dedicated tests below instead (their
# metadata against the Kubernetes ObjectMeta schema, their spec field by field, their rules
# with promtool).
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}

# Metric names the service defines (rules_engine/metrics.py, issue 6). Histograms are queried
# through their _bucket/_count/_sum series.
KNOWN_METRICS = {
    "rules_engine_evaluations_total",
    "rules_engine_evaluation_seconds",
    "rules_engine_engine_fallbacks_total",
    "rules_engine_flags_total",
    "rules_engine_grpc_requests_total",
    "rules_engine_grpc_request_seconds",
    "rules_engine_ruleset_reloads_total",
    "rules_engine_ruleset_last_reload_success_timestamp_seconds",
    "rules_engine_store_errors_total",
    "rules_engine_store_operation_seconds",
}
_METRIC = re.compile(r"\brules_engine_[a-z0-9_]+")
_HISTOGRAM_SUFFIX = re.compile(r"_(bucket|count|sum)$")

EXPECTED_ALERTS = {
    "RulesEngineHighErrorRate",
    "RulesEngineHighLatency",
    "RulesEngineRulesetReloadRefused",
    "RulesEngineRedisErrors",
    "RulesEngineNoEvaluations",
}


# --- rendering ----------------------------------------------------------------------------


def _starter_files() -> dict[str, str]:
    """The bundled starter ruleset as chart values: relative POSIX path -> text."""
    return {
        PurePosixPath(path.relative_to(STARTER).as_posix()).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(STARTER.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def all_on_values() -> dict[str, Any]:
    values = dict(yaml.safe_load(ALL_ON.read_text(encoding="utf-8")))
    values["rulesets"]["files"]["starter"] = _starter_files()
    return values


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


class Rendered:
    """The manifests of one render, parsed."""

    def __init__(self, templates: dict[str, str]) -> None:
        self.notes = templates.get("rules-engine/templates/NOTES.txt", "")
        self.objects: list[dict[str, Any]] = []
        for name, text in sorted(templates.items()):
            if name.endswith(".txt"):
                continue
            self.objects.extend(doc for doc in yaml.safe_load_all(text) if doc)

    def kinds(self) -> set[str]:
        return {obj["kind"] for obj in self.objects}

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [obj for obj in self.objects if obj["kind"] == kind]

    def one(self, kind: str, name: str = FULLNAME) -> dict[str, Any]:
        found = [obj for obj in self.all(kind) if obj["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered"
        return found[0]

    def container(self) -> dict[str, Any]:
        containers: list[dict[str, Any]] = self.one("Deployment")["spec"]["template"]["spec"]["containers"]
        assert len(containers) == 1
        return containers[0]

    def env(self) -> dict[str, dict[str, Any]]:
        return {var["name"]: var for var in self.container().get("env", [])}


def render(chart: helm.Chart, values: dict[str, Any] | None = None) -> Rendered:
    return Rendered(chart.render(values=values, name=RELEASE, namespace=NAMESPACE))


@pytest.fixture(scope="module")
def default(chart: helm.Chart) -> Rendered:
    return render(chart)


@pytest.fixture(scope="module")
def all_on(chart: helm.Chart) -> Rendered:
    return render(chart, all_on_values())


# TLS without client certificates, one worker.
TLS_ONLY: dict[str, Any] = {"tls": {"enabled": True, "existingSecret": "rules-engine-tls"}, "config": {"workers": 1}}
# Mutual TLS with the client CA from a Secret (cert-manager's ca.crt), the probe presenting the
# server's own certificate, and client tokens.
MTLS_SECRET_CA: dict[str, Any] = {
    "tls": {
        "enabled": True,
        "existingSecret": "rules-engine-tls",
        "clientCA": {"existingSecret": "rules-engine-tls"},
    },
    "auth": {"existingSecret": "rules-engine-clients"},
    # Two workers per pod share case state through Redis (the schema refuses them without it).
    "config": {"workers": 2},
    "redis": {"existingSecret": "rules-engine-redis"},
}


@pytest.fixture(scope="module", params=["default", "all-on", "tls-only", "mtls-secret-ca"])
def rendered(request: pytest.FixtureRequest, chart: helm.Chart, default: Rendered, all_on: Rendered) -> Rendered:
    variants = {"tls-only": TLS_ONLY, "mtls-secret-ca": MTLS_SECRET_CA}
    if request.param in variants:
        return render(chart, variants[request.param])
    return default if request.param == "default" else all_on


# --- Helm's own checks --------------------------------------------------------------------


@pytest.mark.parametrize("values_name", ["default", "all-on"])
def test_helm_lint_strict_passes(values_name: str) -> None:
    values = all_on_values() if values_name == "all-on" else None
    report = helm.lint(CHART, values, strict=True, namespace=NAMESPACE, kube_version=f"v{KUBE_VERSION}")
    assert report["errors"] == []
    # Severity 1 is informational ("icon is recommended"); 2 and 3 are warnings and errors.
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert problems == []


def test_values_file_passes_the_values_schema(chart: helm.Chart) -> None:
    chart.validate_schema(all_on_values())
    assert chart.schema is not None
    assert chart.schema["$schema"] == "http://json-schema.org/draft-07/schema#"


def test_every_default_value_is_described_by_the_schema(chart: helm.Chart) -> None:
    """Each key of values.yaml has a schema entry, so the schema's additionalProperties: false bites."""
    schema = chart.schema
    assert schema is not None

    def walk(values: dict[str, Any], node: dict[str, Any], path: str) -> None:
        assert node.get("additionalProperties") is False or "propertyNames" in node, path
        for key, value in values.items():
            child = node.get("properties", {}).get(key)
            assert child is not None, f"{path}{key} has no schema"
            if isinstance(value, dict) and child.get("properties"):
                walk(value, child, f"{path}{key}.")

    walk(chart.values, schema, "")


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"replicaCount": "two"}, "a string replica count"),
        ({"unknownKey": 1}, "a key the chart does not know"),
        ({"securityContext": {"runAsUser": 0}}, "root"),
        ({"image": {"pullPolicy": "Sometimes"}}, "an unknown pull policy"),
        ({"rulesets": {"files": {"Bad_Name": {"a.yaml": ""}}}}, "a ruleset name that is no DNS label"),
        ({"rulesets": {"existingConfigMaps": {"ok": "Not A Name"}}}, "a bad ConfigMap name"),
        ({"redis": {"url": "http://redis:6379"}}, "a URL that is not redis://"),
        ({"prometheusRule": {"alerts": {"highLatency": {"window": "five minutes"}}}}, "a bad duration"),
        ({"prometheusRule": {"alerts": {"highErrorRate": {"severity": "page"}}}}, "an unknown severity"),
        ({"config": {"workers": 0}}, "zero workers (the server's one-per-node-core)"),
        ({"config": {"workers": "all"}}, "a word other than auto"),
        ({"config": {"limits": {"maxMessageBytes": 100}}}, "a message limit under the server's minimum"),
        ({"config": {"limits": {"maxStringChars": 8}}}, "a string limit under the server's minimum"),
        ({"config": {"limits": {"maxFacts": 20_000}}}, "a fact limit above what a case may hold"),
        ({"config": {"caseState": {"retentionDays": 0}}}, "no retention at all"),
        ({"config": {"evaluationCacheSize": -1}}, "a negative evaluation cache size"),
        ({"config": {"limits": {"maxBatch": "many"}}}, "a limit that is no integer"),
        ({"config": {"limits": {"maxRequests": 5}}}, "an unknown limit"),
        ({"tls": {"enabled": True}}, "TLS without a Secret"),
        ({"tls": {"existingSecret": "Not_A_Name"}}, "a bad Secret name"),
        ({"tls": {"mountPath": "etc/tls"}}, "a relative mount path"),
        ({"tls": {"clientCA": {"key": "a/b"}}}, "a key that is no Secret key"),
        ({"tls": {"verify": False}}, "an unknown TLS key"),
        ({"auth": {"existingSecret": "clients", "key": ""}}, "an empty clients key"),
        ({"replicaCount": 2}, "two pods, each with its own in-memory case state"),
        ({"config": {"workers": 2}}, "two processes, each with its own in-memory case state"),
        ({"config": {"workers": "auto"}}, "workers that may be more than one, without Redis"),
        ({"autoscaling": {"enabled": True}}, "an autoscaler adding pods without Redis"),
    ],
)
def test_values_schema_rejects_bad_values(chart: helm.Chart, override: dict[str, Any], reason: str) -> None:
    with pytest.raises(helm.HelmValuesError):
        chart.render(values=override, name=RELEASE, namespace=NAMESPACE)


@pytest.mark.parametrize("redis", [{"url": "redis://redis:6379/0"}, {"existingSecret": "redis-url"}])
def test_several_pods_and_workers_are_allowed_with_redis(chart: helm.Chart, redis: dict[str, str]) -> None:
    values = {"redis": redis, "replicaCount": 3, "config": {"workers": 4}}
    deployment = render(chart, values).one("Deployment")
    assert deployment["spec"]["replicas"] == 3
    scaled = render(chart, {"redis": redis, "autoscaling": {"enabled": True}, "config": {"workers": "auto"}})
    assert "replicas" not in scaled.one("Deployment")["spec"]


# --- Kubernetes schemas -------------------------------------------------------------------


def test_every_manifest_passes_the_kubernetes_schema_in_strict_mode(rendered: Rendered) -> None:
    validated = 0
    for obj in rendered.objects:
        if (obj["apiVersion"], obj["kind"]) in CRD_KINDS:
            continue  # no Kubernetes schema for custom resources: see the CRD tests below
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message} at {list(exc.path)}")
        validated += 1
    assert validated >= 4


def _object_meta_validator() -> jsonschema.Draft202012Validator:
    """Kubernetes' strict ObjectMeta schema, from the files kubernetes-validate ships."""
    directory = f"kubernetes-json-schema/v{KUBE_VERSION}-local-strict"
    schema = kv_utils.schema_contents(f"{directory}/objectmeta-meta-v1.json", KUBE_VERSION)
    definitions = kv_utils.schema_contents(f"{directory}/_definitions.json", KUBE_VERSION)
    registry: referencing.Registry[Any] = referencing.Registry()
    registry = referencing.Resource.from_contents(definitions) @ registry
    return jsonschema.Draft202012Validator(schema, registry=registry)


def test_custom_resources_have_valid_metadata(all_on: Rendered) -> None:
    validator = _object_meta_validator()
    crds = [obj for obj in all_on.objects if (obj["apiVersion"], obj["kind"]) in CRD_KINDS]
    assert {obj["kind"] for obj in crds} == {"ServiceMonitor", "PrometheusRule"}
    for obj in crds:
        validator.validate(obj["metadata"])
        assert set(obj) == {"apiVersion", "kind", "metadata", "spec"}


# --- what is rendered ---------------------------------------------------------------------


def test_default_values_render_only_the_core_objects(default: Rendered) -> None:
    assert default.kinds() == {"Deployment", "Service", "ServiceAccount", "PodDisruptionBudget"}


def test_all_on_values_render_every_optional_object(all_on: Rendered) -> None:
    assert all_on.kinds() == {
        "Deployment",
        "Service",
        "ServiceAccount",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "ServiceMonitor",
        "PrometheusRule",
        "NetworkPolicy",
        "ConfigMap",
        "Secret",
    }
    assert {svc["metadata"]["name"] for svc in all_on.all("Service")} == {FULLNAME, f"{FULLNAME}-headless"}


def test_every_object_carries_the_recommended_labels(rendered: Rendered) -> None:
    for obj in rendered.objects:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "rules-engine"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/version"] == "0.1.0"
        assert labels["helm.sh/chart"] == "rules-engine-0.1.0"


def test_notes_render(rendered: Rendered) -> None:
    assert f"{FULLNAME}.{NAMESPACE}.svc:50051" in rendered.notes
    assert "grpc.health.v1.Health/Check" in rendered.notes
    if _serves_tls(rendered):
        assert "WARNING: the gRPC port serves plaintext" not in rendered.notes
        assert "-plaintext" not in rendered.notes
        assert f"-authority {FULLNAME}.{NAMESPACE}.svc" in rendered.notes
    else:
        assert "WARNING: the gRPC port serves plaintext" in rendered.notes
        assert "grpcurl -plaintext" in rendered.notes


# --- the Deployment -----------------------------------------------------------------------


def test_pod_runs_with_a_strict_security_context(rendered: Rendered) -> None:
    pod = rendered.one("Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    context = rendered.container()["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == 10001
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["privileged"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    # The read-only root filesystem leaves /tmp writable through an emptyDir.
    mounts = {m["mountPath"]: m["name"] for m in rendered.container()["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_service_account_does_not_mount_a_token(rendered: Rendered) -> None:
    account = rendered.all("ServiceAccount")[0]
    assert account["automountServiceAccountToken"] is False
    pod = rendered.one("Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]


def test_container_has_resources(rendered: Rendered) -> None:
    resources = rendered.container()["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]


def _serves_tls(rendered: Rendered) -> bool:
    return "RULES_ENGINE_TLS_CERT" in rendered.env()


def test_probes_check_grpc_health_natively_or_over_tls(rendered: Rendered) -> None:
    """Plaintext: the kubelet's native gRPC probes. TLS, which they cannot do: the image's health check."""
    container = rendered.container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert set(ports) == {"grpc", "metrics", "http"}
    action = "exec" if _serves_tls(rendered) else "grpc"
    for probe, service in (
        ("startupProbe", HEALTH_SERVICE),
        ("livenessProbe", ""),
        ("readinessProbe", HEALTH_SERVICE),
    ):
        assert set(container[probe]) == {action, "periodSeconds", "timeoutSeconds", "failureThreshold"}, probe
        if action == "grpc":
            assert container[probe]["grpc"] == {"port": ports["grpc"], "service": service}
        else:
            command = container[probe]["exec"]["command"]
            assert command[:3] == ["python", "/app/healthcheck.py", service]
            options = dict(zip(command[3::2], command[4::2], strict=True))
            assert options["--timeout"] == str(container[probe]["timeoutSeconds"])
            # Pinned to the certificate the server serves.
            assert options["--tls-ca"] == rendered.env()["RULES_ENGINE_TLS_CERT"]["value"]
            assert ("--tls-cert" in options) == ("RULES_ENGINE_TLS_CLIENT_CA" in rendered.env())
    env = rendered.env()
    assert env["RULES_ENGINE_PORT"]["value"] == str(ports["grpc"])
    assert env["RULES_ENGINE_METRICS_PORT"]["value"] == str(ports["metrics"])


def test_termination_is_graceful(rendered: Rendered) -> None:
    pod = rendered.one("Deployment")["spec"]["template"]["spec"]
    command = rendered.container()["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    grace = float(rendered.env()["RULES_ENGINE_GRACE_SECONDS"]["value"])
    assert pod["terminationGracePeriodSeconds"] >= int(command[1]) + grace


def test_a_grace_period_shorter_than_the_drain_is_refused(chart: helm.Chart) -> None:
    with pytest.raises(helm.HelmError, match="terminationGracePeriodSeconds"):
        chart.render(values={"terminationGracePeriodSeconds": 12}, name=RELEASE, namespace=NAMESPACE)


def test_pods_spread_over_zones_and_nodes(rendered: Rendered) -> None:
    deployment = rendered.one("Deployment")
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    constraints = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert {c["topologyKey"] for c in constraints} == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    assert all(c["labelSelector"]["matchLabels"] == selector for c in constraints)


def test_replicas_are_left_to_the_autoscaler_when_it_is_on(default: Rendered, all_on: Rendered) -> None:
    # One pod by default: more need Redis (the values schema refuses them without it).
    assert default.one("Deployment")["spec"]["replicas"] == 1
    assert "replicas" not in all_on.one("Deployment")["spec"]
    hpa = all_on.one("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": FULLNAME}
    assert {m["resource"]["name"] for m in hpa["spec"]["metrics"]} == {"cpu", "memory"}


def test_disruption_budget_selects_the_pods(rendered: Rendered) -> None:
    pdb = rendered.one("PodDisruptionBudget")
    selector = rendered.one("Deployment")["spec"]["selector"]
    assert pdb["spec"]["selector"] == selector
    assert ("maxUnavailable" in pdb["spec"]) != ("minAvailable" in pdb["spec"])


# --- Service, scraping --------------------------------------------------------------------


def test_service_exposes_named_grpc_metrics_and_http_ports(rendered: Rendered) -> None:
    service = rendered.one("Service")
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert set(ports) == {"grpc", "metrics", "http"}
    assert ports["grpc"]["appProtocol"] == "grpc"
    assert ports["grpc"]["targetPort"] == "grpc"
    assert ports["metrics"]["targetPort"] == "metrics"
    assert ports["http"]["targetPort"] == "http" and ports["http"]["port"] == 8080
    assert service["spec"]["selector"] == rendered.one("Deployment")["spec"]["selector"]["matchLabels"]
    container_ports = {p["name"]: p["containerPort"] for p in rendered.container()["ports"]}
    assert container_ports["http"] == 8080 and rendered.env()["RULES_ENGINE_HTTP_PORT"]["value"] == "8080"


def test_http_port_zero_turns_the_connect_door_off_everywhere(chart: helm.Chart) -> None:
    off = render(chart, {"ports": {"http": 0}, "networkPolicy": {"enabled": True}})
    assert "http" not in {p["name"] for p in off.one("Service")["spec"]["ports"]}
    assert "http" not in {p["name"] for p in off.container()["ports"]}
    assert off.env()["RULES_ENGINE_HTTP_PORT"]["value"] == "0"
    assert "http" not in [rule["ports"][0]["port"] for rule in off.one("NetworkPolicy")["spec"]["ingress"]]


def test_cors_origins_reach_the_server_only_when_set(default: Rendered, all_on: Rendered, chart: helm.Chart) -> None:
    assert "RULES_ENGINE_CORS_ORIGINS" not in default.env()
    assert all_on.env()["RULES_ENGINE_CORS_ORIGINS"]["value"] == "https://workbench.example.org,https://cms.example.org"
    with pytest.raises(Exception, match="corsOrigins"):
        render(chart, {"config": {"corsOrigins": ["not an origin"]}})


def test_the_workbench_is_on_unless_turned_off(default: Rendered, chart: helm.Chart) -> None:
    assert "RULES_ENGINE_WORKBENCH" not in default.env()  # the server's default: on
    off = render(chart, {"config": {"workbench": False}})
    assert off.env()["RULES_ENGINE_WORKBENCH"]["value"] == "false"
    with pytest.raises(Exception, match="workbench"):
        render(chart, {"config": {"workbench": "yes"}})


def test_prometheus_annotations_only_without_a_service_monitor(default: Rendered, all_on: Rendered) -> None:
    annotations = default.one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(default.container()["ports"][1]["containerPort"])
    assert annotations["prometheus.io/path"] == "/metrics"
    annotations = all_on.one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert not any(key.startswith("prometheus.io/") for key in annotations)


def test_service_monitor_scrapes_the_metrics_port_of_the_service(all_on: Rendered) -> None:
    monitor = all_on.one("ServiceMonitor")
    service = all_on.one("Service")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics"
    assert endpoint["path"] == "/metrics"
    assert endpoint["interval"] == "15s"
    assert endpoint["scrapeTimeout"] == "5s"


# --- rulesets and Redis -------------------------------------------------------------------


def _materialise(rendered: Rendered, root: Path) -> None:
    """Lay out the ruleset volumes as the kubelet would (keys through items to paths)."""
    pod = rendered.one("Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_maps = {cm["metadata"]["name"]: cm for cm in rendered.all("ConfigMap")}
    mount_root = rendered.env()["RULES_ENGINE_RULESETS"]["value"]
    for mount in rendered.container()["volumeMounts"]:
        if not mount["mountPath"].startswith(mount_root + "/"):
            continue
        assert mount["readOnly"] is True
        source = volumes[mount["name"]]["configMap"]
        if source["name"] not in config_maps:
            continue  # an existing ConfigMap, made outside the chart
        data = config_maps[source["name"]]["data"]
        target = root / mount["mountPath"][len(mount_root) + 1 :]
        for item in source["items"]:
            assert "/" not in item["key"]
            path = target / item["path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(data[item["key"]], encoding="utf-8")


def test_chart_made_rulesets_reach_the_pod_as_ruleset_directories(all_on: Rendered, tmp_path: Path) -> None:
    _materialise(all_on, tmp_path)
    starter = {p.relative_to(STARTER): p.read_bytes() for p in STARTER.rglob("*") if p.is_file()}
    mounted = {
        p.relative_to(tmp_path / "starter"): p.read_bytes() for p in (tmp_path / "starter").rglob("*") if p.is_file()
    }
    assert {k: v for k, v in mounted.items() if v} == starter
    assert (tmp_path / "extra" / "tests" / "smoke.yaml").is_file()
    config_map = all_on.one("ConfigMap", f"{FULLNAME}-ruleset-extra")
    assert set(config_map["data"]) == {"ruleset.yaml", "tests__smoke.yaml"}


def test_existing_ruleset_config_maps_are_mounted_whole(all_on: Rendered) -> None:
    pod = all_on.one("Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in all_on.container()["volumeMounts"]}
    volume = volumes[mounts["/etc/rules-engine/rulesets/safeguarding"]]
    assert volume["configMap"] == {"name": "safeguarding-rules"}
    assert all_on.env()["RULES_ENGINE_RULESETS"]["value"] == "/etc/rules-engine/rulesets"


def test_without_ruleset_config_maps_the_image_rulesets_serve(default: Rendered) -> None:
    assert "RULES_ENGINE_RULESETS" not in default.env()
    assert [v["name"] for v in default.one("Deployment")["spec"]["template"]["spec"]["volumes"]] == ["tmp"]


def test_ruleset_checksum_rolls_pods_only_when_asked(chart: helm.Chart, all_on: Rendered) -> None:
    def checksum(values: dict[str, Any]) -> str | None:
        annotations = render(chart, values).one("Deployment")["spec"]["template"]["metadata"]["annotations"]
        value = annotations.get("checksum/rulesets")
        return None if value is None else str(value)

    values = all_on_values()
    first = checksum(values)
    assert first is not None
    changed = _merge(values, {"rulesets": {"files": {"extra": {"ruleset.yaml": "name: extra\n# v2\n"}}}})
    assert checksum(changed) not in (None, first)
    assert checksum(_merge(values, {"rulesets": {"rolloutOnChange": False}})) is None


def test_a_ruleset_cannot_come_from_two_places(chart: helm.Chart) -> None:
    values = {"rulesets": {"files": {"a": {"r.yaml": ""}}, "existingConfigMaps": {"a": "cm"}}}
    with pytest.raises(helm.HelmError, match="both"):
        chart.render(values=values, name=RELEASE, namespace=NAMESPACE)


def test_redis_url_goes_through_a_secret(all_on: Rendered, default: Rendered) -> None:
    assert "RULES_ENGINE_REDIS_URL" not in default.env()
    ref = all_on.env()["RULES_ENGINE_REDIS_URL"]["valueFrom"]["secretKeyRef"]
    secret = all_on.one("Secret", ref["name"])
    assert secret["stringData"][ref["key"]] == "redis://redis-master.data.svc:6379/0"
    annotations = all_on.one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/redis" in annotations


def test_redis_url_from_an_existing_secret(chart: helm.Chart) -> None:
    rendered = render(chart, {"redis": {"existingSecret": "redis-credentials", "existingSecretKey": "url"}})
    ref = rendered.env()["RULES_ENGINE_REDIS_URL"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "redis-credentials", "key": "url"}
    assert rendered.all("Secret") == []


def test_settings_reach_the_server_as_environment(all_on: Rendered) -> None:
    env = all_on.env()
    assert env["RULES_ENGINE_HOST"]["value"] == "0.0.0.0"
    assert env["RULES_ENGINE_GRACE_SECONDS"]["value"] == "20"
    assert env["RULES_ENGINE_WORKERS"]["value"] == "2"
    assert env["RULES_ENGINE_EXAMPLE"]["value"] == "on"
    assert all_on.container()["image"].endswith("@sha256:" + "0123456789abcdef" * 4)


# --- NetworkPolicy ------------------------------------------------------------------------


def test_network_policy_opens_the_named_ports_and_the_needed_egress(all_on: Rendered) -> None:
    policy = all_on.one("NetworkPolicy")
    assert policy["spec"]["podSelector"] == all_on.one("Deployment")["spec"]["selector"]
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    ingress_ports = [rule["ports"][0]["port"] for rule in policy["spec"]["ingress"]]
    assert ingress_ports == ["grpc", "metrics", "http"]
    http_rule = policy["spec"]["ingress"][2]
    case_management = {"kubernetes.io/metadata.name": "case-management"}
    assert http_rule["from"][0]["namespaceSelector"]["matchLabels"] == case_management
    egress_ports = {port["port"] for rule in policy["spec"]["egress"] for port in rule["ports"]}
    assert egress_ports == {53, 6379, 4317}


# --- PrometheusRule -----------------------------------------------------------------------


def _rule_groups(rendered: Rendered) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = rendered.one("PrometheusRule")["spec"]["groups"]
    return groups


def _alerts(rendered: Rendered) -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for group in _rule_groups(rendered) for rule in group["rules"]}


def _metric_names(expr: str) -> set[str]:
    return {_HISTOGRAM_SUFFIX.sub("", name) for name in _METRIC.findall(expr)}


def test_alerts_cover_what_operations_watch(all_on: Rendered) -> None:
    alerts = _alerts(all_on)
    assert set(alerts) == EXPECTED_ALERTS
    for alert in alerts.values():
        assert alert["labels"]["severity"] in {"critical", "warning", "info"}
        assert alert["annotations"]["summary"]
        assert alert["annotations"]["description"]
    assert "> 0.25" in alerts["RulesEngineHighLatency"]["expr"]  # the threshold from the values file
    assert "histogram_quantile(0.99" in alerts["RulesEngineHighLatency"]["expr"]
    assert 'result="refused"' in alerts["RulesEngineRulesetReloadRefused"]["expr"]


def test_alert_expressions_use_the_service_metrics(all_on: Rendered) -> None:
    for name, alert in _alerts(all_on).items():
        used = _metric_names(alert["expr"])
        assert used, f"{name} uses no rules_engine_ metric"
        assert used <= KNOWN_METRICS, f"{name}: unknown metric {used - KNOWN_METRICS}"
        assert f'namespace="{NAMESPACE}",job="{FULLNAME}"' in alert["expr"]


def test_each_alert_can_be_switched_off(chart: helm.Chart) -> None:
    values = _merge(all_on_values(), {"prometheusRule": {"alerts": {"noEvaluations": {"enabled": False}}}})
    assert set(_alerts(render(chart, values))) == EXPECTED_ALERTS - {"RulesEngineNoEvaluations"}


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (Debian package 'prometheus')")
    return path


def _run(command: list[str], cwd: Path) -> None:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_rendered_rules(all_on: Rendered, tmp_path: Path) -> None:
    promtool = _promtool()
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": _rule_groups(all_on)}), encoding="utf-8")
    _run([promtool, "check", "rules", "rules.yaml"], tmp_path)


def _series(metric: str, labels: dict[str, str], values: str) -> dict[str, str]:
    selector = {"namespace": NAMESPACE, "job": FULLNAME, **labels}
    inner = ",".join(f'{key}="{value}"' for key, value in selector.items())
    return {"series": f"{metric}{{{inner}}}", "values": values}


def test_alerts_fire_on_trouble_and_stay_quiet_otherwise(all_on: Rendered, tmp_path: Path) -> None:
    """promtool's rule unit tests: synthetic series in, expected alerts out."""
    promtool = _promtool()
    groups = copy.deepcopy(_rule_groups(all_on))
    for group in groups:
        for rule in group["rules"]:
            # Annotations are checked by `promtool check rules`; here only which alerts fire.
            rule.pop("annotations")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}), encoding="utf-8")
    evaluate = {"method": "Evaluate"}
    healthy = [
        _series("rules_engine_grpc_requests_total", {**evaluate, "code": "OK"}, "0+100x40"),
        _series("rules_engine_grpc_requests_total", {**evaluate, "code": "INVALID_ARGUMENT"}, "0+20x40"),
        _series("rules_engine_grpc_request_seconds_bucket", {**evaluate, "le": "0.1"}, "0+120x40"),
        _series("rules_engine_grpc_request_seconds_bucket", {**evaluate, "le": "+Inf"}, "0+120x40"),
        _series("rules_engine_ruleset_reloads_total", {"ruleset": "starter", "result": "loaded"}, "1x40"),
        _series("rules_engine_ruleset_reloads_total", {"ruleset": "starter", "result": "refused"}, "0x40"),
        _series("rules_engine_store_errors_total", {}, "0x40"),
        _series("rules_engine_evaluations_total", {"ruleset": "starter", "outcome": "ok"}, "0+100x40"),
    ]
    failing = [
        _series("rules_engine_grpc_requests_total", {**evaluate, "code": "OK"}, "0+90x40"),
        _series("rules_engine_grpc_requests_total", {**evaluate, "code": "INTERNAL"}, "0+10x40"),
        _series("rules_engine_grpc_request_seconds_bucket", {**evaluate, "le": "0.1"}, "0+50x40"),
        _series("rules_engine_grpc_request_seconds_bucket", {**evaluate, "le": "1"}, "0+100x40"),
        _series("rules_engine_grpc_request_seconds_bucket", {**evaluate, "le": "+Inf"}, "0+100x40"),
        _series("rules_engine_ruleset_reloads_total", {"ruleset": "starter", "result": "refused"}, "0x25 1x15"),
        _series("rules_engine_store_errors_total", {}, "0+6x40"),
    ]
    where = {"namespace": NAMESPACE, "job": FULLNAME}
    expected = {
        "RulesEngineHighErrorRate": {**where, "severity": "critical"},
        "RulesEngineHighLatency": {**where, "severity": "warning", "method": "Evaluate"},
        "RulesEngineRulesetReloadRefused": {**where, "severity": "warning", "ruleset": "starter"},
        "RulesEngineRedisErrors": {**where, "severity": "warning"},
        "RulesEngineNoEvaluations": {**where, "severity": "warning"},
    }
    assert set(expected) == EXPECTED_ALERTS
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "name": "healthy",
                "interval": "1m",
                "input_series": healthy,
                "alert_rule_test": [{"eval_time": "35m", "alertname": name, "exp_alerts": []} for name in expected],
            },
            {
                "name": "failing",
                "interval": "1m",
                "input_series": failing,
                "alert_rule_test": [
                    {"eval_time": "35m", "alertname": name, "exp_alerts": [{"exp_labels": labels}]}
                    for name, labels in expected.items()
                ],
            },
        ],
    }
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests), encoding="utf-8")
    _run([promtool, "test", "rules", "tests.yaml"], tmp_path)


# --- Grafana dashboard --------------------------------------------------------------------


def _dashboard(rendered: Rendered) -> dict[str, Any]:
    config_map = rendered.one("ConfigMap", f"{FULLNAME}-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["namespace"] == "monitoring"
    dashboard: dict[str, Any] = json.loads(config_map["data"]["rules-engine.json"])
    return dashboard


def _panel_queries(dashboard: dict[str, Any]) -> dict[str, list[str]]:
    return {
        panel["title"]: [target["expr"] for target in panel.get("targets", [])]
        for panel in dashboard["panels"]
        if panel["type"] != "row"
    }


def test_dashboard_has_the_panels_operations_need(all_on: Rendered) -> None:
    dashboard = _dashboard(all_on)
    assert dashboard["uid"] == "rules-engine"
    queries = _panel_queries(dashboard)
    wanted = {
        "Request rate by method": "rules_engine_grpc_requests_total",
        "Error rate by code": "rules_engine_grpc_requests_total",
        "gRPC latency quantiles": "rules_engine_grpc_request_seconds",
        "Evaluation latency quantiles": "rules_engine_evaluation_seconds",
        "Flags raised by severity": "rules_engine_flags_total",
        "Ruleset reloads by result": "rules_engine_ruleset_reloads_total",
        "Store errors": "rules_engine_store_errors_total",
    }
    for title, metric in wanted.items():
        assert any(metric in _metric_names(expr) for expr in queries[title]), title
    for title, exprs in queries.items():
        assert exprs, title
        for expr in exprs:
            assert _metric_names(expr) <= KNOWN_METRICS, (title, expr)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert {var["name"] for var in dashboard["templating"]["list"]} == {"datasource", "namespace", "job"}


def test_promtool_parses_the_dashboard_queries(all_on: Rendered, tmp_path: Path) -> None:
    promtool = _promtool()
    substitutions = {"$__rate_interval": "5m", "$namespace": ".*", "$job": ".*"}
    rules: list[dict[str, str]] = []
    for index, exprs in enumerate(_panel_queries(_dashboard(all_on)).values()):
        for expr in exprs:
            concrete = expr
            for variable, value in substitutions.items():
                concrete = concrete.replace(variable, value)
            assert "$" not in concrete, concrete
            rules.append({"record": f"dashboard:panel_{index}:{len(rules)}", "expr": concrete})
    (tmp_path / "dashboard.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8"
    )
    _run([promtool, "check", "rules", "dashboard.yaml"], tmp_path)


# --- TLS, client authentication, workers, limits ------------------------------------------


def _volumes(rendered: Rendered) -> dict[str, dict[str, Any]]:
    pod = rendered.one("Deployment")["spec"]["template"]["spec"]
    return {volume["name"]: volume for volume in pod["volumes"]}


def _file_source(rendered: Rendered, path: str) -> tuple[dict[str, Any], str]:
    """The volume and the key a file of the container comes from (through the volume's items)."""
    for mount in rendered.container()["volumeMounts"]:
        prefix = mount["mountPath"].rstrip("/") + "/"
        if not path.startswith(prefix):
            continue
        assert mount.get("readOnly") is True, mount
        assert "subPath" not in mount, "a subPath mount never sees the kubelet's updates"
        volume = _volumes(rendered)[mount["name"]]
        source = volume.get("secret") or volume.get("configMap")
        assert source is not None
        relative = path[len(prefix) :]
        items = {item["path"]: item["key"] for item in source.get("items", [])}
        return volume, items.get(relative, relative)
    raise AssertionError(f"{path} is on no volume")


def test_plaintext_is_asked_for_only_without_tls(rendered: Rendered) -> None:
    env = rendered.env()
    if _serves_tls(rendered):
        assert "RULES_ENGINE_PLAINTEXT" not in env
        assert "RULES_ENGINE_TLS_KEY" in env
    else:
        assert env["RULES_ENGINE_PLAINTEXT"]["value"] == "true"
        assert not {"RULES_ENGINE_TLS_KEY", "RULES_ENGINE_TLS_CLIENT_CA"} & set(env)


def test_tls_files_come_read_only_from_the_existing_secret(all_on: Rendered) -> None:
    env = all_on.env()
    for variable, key in (("RULES_ENGINE_TLS_CERT", "tls.crt"), ("RULES_ENGINE_TLS_KEY", "tls.key")):
        volume, found = _file_source(all_on, env[variable]["value"])
        assert volume["secret"]["secretName"] == "rules-engine-tls"
        assert volume["secret"]["defaultMode"] == 0o440
        assert found == key
    assert env["RULES_ENGINE_TLS_CERT"]["value"].startswith("/etc/rules-engine/tls/")
    volume, key = _file_source(all_on, env["RULES_ENGINE_TLS_CLIENT_CA"]["value"])
    assert volume["configMap"]["name"] == "rules-engine-client-ca"
    assert key == "ca.pem"
    # The probe's own client certificate (values-all-on.yaml sets tls.probe.clientCertSecret).
    command = all_on.container()["readinessProbe"]["exec"]["command"]
    options = dict(zip(command[3::2], command[4::2], strict=True))
    assert options["--tls-server-name"] == "re-rules-engine.safeguarding.svc"
    for option, key in (("--tls-cert", "tls.crt"), ("--tls-key", "tls.key")):
        volume, found = _file_source(all_on, options[option])
        assert volume["secret"]["secretName"] == "rules-engine-probe-tls"
        assert found == key


def test_client_ca_from_a_secret_and_the_probe_presenting_the_server_pair(chart: helm.Chart) -> None:
    rendered = render(chart, MTLS_SECRET_CA)
    env = rendered.env()
    volume, key = _file_source(rendered, env["RULES_ENGINE_TLS_CLIENT_CA"]["value"])
    assert volume["secret"]["secretName"] == "rules-engine-tls"
    assert key == "ca.crt"
    command = rendered.container()["livenessProbe"]["exec"]["command"]
    options = dict(zip(command[3::2], command[4::2], strict=True))
    assert options["--tls-cert"] == env["RULES_ENGINE_TLS_CERT"]["value"]
    assert options["--tls-key"] == env["RULES_ENGINE_TLS_KEY"]["value"]
    assert "--tls-server-name" not in options  # taken from the certificate


def test_tls_without_client_certificates(chart: helm.Chart) -> None:
    rendered = render(chart, TLS_ONLY)
    env = rendered.env()
    assert "RULES_ENGINE_TLS_CLIENT_CA" not in env
    assert set(_volumes(rendered)) == {"tmp", "tls"}
    command = rendered.container()["startupProbe"]["exec"]["command"]
    assert "--tls-cert" not in command


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"tls": {"clientCA": {"existingSecret": "ca"}}}, "needs tls.enabled"),
        (
            {
                "tls": {
                    "enabled": True,
                    "existingSecret": "t",
                    "clientCA": {"existingSecret": "a", "existingConfigMap": "b"},
                }
            },
            "not both",
        ),
        ({"tls": {"enabled": True, "existingSecret": "t", "probe": {"clientCertSecret": "p"}}}, "mutual TLS"),
    ],
)
def test_contradictory_tls_settings_are_refused(chart: helm.Chart, values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmError, match=message):
        chart.render(values=values, name=RELEASE, namespace=NAMESPACE)


def test_clients_file_comes_from_the_existing_secret(all_on: Rendered, default: Rendered) -> None:
    assert "RULES_ENGINE_CLIENTS_FILE" not in default.env()
    volume, key = _file_source(all_on, all_on.env()["RULES_ENGINE_CLIENTS_FILE"]["value"])
    assert volume["secret"]["secretName"] == "rules-engine-clients"
    assert volume["secret"]["defaultMode"] == 0o440
    assert key == "clients.txt"


@pytest.mark.parametrize(
    ("config", "resources", "expected"),
    [
        ({}, None, 1),
        ({"workers": 1}, None, 1),
        ({"workers": 6}, None, 6),
        ({"workers": "auto"}, None, 1),  # the default limit, cpu "1"
        ({"workers": "auto"}, {"limits": {"cpu": "2500m"}}, 3),
        ({"workers": "auto"}, {"limits": {"cpu": 4}}, 4),
        ({"workers": "auto"}, {"limits": {"cpu": "250m"}}, 1),
        ({"workers": "auto"}, {"requests": {"cpu": 1.5}, "limits": {"cpu": None}}, 2),
        ({"workers": "auto"}, {"requests": {"cpu": None}, "limits": {"cpu": None}}, 1),
    ],
)
def test_workers_and_their_metrics_directory(
    chart: helm.Chart, config: dict[str, Any], resources: dict[str, Any] | None, expected: int
) -> None:
    values: dict[str, Any] = {"config": config}
    if config.get("workers", 1) != 1:  # several processes share case state only through Redis
        values["redis"] = {"url": "redis://redis:6379/0"}
    if resources is not None:
        values["resources"] = resources
    rendered = render(chart, values)
    env = rendered.env()
    assert env["RULES_ENGINE_WORKERS"]["value"] == str(expected)
    if expected > 1:
        # Multiprocess metrics on the writable tmp volume; the server makes the directory.
        directory = env["PROMETHEUS_MULTIPROC_DIR"]["value"]
        assert directory == "/tmp/metrics"
        mounts = {m["mountPath"]: m["name"] for m in rendered.container()["volumeMounts"]}
        assert "emptyDir" in _volumes(rendered)[mounts["/tmp"]]
    else:
        assert "PROMETHEUS_MULTIPROC_DIR" not in env
    assert f"Workers: {expected} server process" in rendered.notes


LIMIT_ENV = {
    "RULES_ENGINE_MAX_CONCURRENT_RPCS": "32",
    "RULES_ENGINE_MAX_MESSAGE_BYTES": "33554432",
    "RULES_ENGINE_MAX_BATCH": "500",
    "RULES_ENGINE_MAX_FACTS": "5000",
    "RULES_ENGINE_MAX_STRING_CHARS": "512",
    "RULES_ENGINE_RETENTION_DAYS": "2190",
    "RULES_ENGINE_DECISION_LOG_MAX_ENTRIES": "200000",
    "RULES_ENGINE_DECISION_LOG_MAX_AGE_DAYS": "400",
    "RULES_ENGINE_CASE_DECISIONS_MAX_ENTRIES": "500",
    "RULES_ENGINE_MAX_CASES": "20000",
    "RULES_ENGINE_EVALUATION_CACHE_SIZE": "2048",
}


def test_limits_reach_the_server_only_when_set(all_on: Rendered, default: Rendered, chart: helm.Chart) -> None:
    assert {name: all_on.env()[name]["value"] for name in LIMIT_ENV} == LIMIT_ENV
    assert not set(LIMIT_ENV) & set(default.env())
    one = render(chart, {"config": {"limits": {"maxMessageBytes": 100_000_000}}}).env()
    assert one["RULES_ENGINE_MAX_MESSAGE_BYTES"]["value"] == "100000000"  # not 1e+08
    assert not (set(LIMIT_ENV) - {"RULES_ENGINE_MAX_MESSAGE_BYTES"}) & set(one)


def test_every_variable_the_chart_sets_is_an_option_of_serve(rendered: Rendered) -> None:
    """The chart's RULES_ENGINE_* names are the ones `rules-engine serve` reads (besides the image's)."""
    help_text = subprocess.run(
        [sys.executable, "-m", "rules_engine", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "COLUMNS": "400"},
        cwd=ROOT,
    ).stdout
    for name in rendered.env():
        if name.startswith("RULES_ENGINE_") and name != "RULES_ENGINE_EXAMPLE":
            assert name in help_text, name


# --- the rendered TLS pod, run for real ----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _probe(command: list[str], paths: dict[str, Path], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    assert command[:2] == ["python", "/app/healthcheck.py"]
    local = [sys.executable, str(ROOT / "docker" / "healthcheck.py"), *(_local(arg, paths) for arg in command[2:])]
    return subprocess.run(local, env=env, capture_output=True, text=True, timeout=30, check=False)


def _local(value: str, paths: dict[str, Path]) -> str:
    for mount, directory in paths.items():
        if value == mount or value.startswith(mount + "/"):
            return str(directory) + value[len(mount) :]
    return value


def test_rendered_tls_pod_serves_and_its_probes_pass(chart: helm.Chart, tmp_path: Path) -> None:
    """`rules-engine serve` with the environment of a rendered mutual-TLS pod (two workers sharing a
    real Redis, client tokens), its volumes laid out in a temporary directory, answers the rendered
    exec probes."""
    values = _merge(MTLS_SECRET_CA, {"tls": {"probe": {"clientCertSecret": "rules-engine-probe-tls"}}})
    rendered = render(chart, values)
    ca = Authority("cluster CA")
    server_name = f"{FULLNAME}.{NAMESPACE}.svc"
    files: dict[str, dict[str, bytes]] = {
        "tls": {},
        "tls-client-ca": {"ca.crt": ca.pem},
        "tls-probe": {},
        "auth": {"clients": b"0123456789abcdef0123456789abcdef caller case-management\n"},
    }
    server = ca.issue("rules-engine", dns_names=(server_name,), usages=(ExtendedKeyUsageOID.SERVER_AUTH,))
    probe = ca.issue("kubelet-probe", usages=(ExtendedKeyUsageOID.CLIENT_AUTH,))
    files["tls"] = {"tls.crt": server.cert, "tls.key": server.key}
    files["tls-probe"] = {"tls.crt": probe.cert, "tls.key": probe.key}
    paths: dict[str, Path] = {}
    volumes = _volumes(rendered)
    for mount in rendered.container()["volumeMounts"]:
        directory = tmp_path / mount["name"]
        directory.mkdir()
        paths[mount["mountPath"]] = directory
        source = volumes[mount["name"]].get("secret") or volumes[mount["name"]].get("configMap") or {}
        for item in source.get("items", []):
            (directory / item["path"]).write_bytes(files[mount["name"]][item["path"]])
    grpc_port, metrics_port = _free_port(), _free_port()
    inherited = {
        key: value for key, value in os.environ.items() if not key.startswith(("RULES_ENGINE_", "PROMETHEUS_"))
    }
    env = {
        **inherited,
        **{name: _local(var["value"], paths) for name, var in rendered.env().items() if "value" in var},
        "RULES_ENGINE_HOST": "127.0.0.1",
        "RULES_ENGINE_PORT": str(grpc_port),
        "RULES_ENGINE_METRICS_PORT": str(metrics_port),
    }
    assert env["RULES_ENGINE_WORKERS"] == "2"
    # The pod reads the Redis URL from the Secret; here it is a real Redis on a free port.
    assert "secretKeyRef" in rendered.env()["RULES_ENGINE_REDIS_URL"]["valueFrom"]
    (tmp_path / "redis").mkdir()
    redis = RedisServer(tmp_path / "redis", persistent=False)
    redis.start()
    env["RULES_ENGINE_REDIS_URL"] = redis.url
    container = rendered.container()
    log = tmp_path / "serve.log"
    with log.open("w", encoding="utf-8") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "rules_engine", "serve"], cwd=ROOT, env=env, stdout=output, stderr=output
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            startup = _probe(container["startupProbe"]["exec"]["command"], paths, env)
            if startup.returncode == 0:
                break
            assert process.poll() is None, log.read_text(encoding="utf-8")[-2000:]
            assert time.monotonic() < deadline, startup.stderr
            time.sleep(0.5)
        for probe_name in ("livenessProbe", "readinessProbe"):
            result = _probe(container[probe_name]["exec"]["command"], paths, env)
            assert result.returncode == 0, (probe_name, result.stderr)
        # The kubelet's native probe (plaintext) could not have done it.
        plaintext = subprocess.run(
            [sys.executable, str(ROOT / "docker" / "healthcheck.py"), ""],
            env={**inherited, "RULES_ENGINE_PORT": str(grpc_port)},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert plaintext.returncode == 1
        # Two workers write their metrics under the tmp volume, in the directory the server made.
        assert any((paths["/tmp"] / "metrics").glob("*.db"))
    finally:
        stop(process, timeout=60)
        redis.stop()
