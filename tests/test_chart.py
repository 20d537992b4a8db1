"""charts/microservice rendered with the real helm.

Over the user's platform: every environment and catalogue service found (in the repository, and in
the copy after the documented procedures), rendered as the deploy workflow renders it. Over the tests'
own examples: the chart's behaviours that need a known service (a certificate, a bad value).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from infra.config.helm_values import check_service_values
from infra.config.project import Project
from infra.config.settings import SettingsError
from infra.config.subnets import DATA, PUBLIC
from infra.constructs.valkey_cache import SERVERLESS_READ_PORT, VALKEY_PORT
from infra.stacks.database import POSTGRES_PORT
from infra.stacks.services import PLATFORM_CONFIG_MAP, namespace_of
from tests.conftest import CONFIGURED, subject
from tests.helm import CHART, Helm, image_repository
from tests.projects import EXAMPLES, load_yaml, settings_of
from tests.subjects import synth

CASES = [
    (s.label, s.project, s.environment, service.name)
    for s in CONFIGURED
    for service in settings_of(s.project, s.environment).services
]
IDS = [f"{label}-{service}" for label, _, _, service in CASES]
_RENDERED: dict[tuple[Path, str, str], list[dict[str, Any]]] = {}


def _start_every_case(helm: Helm) -> None:
    """Every case's lint and template, started at once on the first use (helm runs beside the tests)."""
    for _, project, environment, service in CASES:
        args = helm.release_args(project, environment, service)
        helm.start("lint", "--strict", *args)
        helm.start("template", service, *args)


@pytest.fixture(scope="module", autouse=True)
def _every_case_started(helm: Helm) -> None:
    _start_every_case(helm)


def _rendered(helm: Helm, project: Project, environment: str, service: str) -> dict[str, dict[str, Any]]:
    if (project.root, environment, service) not in _RENDERED:
        _RENDERED[(project.root, environment, service)] = helm.template(project, environment, service)
    return {d["kind"]: d for d in _RENDERED[(project.root, environment, service)]}


def _entry(project: Project, environment: str, service: str) -> Any:
    return next(s for s in settings_of(project, environment).services if s.name == service)


def test_every_catalogue_service_has_a_values_file_in_every_environment_and_nothing_else_does() -> None:
    for s in CONFIGURED:
        expected = {x.name for x in settings_of(s.project, s.environment).services}
        present = {p.stem for p in (s.project.helm_values / s.environment / "services").glob("*")}
        assert present == expected, s.label


@pytest.mark.parametrize(("label", "project", "environment", "service"), CASES, ids=IDS)
def test_chart_lints_strictly(helm: Helm, label: str, project: Project, environment: str, service: str) -> None:
    result = helm.run("lint", "--strict", *helm.release_args(project, environment, service))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("label", "project", "environment", "service"), CASES, ids=IDS)
def test_rendered_manifests_validate_against_the_cluster_kubernetes_schemas(
    helm: Helm, label: str, project: Project, environment: str, service: str
) -> None:
    version = settings_of(project, environment).eks.kubernetes_version + ".0"
    for document in _rendered(helm, project, environment, service).values():
        kubernetes_validate.validate(document, version, strict=True)


