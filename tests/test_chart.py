"""charts/microservice rendered with the real helm for every environment and catalogue service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from infra.config.settings import known_environments, load_settings
from tests.helm import Helm, image_repository

ROOT = Path(__file__).resolve().parent.parent
CASES = [(e, s.name) for e in known_environments() for s in load_settings(e).services]
_RENDERED: dict[tuple[str, str], list[dict[str, Any]]] = {}


def _rendered(helm: Helm, environment: str, service: str) -> dict[str, dict[str, Any]]:
    if (environment, service) not in _RENDERED:
        _RENDERED[(environment, service)] = helm.template(environment, service)
    return {d["kind"]: d for d in _RENDERED[(environment, service)]}


def test_every_catalogue_service_has_a_values_file_in_every_environment_and_nothing_else_does() -> None:
    for environment in known_environments():
        expected = {s.name for s in load_settings(environment).services}
        present = {p.stem for p in (ROOT / "helm_values" / environment / "services").glob("*")}
        assert present == expected, environment


@pytest.mark.parametrize(("environment", "service"), CASES)
def test_chart_lints_strictly(helm: Helm, environment: str, service: str) -> None:
    result = helm.run("lint", "--strict", *helm.release_args(environment, service))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("environment", "service"), CASES)
def test_rendered_manifests_validate_against_the_cluster_kubernetes_schemas(
    helm: Helm, environment: str, service: str
) -> None:
    version = load_settings(environment).eks.kubernetes_version + ".0"
    for document in _rendered(helm, environment, service).values():
        kubernetes_validate.validate(document, version, strict=True)


@pytest.mark.parametrize(("environment", "service"), CASES)
def test_pods_meet_the_restricted_pod_security_profile(helm: Helm, environment: str, service: str) -> None:
    spec = _rendered(helm, environment, service)["Deployment"]["spec"]["template"]["spec"]
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


@pytest.mark.parametrize(("environment", "service"), CASES)
def test_release_uses_the_irsa_service_account_and_namespace_of_the_eks_stack(
    helm: Helm, environment: str, service: str
) -> None:
    from infra.stacks.services import namespace_of

    rendered = _rendered(helm, environment, service)
    assert "ServiceAccount" not in rendered
    assert rendered["Deployment"]["spec"]["template"]["spec"]["serviceAccountName"] == service
    for document in rendered.values():
        assert document["metadata"]["namespace"] == namespace_of(service, environment)
        assert document["metadata"]["labels"]["app.kubernetes.io/name"] == service
    pod = rendered["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    # By digest, as the deploy workflow resolves it; the tag it came from stays as the version label.
    assert container["image"] == f"{image_repository(environment, service)}@sha256:{'ab' * 32}"
    assert rendered["Deployment"]["metadata"]["labels"]["app.kubernetes.io/version"] == "0123abc"
    # IRSA mounts its own token; the Kubernetes API token is not mounted unless a service asks.
    assert pod["automountServiceAccountToken"] is False


def test_a_service_that_calls_the_kubernetes_api_may_mount_its_token(helm: Helm) -> None:
    docs = helm.template("dev", "api", extra=("--set", "serviceAccount.automountToken=true"))
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    assert deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is True


def test_without_a_digest_pods_run_the_immutable_tag(helm: Helm) -> None:
    docs = helm.template("dev", "api", extra=("--set-string", "image.digest="))
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"{image_repository('dev', 'api')}:0123abc"


def test_dev_is_small_with_debug_logging_and_prod_is_replicated_and_autoscaled(helm: Helm) -> None:
    for service in (s.name for s in load_settings("dev").services):
        dev = _rendered(helm, "dev", service)
        assert dev["Deployment"]["spec"]["replicas"] == 1
        assert dev["ConfigMap"]["data"]["LOG_LEVEL"] == "debug"
        assert "HorizontalPodAutoscaler" not in dev
        assert "PodDisruptionBudget" not in dev
    for service in (s.name for s in load_settings("prod").services):
        prod = _rendered(helm, "prod", service)
        assert "replicas" not in prod["Deployment"]["spec"]  # the HPA owns the count
        hpa = prod["HorizontalPodAutoscaler"]["spec"]
        assert hpa["minReplicas"] >= 2
        assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": service}
        assert prod["PodDisruptionBudget"]["spec"]["minAvailable"] >= 1
        assert prod["ConfigMap"]["data"]["LOG_LEVEL"] == "info"
        dev_limit = _rendered(helm, "dev", service)["Deployment"]["spec"]["template"]["spec"]["containers"][0]
        prod_limit = prod["Deployment"]["spec"]["template"]["spec"]["containers"][0]
        assert dev_limit["resources"]["limits"]["memory"] == "256Mi"
        assert prod_limit["resources"]["limits"]["memory"] == "1Gi"


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_http_services_get_an_alb_ingress_and_the_worker_gets_none(helm: Helm, environment: str) -> None:
    for service in load_settings(environment).services:
        rendered = _rendered(helm, environment, service.name)
        if not service.ingress:
            assert "Service" not in rendered
            assert "Ingress" not in rendered
            continue
        ingress = rendered["Ingress"]
        assert ingress["spec"]["ingressClassName"] == "alb"
        annotations = ingress["metadata"]["annotations"]
        assert annotations["alb.ingress.kubernetes.io/target-type"] == "ip"
        assert annotations["alb.ingress.kubernetes.io/scheme"] == "internet-facing"
        assert annotations["alb.ingress.kubernetes.io/healthcheck-path"] == "/healthz"
        backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
        assert backend == {"name": service.name, "port": {"name": "http"}}
        assert rendered["Service"]["spec"]["ports"][0]["targetPort"] == "http"


def test_a_certificate_turns_on_https_with_a_redirect(helm: Helm) -> None:
    arn = "arn:aws:acm:us-east-1:123456789012:certificate/0f0e0d0c-0b0a-0908-0706-050403020100"
    docs = helm.template("prod", "api", extra=("--set", f"ingress.certificateArn={arn}"))
    (ingress,) = [d for d in docs if d["kind"] == "Ingress"]
    annotations = ingress["metadata"]["annotations"]
    assert annotations["alb.ingress.kubernetes.io/certificate-arn"] == arn
    assert annotations["alb.ingress.kubernetes.io/ssl-redirect"] == "443"
    # TLS 1.2 and 1.3 only (ELB predefined policy).
    assert annotations["alb.ingress.kubernetes.io/ssl-policy"] == "ELBSecurityPolicy-TLS13-1-2-2021-06"


def test_prod_network_policy_admits_the_load_balancer_subnets_and_its_own_namespace_only(
    helm: Helm, prod_network: dict[str, Any]
) -> None:
    public = _cidrs(prod_network, "public")
    api = _rendered(helm, "prod", "api")["NetworkPolicy"]["spec"]
    (rule,) = api["ingress"]
    assert rule["ports"] == [{"port": 8080, "protocol": "TCP"}]
    assert rule["from"] == [{"podSelector": {}}, *({"ipBlock": {"cidr": c}} for c in public)]
    # Not the VPC: with the VPC CNI every pod of every namespace has an address in it.
    assert {"ipBlock": {"cidr": load_settings("prod").network.vpc_cidr}} not in rule["from"]
    worker = _rendered(helm, "prod", "worker")["NetworkPolicy"]["spec"]
    assert worker["ingress"] == []


@pytest.mark.parametrize("service", ["api", "web", "worker"])
def test_prod_egress_reaches_dns_its_data_stores_and_https_only(
    helm: Helm, prod_network: dict[str, Any], service: str
) -> None:
    from infra.constructs.valkey_cache import cache_ports
    from infra.stacks.database import POSTGRES_PORT

    spec = _rendered(helm, "prod", service)["NetworkPolicy"]["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    dns, *rest = spec["egress"]
    assert dns["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ]
    *stores, https = rest
    assert https == {"ports": [{"port": 443, "protocol": "TCP"}]}
    settings = load_settings("prod")
    uses = next(s.uses for s in settings.services if s.name == service)
    by_store = {"database": [POSTGRES_PORT], "cache": cache_ports(settings.cache.kind)}
    ports = sorted(port for store in uses for port in by_store[store])
    if not ports:
        assert stores == []
        return
    (store,) = stores
    assert store["to"] == [{"ipBlock": {"cidr": c}} for c in _cidrs(prod_network, "data")]
    assert [p["port"] for p in store["ports"]] == ports


def _cidrs(template: dict[str, Any], kind: str) -> list[str]:
    return sorted(
        r["Properties"]["CidrBlock"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::EC2::Subnet" and f"/Vpc/{kind}Subnet" in r["Metadata"]["aws:cdk:path"]
    )


@pytest.fixture(scope="module")
def prod_network(prod: Any) -> dict[str, Any]:
    return dict(prod.template("network"))


def test_production_refuses_an_internet_facing_ingress_without_a_certificate(helm: Helm) -> None:
    result = helm.run(
        "template", "api", *helm.release_args("prod", "api", extra=("--set-string", "ingress.certificateArn="))
    )
    assert result.returncode != 0
    assert "an internet-facing ingress in production must serve HTTPS" in result.stderr
    # An internal one needs none; dev may serve HTTP.
    internal = ("--set-string", "ingress.certificateArn=", "--set", "ingress.scheme=internal")
    assert helm.run("template", "api", *helm.release_args("prod", "api", extra=internal)).returncode == 0


def test_prod_values_say_production_as_the_settings_do() -> None:
    import yaml

    from tests.synth import ROOT

    for environment in known_environments():
        production = load_settings(environment).production
        for path in (ROOT / "helm_values" / environment / "services").glob("*.yaml"):
            assert bool(yaml.safe_load(path.read_text(encoding="utf-8")).get("production", False)) is production


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--set", "replica=3"), r"additional properties 'replica' not allowed"),
        (("--set", "replicas=-1"), r"at '/replicas': minimum: got -1, want 0"),
        (("--set-string", "image.tag=bad tag"), r"at '/image/tag': 'bad tag' does not match pattern"),
        (("--set", "ingress.scheme=public"), r"at '/ingress/scheme'"),
        (("--set-string", "service.port=http"), r"at '/service/port'"),
    ],
)
def test_bad_values_are_rejected_by_the_schema_with_a_clear_message(
    helm: Helm, extra: tuple[str, ...], message: str
) -> None:
    import re

    result = helm.run("template", "api", *helm.release_args("dev", "api", extra=extra))
    assert result.returncode != 0
    assert re.search(message, result.stderr), result.stderr


def test_the_chart_refuses_a_namespace_other_than_the_services_own(helm: Helm) -> None:
    args = helm.release_args("dev", "api")
    args[args.index("--namespace") + 1] = "web-dev"
    result = helm.run("template", "api", *args)
    assert result.returncode != 0
    assert 'namespace "web-dev" is not this service\'s namespace "api-dev"' in result.stderr


def test_values_files_match_the_catalogue_entries() -> None:
    import yaml

    for environment in known_environments():
        for service in load_settings(environment).services:
            path = ROOT / "helm_values" / environment / "services" / f"{service.name}.yaml"
            values = yaml.safe_load(path.read_text(encoding="utf-8"))
            assert values["environment"] == environment
            assert values["service"]["name"] == values["serviceAccount"]["name"] == service.name
            assert values["service"]["port"] == service.port
            assert values["service"]["expose"] is service.ingress
            assert values.get("ingress", {}).get("enabled", False) is service.ingress


def _values_copy(tmp_path: Path) -> Path:
    import shutil

    from tests.synth import ROOT

    shutil.copytree(ROOT / "helm_values", tmp_path / "helm_values")
    return tmp_path / "helm_values"


def test_a_missing_values_file_says_exactly_what_to_add(tmp_path: Path) -> None:
    from infra.config.helm_values import check_service_values
    from infra.config.settings import SettingsError

    values = _values_copy(tmp_path)
    with pytest.raises(SettingsError, match=r"billing.yaml is missing: .* sed 's/\\bworker\\b/billing/g'"):
        check_service_values("dev", ["api", "web", "worker", "billing"], values)


def test_a_copied_values_file_that_still_names_the_other_service_is_refused(tmp_path: Path) -> None:
    import shutil

    from infra.config.helm_values import check_service_values
    from infra.config.settings import SettingsError

    values = _values_copy(tmp_path)
    shutil.copy(values / "dev" / "services" / "worker.yaml", values / "dev" / "services" / "billing.yaml")
    with pytest.raises(SettingsError, match=r"billing.yaml: service.name = 'worker', but this file holds billing's"):
        check_service_values("dev", ["api", "web", "worker", "billing"], values)


def test_values_of_a_service_the_catalogue_does_not_list_are_refused(tmp_path: Path) -> None:
    from infra.config.helm_values import check_service_values
    from infra.config.settings import SettingsError

    values = _values_copy(tmp_path)
    with pytest.raises(SettingsError, match=r"values for worker, which infra/config/services.yaml does not list"):
        check_service_values("dev", ["api", "web"], values)
    check_service_values("dev", ["api", "web", "worker"], values)
