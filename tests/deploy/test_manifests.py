"""Structure of every rendered overlay: the notes' objects, wired to each other and to the real server."""

from __future__ import annotations

import base64
import re
import subprocess
from typing import Any

from mlkube.settings import Settings
from tests.deploy.dockerfile import parse_dockerfile
from tests.deploy.rendered import Doc, Rendered, labels_match, pod_env, pod_labels
from tests.deploy.tools import DOCKERFILE, REPO
from tests.support import RunningServer

NOTES_CLASS_NAMES = "setosa,versicolor,virginica"
NOTES_CONFIG_KEYS = {"CLASS_NAMES", "MODEL_VERSION", "LOG_LEVEL"}
RESOURCES = {
    "requests": {"cpu": "250m", "memory": "128Mi", "ephemeral-storage": "64Mi"},
    "limits": {"cpu": "500m", "memory": "256Mi", "ephemeral-storage": "128Mi"},
}
HPA_RANGE = {"minikube": (2, 5), "production": (3, 20)}
HPA_TARGET = 60
SERVER_CPU_PER_REQUEST = 200e-6
"""Seconds of server CPU a /predict request costs, rounded up from bench/RESULTS.md (199 µs at c=8)."""
DRAIN_AND_GRACE = {"minikube": (5, 20), "production": (15, 25)}
EXIT_MARGIN = 5
"""Seconds terminationGracePeriodSeconds allows beyond drain + grace, for the process to exit."""
SETTINGS_NAMES = {name.upper() for name in Settings.__struct_fields__}
CLUSTER_SCOPED = {"Namespace", "PriorityClass"}


def container_port(container: Doc, port: int | str) -> int:
    """A probe's or Service's port, by number or by the container port's name."""
    if isinstance(port, int):
        return port
    named = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    assert named, f"no container port named {port!r}"
    return int(named[0])


def prestop_seconds(container: Doc) -> float:
    """Seconds a preStop hook waits: the native `sleep` action or `python -c 'import time; time.sleep(N)'`."""
    hook: dict[str, Any] = container.get("lifecycle", {}).get("preStop", {})
    if "sleep" in hook:
        return float(hook["sleep"]["seconds"])
    if "exec" in hook:
        match = re.search(r"sleep\(?\s*([\d.]+)", " ".join(hook["exec"]["command"]))
        assert match, f"preStop exec hook of unknown length: {hook}"
        return float(match.group(1))
    assert not hook, f"preStop hook of unknown length: {hook}"
    return 0.0


def test_overlay_renders_the_notes_objects(rendered: Rendered) -> None:
    names = {(doc["kind"], doc["metadata"]["name"]) for doc in rendered.docs}
    for kind, name in [
        ("Deployment", "ml-model-deployment"),
        ("Service", "ml-model-service"),
        ("HorizontalPodAutoscaler", "ml-model-hpa"),
        ("ServiceAccount", "ml-model"),
        ("PodDisruptionBudget", "ml-model-pdb"),
    ]:
        assert (kind, name) in names, f"{rendered.variant}: no {kind} {name}"
    config_map = rendered.one("ConfigMap")["metadata"]["name"]
    assert re.fullmatch(r"ml-model-config-[a-z0-9]{10}", config_map), (
        "the generator's hash suffix is expected"
    )


def test_every_object_carries_the_notes_label(rendered: Rendered) -> None:
    for doc in rendered.docs:
        if doc["kind"] not in CLUSTER_SCOPED:
            assert doc["metadata"]["labels"]["app"] == "ml-model", f"{doc['kind']} {doc['metadata']['name']}"


def test_container_is_the_notes_container_on_port_5000(rendered: Rendered) -> None:
    assert rendered.container["name"] == "ml-model"
    assert rendered.container["ports"] == [{"name": "http", "containerPort": 5000, "protocol": "TCP"}]