@pytest.mark.parametrize(("label", "project", "environment", "service"), CASES, ids=IDS)
def test_pods_meet_the_restricted_pod_security_profile(
    helm: Helm, label: str, project: Project, environment: str, service: str
) -> None:
    spec = _rendered(helm, project, environment, service)["Deployment"]["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = spec["containers"]
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["resources"]["limits"]
    assert container["resources"]["requests"]
    assert container["readinessProbe"]["httpGet"]["port"] == "http"
    assert container["livenessProbe"]["httpGet"]["port"] == "http"
    zones = [c["topologyKey"] for c in spec["topologySpreadConstraints"]]
    assert "topology.kubernetes.io/zone" in zones


@pytest.mark.parametrize(("label", "project", "environment", "service"), CASES, ids=IDS)
def test_release_uses_the_irsa_service_account_and_namespace_of_the_eks_stack(
    helm: Helm, label: str, project: Project, environment: str, service: str
) -> None:
    rendered = _rendered(helm, project, environment, service)
    assert "ServiceAccount" not in rendered
    assert rendered["Deployment"]["spec"]["template"]["spec"]["serviceAccountName"] == service
    for document in rendered.values():
        assert document["metadata"]["namespace"] == namespace_of(service, environment)
        assert document["metadata"]["labels"]["app.kubernetes.io/name"] == service
    pod = rendered["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    # By digest, as the deploy workflow resolves it; the tag it came from stays as the version label.
    assert container["image"] == f"{image_repository(project, environment, service)}@sha256:{'ab' * 32}"
    assert rendered["Deployment"]["metadata"]["labels"]["app.kubernetes.io/version"] == "0123abc"
    (port,) = container["ports"]
    assert port["containerPort"] == _entry(project, environment, service).port


@pytest.mark.parametrize(("label", "project", "environment", "service"), CASES, ids=IDS)
def test_http_services_get_an_alb_ingress_and_workers_get_none(
    helm: Helm, label: str, project: Project, environment: str, service: str
) -> None:
    rendered = _rendered(helm, project, environment, service)
    if not _entry(project, environment, service).ingress:
        assert "Service" not in rendered
        assert "Ingress" not in rendered
        return
    values = load_yaml((project.helm_values / environment / "services" / f"{service}.yaml").read_text("utf-8"))
    ingress = rendered["Ingress"]
    assert ingress["spec"]["ingressClassName"] == "alb"
    annotations = ingress["metadata"]["annotations"]
    assert annotations["alb.ingress.kubernetes.io/target-type"] == "ip"
    assert annotations["alb.ingress.kubernetes.io/scheme"] == values["ingress"].get("scheme", "internal")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": service, "port": {"name": "http"}}
    assert rendered["Service"]["spec"]["ports"][0]["targetPort"] == "http"
    if settings_of(project, environment).production and values["ingress"].get("scheme") == "internet-facing":
        assert annotations["alb.ingress.kubernetes.io/ssl-redirect"] == "443"


def _cidrs(template: dict[str, Any], kind: str) -> list[str]:
    return sorted(
        r["Properties"]["CidrBlock"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::EC2::Subnet" and f"/Vpc/{kind}Subnet" in r["Metadata"]["aws:cdk:path"]
    )


@pytest.mark.parametrize(("label", "project", "environment", "service"), CASES, ids=IDS)
def test_network_policies_admit_the_load_balancer_subnets_and_reach_only_the_data_stores_used(
    helm: Helm, label: str, project: Project, environment: str, service: str
) -> None:
    """Where a values file turns network policies on: ingress only from the service's namespace and
    the load balancer's (public) subnets of this environment's network; egress to CoreDNS, the data
    subnets on the ports of the data stores the catalogue entry uses, and HTTPS."""
    rendered = _rendered(helm, project, environment, service)
    if "NetworkPolicy" not in rendered:
        return
    network = synth(subject(label)).template("network")
    spec = rendered["NetworkPolicy"]["spec"]
    entry = _entry(project, environment, service)
    values = load_yaml((project.helm_values / environment / "services" / f"{service}.yaml").read_text("utf-8"))
    if entry.ingress:
        (rule,) = spec["ingress"]
        assert rule["ports"] == [{"port": entry.port, "protocol": "TCP"}]
        assert rule["from"][0] == {"podSelector": {}}
        # The pods of the catalogue services its values say call it, each in its own namespace.
        callers = [b for b in rule["from"][1:] if "namespaceSelector" in b]
        assert callers == [
            _pods_of(caller, environment) for caller in values["networkPolicy"].get("ingressFromServices", [])
        ]
        # The load balancer's subnets: this environment's public ones (internet-facing) or private ones.
        blocks = {b["ipBlock"]["cidr"] for b in rule["from"][1:] if "ipBlock" in b}
        assert blocks <= set(_cidrs(network, PUBLIC)) | set(_cidrs(network, "private"))
        # Not the VPC: with the VPC CNI every pod of every namespace has an address in it.
        assert {"ipBlock": {"cidr": settings_of(project, environment).network.vpc_cidr}} not in rule["from"]
    else:
        assert spec["ingress"] == []
    if "Egress" not in spec["policyTypes"]:
        return
    dns, *rest = spec["egress"]
    assert dns["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ]
    # The EKS Pod Identity agent on the node, where the SDKs fetch credentials under Pod Identity.
    agent = {"to": [{"ipBlock": {"cidr": "169.254.170.23/32"}}], "ports": [{"port": 80, "protocol": "TCP"}]}
    assert rest[0] == agent
    rest = rest[1:]
    # The catalogue services it calls: their pods, on their catalogue port.
    callees = [r for r in rest if "to" in r and "namespaceSelector" in r["to"][0]]
    ports = {s.name: s.port for s in settings_of(project, environment).services}
    for callee in callees:
        (pods,) = callee["to"]
        name = pods["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
        assert pods == _pods_of(name, environment)
        assert callee["ports"] == [{"port": ports[name], "protocol": "TCP"}]
    stores = [r for r in rest if "to" in r and r not in callees]
    assert [r for r in rest if "to" not in r] in ([], [{"ports": [{"port": 443, "protocol": "TCP"}]}])
    needed = {POSTGRES_PORT} if "database" in entry.uses else set()
    allowed = set(needed)
    if "cache" in entry.uses:
        needed.add(VALKEY_PORT)
        allowed |= {VALKEY_PORT, SERVERLESS_READ_PORT}
    if not needed:
        assert stores == []
        return
    (store,) = stores
    assert sorted(b["ipBlock"]["cidr"] for b in store["to"]) == _cidrs(network, DATA)
    assert needed <= {p["port"] for p in store["ports"]} <= allowed


def _pods_of(service: str, environment: str) -> dict[str, Any]:
    return {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace_of(service, environment)}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": service}},
    }


@pytest.mark.parametrize(("label", "project", "environment", "service"), CASES, ids=IDS)
def test_pods_read_the_platforms_config_are_probed_where_services_answer_and_pause_before_sigterm(
    helm: Helm, label: str, project: Project, environment: str, service: str
) -> None:
    """The platform's ConfigMap first (infra/stacks/services.py writes it into the namespace), then the
    release's own, whose keys win; the probes on the paths the values (or the chart) name; a preStop
    pause that leaves most of the grace period to the service's own shutdown."""
    pod = _rendered(helm, project, environment, service)["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["envFrom"] == [
        {"configMapRef": {"name": PLATFORM_CONFIG_MAP}},
        {"configMapRef": {"name": service}},
    ]
    values = load_yaml((project.helm_values / environment / "services" / f"{service}.yaml").read_text("utf-8"))
    probes = {**load_yaml((CHART / "values.yaml").read_text("utf-8"))["probes"], **values.get("probes", {})}
    assert container["readinessProbe"]["httpGet"]["path"] == probes["readiness"]["path"]
    assert container["livenessProbe"]["httpGet"]["path"] == probes["liveness"]["path"]
    # Liveness waits for the start-up work (migrations) to end: the startup probe holds it off that long.
    startup = container["startupProbe"]
    assert startup["httpGet"]["path"] == probes["startup"]["path"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["timeoutSeconds"] >= 2, probe  # not Kubernetes' 1 s
    pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert 0 < pause <= pod["terminationGracePeriodSeconds"] - 20


def test_the_charts_probes_are_the_paths_the_reference_services_serve() -> None:
    probes = load_yaml((CHART / "values.yaml").read_text("utf-8"))["probes"]
    assert (probes["readiness"]["path"], probes["liveness"]["path"]) == ("/readyz", "/healthz")


@pytest.mark.parametrize(("label", "project", "environment", "service"), CASES, ids=IDS)
def test_services_sharing_a_load_balancer_have_distinct_paths_and_the_catch_all_comes_last(
    helm: Helm, label: str, project: Project, environment: str, service: str
) -> None:
    ingress = _rendered(helm, project, environment, service).get("Ingress")
    if ingress is None:
        return
    annotations = ingress["metadata"]["annotations"]
    (path,) = ingress["spec"]["rules"][0]["http"]["paths"]
    if "alb.ingress.kubernetes.io/group.name" in annotations:
        expected = "1000" if path["path"] == "/" else "0"
        assert annotations["alb.ingress.kubernetes.io/group.order"] == expected
    group = annotations.get("alb.ingress.kubernetes.io/group.name")
    others = [
        other
        for other in settings_of(project, environment).services
        if other.name != service and other.ingress and group
    ]
    for other in others:
        document = _rendered(helm, project, environment, other.name)["Ingress"]
        if document["metadata"]["annotations"].get("alb.ingress.kubernetes.io/group.name") == group:
            assert document["spec"]["rules"][0]["http"]["paths"][0]["path"] != path["path"], other.name


@pytest.mark.parametrize(("label", "project", "environment", "service"), CASES, ids=IDS)
def test_values_say_production_and_name_the_catalogue_entry_as_the_settings_do(
    label: str, project: Project, environment: str, service: str
) -> None:
    values = load_yaml((project.helm_values / environment / "services" / f"{service}.yaml").read_text("utf-8"))
    entry = _entry(project, environment, service)
    assert bool(values.get("production", False)) is settings_of(project, environment).production
    assert values["environment"] == environment
    assert values["service"]["name"] == values["serviceAccount"]["name"] == service
    assert values["service"]["port"] == entry.port
    assert values["service"]["expose"] is entry.ingress
    assert values.get("ingress", {}).get("enabled", False) is entry.ingress


# --- The tests' own examples: behaviours of the chart -----------------------------------------------

SANDBOX, LIVE = "sandbox", "live"


def test_the_examples_are_one_of_each_kind() -> None:
    """What the example tests below rely on: a non-production and a production environment, an HTTP
    service and a worker."""
    assert not settings_of(EXAMPLES, SANDBOX).production
    assert settings_of(EXAMPLES, LIVE).production
    kinds = {s.name: s.ingress for s in settings_of(EXAMPLES, LIVE).services}
    assert kinds["orders"] is True
    assert kinds["jobs"] is False


def test_a_service_that_calls_the_kubernetes_api_may_mount_its_token(helm: Helm) -> None:
    pod = _pod(helm.template(EXAMPLES, SANDBOX, "orders"))
    assert pod["automountServiceAccountToken"] is False
    pod = _pod(helm.template(EXAMPLES, SANDBOX, "orders", extra=("--set", "serviceAccount.automountToken=true")))
    assert pod["automountServiceAccountToken"] is True


def _pod(documents: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [d for d in documents if d["kind"] == "Deployment"]
    return dict(deployment["spec"]["template"]["spec"])


def test_without_a_digest_pods_run_the_immutable_tag(helm: Helm) -> None:
    pod = _pod(helm.template(EXAMPLES, SANDBOX, "orders", extra=("--set-string", "image.digest=")))
    (container,) = pod["containers"]
    assert container["image"] == f"{image_repository(EXAMPLES, SANDBOX, 'orders')}:0123abc"


def test_non_production_values_are_small_with_debug_logging_and_production_ones_replicated(helm: Helm) -> None:
    """The examples' values follow the seed: dev small with debug on, prod large and autoscaled."""
    small = {d["kind"]: d for d in helm.template(EXAMPLES, SANDBOX, "orders")}
    assert small["Deployment"]["spec"]["replicas"] == 1
    assert small["ConfigMap"]["data"]["LOG_LEVEL"] == "debug"
    assert "HorizontalPodAutoscaler" not in small
    assert "PodDisruptionBudget" not in small
    large = {d["kind"]: d for d in helm.template(EXAMPLES, LIVE, "orders")}
    assert "replicas" not in large["Deployment"]["spec"]  # the HPA owns the count
    hpa = large["HorizontalPodAutoscaler"]["spec"]
    assert hpa["minReplicas"] >= 2
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "orders"}
    assert large["PodDisruptionBudget"]["spec"]["minAvailable"] >= 1
    assert large["ConfigMap"]["data"]["LOG_LEVEL"] == "info"


def test_the_load_balancer_drains_a_target_inside_the_pods_grace_and_idles_less_than_the_services(
    helm: Helm,
) -> None:
    """A deregistered target drains no longer than the pod lives after its pause (ELB's default is 300 s);
    the load balancer closes idle connections before the services do (servicekit's keep-alive); header
    fields that are not valid HTTP are dropped (Security Hub ELB.4)."""
    from servicekit.http import LOAD_BALANCER_IDLE_SECONDS

    docs = {d["kind"]: d for d in helm.template(EXAMPLES, LIVE, "orders")}
    annotations = docs["Ingress"]["metadata"]["annotations"]
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    pause = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    target_group = dict(
        a.split("=") for a in annotations["alb.ingress.kubernetes.io/target-group-attributes"].split(",")
    )
    assert int(target_group["deregistration_delay.timeout_seconds"]) <= pod["terminationGracePeriodSeconds"] - pause
    balancer = dict(a.split("=") for a in annotations["alb.ingress.kubernetes.io/load-balancer-attributes"].split(","))
    assert int(balancer["idle_timeout.timeout_seconds"]) == LOAD_BALANCER_IDLE_SECONDS
    assert balancer["routing.http.drop_invalid_header_fields.enabled"] == "true"


def test_a_certificate_turns_on_https_with_a_redirect(helm: Helm) -> None:
    arn = "arn:aws:acm:us-east-1:123456789012:certificate/0f0e0d0c-0b0a-0908-0706-050403020100"
    docs = helm.template(EXAMPLES, LIVE, "orders", extra=("--set", f"ingress.certificateArn={arn}"))
    (ingress,) = [d for d in docs if d["kind"] == "Ingress"]
    annotations = ingress["metadata"]["annotations"]
    assert annotations["alb.ingress.kubernetes.io/certificate-arn"] == arn
    assert annotations["alb.ingress.kubernetes.io/ssl-redirect"] == "443"
    # TLS 1.2 and 1.3 only (ELB predefined policy).
    assert annotations["alb.ingress.kubernetes.io/ssl-policy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"


def test_a_disruption_budget_lets_unready_pods_go_and_never_holds_every_pod(helm: Helm) -> None:
    """Unready pods may always be evicted (a data store down makes every pod unready, which would hold every
    node drain); a minAvailable of all the replicas, which allows no eviction ever, does not render."""
    (budget,) = [d for d in helm.template(EXAMPLES, LIVE, "orders") if d["kind"] == "PodDisruptionBudget"]
    assert budget["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    never = [
        # Production: autoscaled from two replicas, a budget of two.
        (
            LIVE,
            ("--set", "podDisruptionBudget.minAvailable=2", "--set", "autoscaling.minReplicas=2"),
            "autoscaling.minReplicas",
        ),
        # Not production: one replica, a budget of one.
        (SANDBOX, ("--set", "podDisruptionBudget.enabled=true", "--set", "replicas=1"), "replicas"),
    ]
    for environment, extra, setting in never:
        result = helm.run("template", "orders", *helm.release_args(EXAMPLES, environment, "orders", extra=extra))
        assert result.returncode != 0, extra
        assert "would never allow an eviction" in result.stderr, result.stderr
        assert f"set it below {setting}" in result.stderr


def test_production_refuses_an_internet_facing_ingress_without_a_certificate(helm: Helm) -> None:
    no_certificate = ("--set-string", "ingress.certificateArn=")
    result = helm.run("template", "orders", *helm.release_args(EXAMPLES, LIVE, "orders", extra=no_certificate))
    assert result.returncode != 0
    assert "an internet-facing ingress in production must serve HTTPS" in result.stderr
    # An internal one needs none; dev may serve HTTP.
    internal = (*no_certificate, "--set", "ingress.scheme=internal")
    assert helm.run("template", "orders", *helm.release_args(EXAMPLES, LIVE, "orders", extra=internal)).returncode == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--set", "replica=3"), r"additional properties 'replica' not allowed"),
        (("--set", "replicas=-1"), r"at '/replicas': minimum: got -1, want 0"),
        (("--set-string", "image.tag=bad tag"), r"at '/image/tag': 'bad tag' does not match pattern"),
        (("--set", "ingress.scheme=public"), r"at '/ingress/scheme'"),
        (("--set-string", "service.port=http"), r"at '/service/port'"),
        (("--set", "ingress.path=orders"), r"at '/ingress/path'"),
    ],
)
def test_bad_values_are_rejected_by_the_schema_with_a_clear_message(
    helm: Helm, extra: tuple[str, ...], message: str
) -> None:
    result = helm.run("template", "orders", *helm.release_args(EXAMPLES, SANDBOX, "orders", extra=extra))
    assert result.returncode != 0
    assert re.search(message, result.stderr), result.stderr


def test_the_chart_refuses_a_namespace_other_than_the_services_own(helm: Helm) -> None:
    args = helm.release_args(EXAMPLES, SANDBOX, "orders")
    args[args.index("--namespace") + 1] = "storefront-sandbox"
    result = helm.run("template", "orders", *args)
    assert result.returncode != 0
    assert 'namespace "storefront-sandbox" is not this service\'s namespace "orders-sandbox"' in result.stderr


# --- The values check synth runs (infra/config/helm_values.py), on a copy of the examples' values ----

EXAMPLE_SERVICES = ["orders", "storefront", "jobs", "sessions"]


def _values_copy(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLES.helm_values, tmp_path / "helm_values")
    return tmp_path / "helm_values"


def test_a_missing_values_file_says_exactly_what_to_add(tmp_path: Path) -> None:
    values = _values_copy(tmp_path)
    with pytest.raises(SettingsError, match=r"billing.yaml is missing: .* sed 's/\\bjobs\\b/billing/g'"):
        check_service_values(settings_of(EXAMPLES, SANDBOX), values, [*EXAMPLE_SERVICES, "billing"])


def test_a_copied_values_file_that_still_names_the_other_service_is_refused(tmp_path: Path) -> None:
    values = _values_copy(tmp_path)
    shutil.copy(values / SANDBOX / "services" / "jobs.yaml", values / SANDBOX / "services" / "billing.yaml")
    with pytest.raises(SettingsError, match=r"billing.yaml: service.name = 'jobs', but this file holds billing's"):
        check_service_values(settings_of(EXAMPLES, SANDBOX), values, [*EXAMPLE_SERVICES, "billing"])


def test_values_of_a_service_the_catalogue_does_not_list_are_refused(tmp_path: Path) -> None:
    values = _values_copy(tmp_path)
    with pytest.raises(
        SettingsError,
        match=r"values for jobs, sessions, which the catalogue \(infra/config/services.yaml\) does not list",
    ):
        check_service_values(settings_of(EXAMPLES, SANDBOX), values, ["orders", "storefront"])
    check_service_values(settings_of(EXAMPLES, SANDBOX), values, EXAMPLE_SERVICES)


def test_two_services_on_one_path_of_a_shared_load_balancer_are_refused(tmp_path: Path) -> None:
    values = _values_copy(tmp_path)
    orders = values / SANDBOX / "services" / "orders.yaml"
    orders.write_text(orders.read_text("utf-8").replace("path: /orders", "path: /"), "utf-8")
    with pytest.raises(SettingsError, match=r"ingress.path = '/' in groupName 'acme-sandbox', as in .*: .*/storefront"):
        check_service_values(settings_of(EXAMPLES, SANDBOX), values, EXAMPLE_SERVICES)


def test_calls_between_services_name_catalogue_services_on_their_ports(tmp_path: Path) -> None:
    values = _values_copy(tmp_path)
    path = values / LIVE / "services" / "storefront.yaml"
    original = path.read_text("utf-8")
    assert "networkPolicy:\n  enabled: true" in original
    path.write_text(original.replace("networkPolicy:\n", "networkPolicy:\n  ingressFromServices: [nobody]\n", 1))
    with pytest.raises(SettingsError, match=r"ingressFromServices lists 'nobody', which the catalogue"):
        check_service_values(settings_of(EXAMPLES, LIVE), values, EXAMPLE_SERVICES)
    path.write_text(
        original.replace(
            "  egress:\n    enabled: true\n",
            "  egress:\n    enabled: true\n    services: [{name: orders, port: 9090}]\n",
            1,
        )
    )
    with pytest.raises(SettingsError, match=r"egress.services lists \{name: orders, port: 9090\}, which is not"):
        check_service_values(settings_of(EXAMPLES, LIVE), values, EXAMPLE_SERVICES)