def test_selectors_match_the_pod_labels(rendered: Rendered) -> None:
    labels = pod_labels(rendered)
    assert rendered.deployment["spec"]["selector"] == {"matchLabels": {"app": "ml-model"}}
    assert labels_match(rendered.deployment["spec"]["selector"]["matchLabels"], labels)
    assert labels_match(rendered.one("Service")["spec"]["selector"], labels)
    assert labels_match(rendered.one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"], labels)
    for constraint in rendered.pod_spec["topologySpreadConstraints"]:
        assert labels_match(constraint["labelSelector"]["matchLabels"], labels)
    for policy in rendered.all("NetworkPolicy"):
        assert labels_match(policy["spec"]["podSelector"]["matchLabels"], labels)


def test_service_sends_port_5000_to_the_container_port(rendered: Rendered) -> None:
    [port] = rendered.one("Service")["spec"]["ports"]
    assert port["port"] == 5000
    assert container_port(rendered.container, port["targetPort"]) == 5000


def test_configmap_holds_the_notes_keys_and_reaches_the_container(rendered: Rendered) -> None:
    config_map = rendered.one("ConfigMap")
    assert set(config_map["data"]) == NOTES_CONFIG_KEYS
    assert config_map["data"]["CLASS_NAMES"] == NOTES_CLASS_NAMES
    assert config_map["data"]["LOG_LEVEL"] == "INFO"
    assert config_map["data"]["MODEL_VERSION"] == "", "empty: each pod reports its own image's model version"
    assert rendered.container["envFrom"] == [{"configMapRef": {"name": config_map["metadata"]["name"]}}]


def test_every_variable_the_pod_sets_is_a_real_setting(rendered: Rendered) -> None:
    unknown = set(pod_env(rendered)) - SETTINGS_NAMES
    assert not unknown, f"not read by mlkube.settings.Settings: {sorted(unknown)}"


def test_api_key_is_a_mounted_file_never_an_environment_variable(rendered: Rendered) -> None:
    container, pod = rendered.container, rendered.pod_spec
    assert all("secretRef" not in source for source in container["envFrom"])
    assert all("valueFrom" not in item for item in container["env"])
    [volume] = [v for v in pod["volumes"] if "secret" in v]
    [mount] = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    [item] = volume["secret"]["items"]
    assert item["key"] == "API_KEY"
    assert pod_env(rendered)["API_KEY_FILE"] == f"{mount['mountPath']}/{item['path']}"
    assert mount["readOnly"] is True
    assert volume["secret"]["defaultMode"] == 0o440, "readable by the pod's group only"
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsGroup"]


def test_the_secret_comes_from_outside_unless_the_component_generates_it(rendered: Rendered) -> None:
    [volume] = [v for v in rendered.pod_spec["volumes"] if "secret" in v]
    secrets = rendered.all("Secret")
    if rendered.api_key is None:
        assert secrets == [], "no Secret is committed: kubectl create secret generic ml-model-secret ..."
        assert volume["secret"]["secretName"] == "ml-model-secret"  # pragma: allowlist secret
        return
    [secret] = secrets
    assert re.fullmatch(r"ml-model-secret-[a-z0-9]{10}", secret["metadata"]["name"])
    assert volume["secret"]["secretName"] == secret["metadata"]["name"], "kustomize rewrites the reference"
    assert base64.b64decode(secret["data"]["API_KEY"]).decode() == rendered.api_key


def test_probes_use_the_routes_the_server_serves(rendered: Rendered) -> None:
    container = rendered.container
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["startupProbe"]["httpGet"]["path"] == "/health"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container_port(container, container[probe]["httpGet"]["port"]) == 5000


def test_probe_and_scrape_paths_answer_200_on_a_real_server(
    renders: dict[str, Rendered], server: RunningServer
) -> None:
    paths = {
        rendered.container[probe]["httpGet"]["path"]
        for rendered in renders.values()
        for probe in ("livenessProbe", "readinessProbe", "startupProbe")
    }
    paths |= {
        r.deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"]
        for r in renders.values()
    }
    for path in sorted(paths):
        assert server.client.get(path).status_code == 200, path


def cpu_cores(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def test_hpa_scales_the_deployment_on_cpu_at_the_sized_target(rendered: Rendered) -> None:
    hpa = rendered.one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "ml-model-deployment",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == HPA_RANGE[rendered.overlay]
    [metric] = hpa["spec"]["metrics"]
    assert metric == {
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": HPA_TARGET}},
    }


def test_hpa_target_leaves_headroom_under_the_cpu_limit(rendered: Rendered) -> None:
    """Scale out well before the single worker is throttled at its limit, at a rate a pod really serves."""
    resources = rendered.container["resources"]
    request, limit = cpu_cores(resources["requests"]["cpu"]), cpu_cores(resources["limits"]["cpu"])
    scale_out_at = request * HPA_TARGET / 100
    assert limit / scale_out_at >= 3, "new pods take ~15 s to be ready: the old ones must absorb the burst"
    requests_per_pod = scale_out_at / SERVER_CPU_PER_REQUEST
    assert 300 <= requests_per_pod <= 1500, f"a pod scales out at {requests_per_pod:.0f} req/s"


def test_hpa_scales_up_fast_and_down_slowly(rendered: Rendered) -> None:
    behavior = rendered.one("HorizontalPodAutoscaler")["spec"]["behavior"]
    up, down = behavior["scaleUp"], behavior["scaleDown"]
    assert up["stabilizationWindowSeconds"] == 0
    assert {"type": "Percent", "value": 100, "periodSeconds": 15} in up["policies"]
    assert down["stabilizationWindowSeconds"] >= 300
    assert down["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 60}]


def test_deployment_leaves_the_replica_count_to_the_hpa(rendered: Rendered) -> None:
    assert "replicas" not in rendered.deployment["spec"]


def test_rolling_update_starts_a_new_pod_before_stopping_an_old_one(rendered: Rendered) -> None:
    assert rendered.deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"},
    }


def test_termination_grace_is_derived_from_drain_and_grace(rendered: Rendered) -> None:
    env, defaults = pod_env(rendered), Settings()
    drain = float(env.get("DRAIN_SECONDS", defaults.drain_seconds))
    grace = float(env.get("GRACE_SECONDS", defaults.grace_seconds))
    budget = prestop_seconds(rendered.container) + drain + grace + EXIT_MARGIN
    assert drain > 0, "the server must keep serving while kube-proxies and load balancers let go"
    assert rendered.pod_spec["terminationGracePeriodSeconds"] == budget


def test_drain_timings_are_overlay_settings(rendered: Rendered) -> None:
    env = pod_env(rendered)
    drain, grace = DRAIN_AND_GRACE[rendered.overlay]
    assert (float(env["DRAIN_SECONDS"]), float(env["GRACE_SECONDS"])) == (drain, grace)


def test_pod_meets_the_restricted_pod_security_standard(rendered: Rendered) -> None:
    pod, container = rendered.pod_spec, rendered.container
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsUser"] >= 10000
    assert not {"hostNetwork", "hostPID", "hostIPC"} & set(pod)
    assert all("hostPath" not in volume for volume in pod["volumes"])
    [tmp] = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    [volume] = [v for v in pod["volumes"] if v["name"] == tmp["name"]]
    assert "emptyDir" in volume, "the only writable place is an emptyDir at /tmp"


def test_pod_user_is_the_images_user(rendered: Rendered) -> None:
    user = parse_dockerfile(DOCKERFILE).final_stage.last("USER").value
    uid, gid = (int(part) for part in user.split(":"))
    context = rendered.pod_spec["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"]) == (uid, gid)


def test_service_account_is_dedicated_and_mounts_no_token(rendered: Rendered) -> None:
    account = rendered.one("ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    assert rendered.pod_spec["serviceAccountName"] == account["metadata"]["name"]
    assert rendered.pod_spec["automountServiceAccountToken"] is False


def test_resources_are_the_measured_figures(rendered: Rendered) -> None:
    assert rendered.container["resources"] == RESOURCES


def test_pods_spread_over_nodes(rendered: Rendered) -> None:
    keys = {c["topologyKey"] for c in rendered.pod_spec["topologySpreadConstraints"]}
    assert "kubernetes.io/hostname" in keys
    if rendered.overlay == "production":
        assert "topology.kubernetes.io/zone" in keys


def test_disruption_budget_lets_one_pod_go_at_a_time(rendered: Rendered) -> None:
    assert rendered.one("PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_prometheus_annotations_point_at_the_metrics_route(rendered: Rendered) -> None:
    annotations = rendered.deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    assert container_port(rendered.container, int(annotations["prometheus.io/port"])) == 5000


def test_no_change_cause_is_committed(rendered: Rendered) -> None:
    """A committed cause goes stale after the first `kubectl set image`; `mlkube release` sets it."""
    annotations = rendered.deployment["metadata"].get("annotations", {})
    assert "kubernetes.io/change-cause" not in annotations


def test_minikube_overlay_is_the_notes_setup(renders: dict[str, Rendered]) -> None:
    rendered = renders["minikube"]
    assert rendered.one("Service")["spec"]["type"] == "NodePort"
    assert rendered.container["image"] == "ml-model:v2"
    assert rendered.container["imagePullPolicy"] == "Never"
    assert all("namespace" not in doc["metadata"] for doc in rendered.docs), "the notes' default namespace"


def test_production_overlay_pulls_a_tagged_registry_image_into_its_namespace(
    renders: dict[str, Rendered],
) -> None:
    rendered = renders["production"]
    assert rendered.one("Service")["spec"]["type"] == "ClusterIP"
    image = rendered.container["image"]
    assert re.fullmatch(r"[a-z0-9.-]+\.[a-z]+/[a-z0-9/._-]+:v\d+(@sha256:[0-9a-f]{64})?", image), image
    assert rendered.container["imagePullPolicy"] == "Always"
    namespace = rendered.one("Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in rendered.docs:
        if doc["kind"] not in CLUSTER_SCOPED:
            assert doc["metadata"]["namespace"] == namespace["metadata"]["name"], doc["kind"]


PORT_5000 = [{"protocol": "TCP", "port": 5000}]
INGRESS_CONTROLLER = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
PROMETHEUS = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
}
LOAD_JOB = {"podSelector": {"matchLabels": {"app": "ml-model-load"}}}


def test_production_network_policy_admits_only_the_ingress_prometheus_and_the_load_job(
    renders: dict[str, Rendered],
) -> None:
    policy = renders["production"].one("NetworkPolicy")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert all(rule.get("from") for rule in policy["ingress"]), "no rule may admit every source"
    assert policy["ingress"] == [
        {"from": [INGRESS_CONTROLLER], "ports": PORT_5000},
        {"from": [PROMETHEUS], "ports": PORT_5000},
        {"from": [LOAD_JOB], "ports": PORT_5000},
    ]
    assert policy["egress"] == [], "the server makes no outbound connection"


def ingress_routes(ingress: Doc, path: str) -> bool:
    """Kubernetes' matching: Exact compares the whole path; Prefix compares whole `/` elements."""
    elements = [part for part in path.split("/") if part]
    for rule in ingress["spec"]["rules"]:
        for route in rule["http"]["paths"]:
            if route["pathType"] == "Exact" and route["path"] == path:
                return True
            prefix = [part for part in route["path"].split("/") if part]
            if route["pathType"] == "Prefix" and elements[: len(prefix)] == prefix:
                return True
    return False


def test_ingress_routes_the_prediction_api_only(renders: dict[str, Rendered]) -> None:
    ingress = renders["production+components"].one("Ingress")
    for public in ("/predict", "/v1/models/iris:predict", "/v2/models/iris/infer", "/v2/health/ready"):
        assert ingress_routes(ingress, public), public
    for private in ("/metrics", "/docs", "/openapi.json", "/", "/health", "/ready", "/predictions"):
        assert not ingress_routes(ingress, private), private


def test_ingress_component_routes_to_the_service_port(renders: dict[str, Rendered]) -> None:
    for variant in ("minikube+components", "production+components"):
        rendered = renders[variant]
        [rule] = rendered.one("Ingress")["spec"]["rules"]
        service = rendered.one("Service")
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            assert backend["name"] == service["metadata"]["name"]
            assert backend["port"]["name"] in {port["name"] for port in service["spec"]["ports"]}


def test_notes_example_key_is_committed_nowhere() -> None:
    """The notes' Secret holds a literal key; no file that git would take may contain it."""
    files = (
        subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    needle = "my-secret-" + "api-key-12345"  # split so that this file does not contain it either
    found = [
        name
        for name in files
        if name and (REPO / name).is_file() and needle in (REPO / name).read_text(errors="replace")
    ]
    assert found == []


def test_committed_secret_template_holds_no_value() -> None:
    example = REPO / "deploy/kubernetes/components/api-key-secret/secret.env.example"
    values = [
        line.partition("=")[2]
        for line in example.read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert values == [""]


def test_git_ignores_the_real_secret_file() -> None:
    path = "deploy/kubernetes/components/api-key-secret/secret.env"
    result = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO, check=False)
    assert result.returncode == 0, f"{path} must be git-ignored"


# ------------------------------------------------------------------------------------------------
# kube-score and Polaris rules, read from their sources (neither tool installs here). A rule an overlay
# does not meet must be skipped on the object the way the tool reads it, with its reason beside it.


def exempt(rendered: Rendered, tool: str, rule: str) -> bool:
    """True when the Deployment skips `rule` (kube-score/ignore or polaris.fairwinds.com/<rule>-exempt),
    and then it must say why in mlkube.io/lint-reason.<rule>."""
    annotations: dict[str, str] = rendered.deployment["metadata"].get("annotations", {})
    if tool == "kube-score":
        skipped = rule in annotations.get("kube-score/ignore", "").split(",")
    else:
        skipped = annotations.get(f"polaris.fairwinds.com/{rule}-exempt") == "true"
    if skipped:
        reason = annotations.get(f"mlkube.io/lint-reason.{rule}", "")
        assert len(reason) > 40, f"{rendered.variant}: {tool} {rule} is skipped without a reason"
    return skipped


def selects_pod(policy: Doc, labels: dict[str, str]) -> bool:
    return labels_match(policy["spec"]["podSelector"].get("matchLabels", {}), labels)


def test_kube_score_container_ephemeral_storage_request_and_limit(rendered: Rendered) -> None:
    resources = rendered.container["resources"]
    assert "ephemeral-storage" in resources["requests"]
    assert "ephemeral-storage" in resources["limits"]
    tmp = next(v for v in rendered.pod_spec["volumes"] if "emptyDir" in v)
    assert memory_mib(resources["limits"]["ephemeral-storage"]) > memory_mib(tmp["emptyDir"]["sizeLimit"])


def memory_mib(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1.0, "Gi": 1024.0}
    return float(quantity[:-2]) * units[quantity[-2:]]


def test_kube_score_pod_networkpolicy(rendered: Rendered) -> None:
    """A NetworkPolicy selects the pod, with both Ingress and Egress policy types."""
    if exempt(rendered, "kube-score", "pod-networkpolicy"):
        assert rendered.overlay == "minikube", "only the personal minikube may skip it"
        return
    labels = pod_labels(rendered)
    policies = [p for p in rendered.all("NetworkPolicy") if selects_pod(p, labels)]
    assert policies, f"{rendered.variant}: no NetworkPolicy selects the pods"
    assert {"Ingress", "Egress"} <= {kind for p in policies for kind in p["spec"]["policyTypes"]}


def test_kube_score_container_image_pull_policy(rendered: Rendered) -> None:
    if not exempt(rendered, "kube-score", "container-image-pull-policy"):
        assert rendered.container["imagePullPolicy"] == "Always"
    if not exempt(rendered, "polaris", "pullPolicyNotAlways"):
        assert rendered.container["imagePullPolicy"] == "Always"


def test_polaris_priority_class_not_set(rendered: Rendered) -> None:
    if exempt(rendered, "polaris", "priorityClassNotSet"):
        assert rendered.overlay == "minikube", "only the personal minikube may skip it"
        return
    name = rendered.pod_spec["priorityClassName"]
    [priority] = [d for d in rendered.all("PriorityClass") if d["metadata"]["name"] == name]
    assert priority["globalDefault"] is False
    assert priority["value"] > 0


def test_polaris_metadata_and_instance_match(rendered: Rendered) -> None:
    """Label app.kubernetes.io/instance must equal the controller's metadata.name."""
    metadata = rendered.deployment["metadata"]
    assert metadata["labels"]["app.kubernetes.io/instance"] == metadata["name"]
    assert pod_labels(rendered)["app.kubernetes.io/instance"] == metadata["name"]
    assert "app.kubernetes.io/instance" not in rendered.deployment["spec"]["selector"]["matchLabels"]


def test_polaris_missing_network_policy(rendered: Rendered) -> None:
    """Polaris' schema: a policy whose matchLabels match exactly one pod label, with Ingress and Egress
    types and at least one rule of each. Production's `egress: []` fails it on purpose: skipped, said why."""
    if exempt(rendered, "polaris", "missingNetworkPolicy"):
        for policy in rendered.all("NetworkPolicy"):
            assert policy["spec"]["egress"] == [], "skipped only for a deny-all egress"
        return
    labels = pod_labels(rendered)
    passing = [
        policy
        for policy in rendered.all("NetworkPolicy")
        if sum(labels.get(k) == v for k, v in policy["spec"]["podSelector"]["matchLabels"].items()) == 1
        and policy["spec"].get("ingress")
        and policy["spec"].get("egress")
        and {"Ingress", "Egress"} <= set(policy["spec"]["policyTypes"])
    ]
    assert passing, f"{rendered.variant}: Polaris' missingNetworkPolicy would fail"
