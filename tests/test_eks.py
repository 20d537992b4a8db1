"""The EKS stack, per environment."""

from __future__ import annotations

import importlib.metadata
import json
import re
from pathlib import Path
from typing import Any

import pytest

from infra.config.settings import SettingsError
from tests.identity import associations, identity_of, irsa_condition
from tests.projects import ROOT, example_settings, nested
from tests.synth import Synthesized, only, resources, service_log_group


def _text(value: Any) -> str:
    """A string as CloudFormation joins it, references written <AWS::AccountId>."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return f"<{value['Ref']}>"
    separator, parts = value["Fn::Join"]
    return str(separator).join(_text(p) for p in parts)


def _cluster(env: Synthesized) -> dict[str, Any]:
    return dict(only(env.template("eks"), "AWS::EKS::Cluster")["Properties"])


def test_cluster_runs_the_version_from_settings(env: Synthesized) -> None:
    assert _cluster(env)["Version"] == env.settings.eks.kubernetes_version


def test_all_five_control_plane_log_types_are_on(env: Synthesized) -> None:
    enabled = {t["Type"] for t in _cluster(env)["Logging"]["ClusterLogging"]["EnabledTypes"]}
    assert enabled == {"api", "audit", "authenticator", "controllerManager", "scheduler"}


def test_secrets_are_envelope_encrypted_with_a_rotating_customer_key(env: Synthesized) -> None:
    template = env.template("eks")
    (config,) = _cluster(env)["EncryptionConfig"]
    assert config["Resources"] == ["secrets"]
    key_id = config["Provider"]["KeyArn"]["Fn::GetAtt"][0]
    assert template["Resources"][key_id]["Type"] == "AWS::KMS::Key"
    assert template["Resources"][key_id]["Properties"]["EnableKeyRotation"] is True


def test_authentication_is_access_entries_only_and_the_deployer_is_not_admin(env: Synthesized) -> None:
    access = _cluster(env)["AccessConfig"]
    assert access == {"AuthenticationMode": "API", "BootstrapClusterCreatorAdminPermissions": False}


def test_the_kubectl_provider_and_the_admin_roles_are_the_only_cluster_admins(env: Synthesized) -> None:
    entries = list(resources(env.template("eks"), "AWS::EKS::AccessEntry").values())
    # Karpenter's nodes join with an EC2_LINUX entry: no access policy can be attached to one.
    nodes = [e for e in entries if e["Properties"].get("Type") == "EC2_LINUX"]
    assert len(nodes) == (env.settings.eks.autoscaling == "karpenter")
    for entry in nodes:
        assert entry["Properties"]["PrincipalArn"]["Fn::GetAtt"][0].startswith("KarpenterNodeRole")
        assert entry["Properties"].get("AccessPolicies", []) == []
    entries = [e for e in entries if e not in nodes]
    provider = [e for e in entries if "Fn::GetAtt" in e["Properties"]["PrincipalArn"]]
    (kubectl,) = provider
    assert kubectl["Properties"]["PrincipalArn"]["Fn::GetAtt"][0].startswith("ClusterKubectlProviderHandler")
    admins = [e for e in entries if e not in provider]
    # A role name is a role of the account deployed to: the stack's own account, whatever names it.
    expected = [
        role if role.startswith("arn:") else f"arn:<AWS::Partition>:iam::<AWS::AccountId>:role/{role}"
        for role in env.settings.eks.admin_roles
    ]
    assert [_text(a["Properties"]["PrincipalArn"]) for a in admins] == expected
    for admin in admins:
        assert [p["PolicyArn"] for p in admin["Properties"]["AccessPolicies"]] == [
            {
                "Fn::Join": [
                    "",
                    ["arn:", {"Ref": "AWS::Partition"}, ":eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"],
                ]
            }
        ]


def test_production_without_an_admin_role_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"eks.admin_roles = \[\]: production needs someone who can operate"):
        _load(tmp_path, "live", {"eks.admin_roles": []})


def test_the_api_endpoint_is_private_and_public_only_for_the_listed_cidrs(env: Synthesized) -> None:
    vpc = _cluster(env)["ResourcesVpcConfig"]
    cidrs = env.settings.eks.endpoint.public_access_cidrs
    assert vpc["EndpointPrivateAccess"] is True
    assert vpc["EndpointPublicAccess"] is bool(cidrs)
    assert vpc.get("PublicAccessCidrs") == (cidrs or None)
    if env.settings.production:
        assert "0.0.0.0/0" not in cidrs


def _private_subnet_outputs(env: Synthesized, subnet_ids: list[dict[str, Any]]) -> list[str]:
    return [s["Fn::GetStackOutput"]["OutputName"] for s in subnet_ids]


def test_control_plane_and_nodes_live_in_the_private_subnets_of_every_zone(env: Synthesized) -> None:
    zones = len(env.settings.availability_zones)
    nodegroup = only(env.template("eks"), "AWS::EKS::Nodegroup")["Properties"]
    for subnet_ids in (_cluster(env)["ResourcesVpcConfig"]["SubnetIds"], nodegroup["Subnets"]):
        outputs = _private_subnet_outputs(env, subnet_ids)
        assert len(outputs) == zones
        assert all("privateSubnet" in o for o in outputs)


def test_nodes_run_on_the_capacity_type_of_the_settings_and_spot_across_several_types(env: Synthesized) -> None:
    group = only(env.template("eks"), "AWS::EKS::Nodegroup")["Properties"]
    node_group = env.settings.eks.node_group
    assert group["CapacityType"] == {"spot": "SPOT", "on-demand": "ON_DEMAND"}[node_group.capacity_type]
    if node_group.capacity_type == "spot":
        assert len(group["InstanceTypes"]) >= 2


def test_spot_with_a_single_instance_type_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"with capacity_type spot: list several instance types"):
        _load(tmp_path, "sandbox", {"eks.node_group.instance_types": ["t3.large"]})


def test_node_group_sizes_follow_settings_and_production_has_a_node_in_every_zone(env: Synthesized) -> None:
    scaling = only(env.template("eks"), "AWS::EKS::Nodegroup")["Properties"]["ScalingConfig"]
    node_group = env.settings.eks.node_group
    assert scaling == {
        "MinSize": node_group.min_size,
        "DesiredSize": node_group.desired_size,
        "MaxSize": node_group.max_size,
    }
    if env.settings.production:
        assert scaling["MinSize"] >= len(env.settings.availability_zones)


def test_nodes_run_al2023_with_the_instance_types_from_settings(env: Synthesized) -> None:
    nodegroup = only(env.template("eks"), "AWS::EKS::Nodegroup")["Properties"]
    assert nodegroup["AmiType"] == "AL2023_x86_64_STANDARD"
    assert nodegroup["InstanceTypes"] == env.settings.eks.node_group.instance_types


def test_node_group_carries_the_autoscaler_tags_eks_puts_on_its_auto_scaling_group(env: Synthesized) -> None:
    # EKS tags the group's ASG with k8s.io/cluster-autoscaler/{enabled,<cluster name>} itself; the
    # node group's own tags say the same about the same cluster name, which is explicit.
    cluster_name = _cluster(env)["Name"]
    assert cluster_name == env.settings.stack_prefix
    tags = only(env.template("eks"), "AWS::EKS::Nodegroup")["Properties"]["Tags"]
    autoscaler_tags = {k: v for k, v in tags.items() if k.startswith("k8s.io/")}
    assert autoscaler_tags == {
        "k8s.io/cluster-autoscaler/enabled": "true",
        f"k8s.io/cluster-autoscaler/{cluster_name}": "owned",
    }


def test_launch_template_requires_imdsv2_with_hop_limit_one_and_encrypts_root(env: Synthesized) -> None:
    data = only(env.template("eks"), "AWS::EC2::LaunchTemplate")["Properties"]["LaunchTemplateData"]
    assert data["MetadataOptions"] == {"HttpTokens": "required", "HttpPutResponseHopLimit": 1}
    (root,) = data["BlockDeviceMappings"]
    assert root["Ebs"]["Encrypted"] is True
    assert root["Ebs"]["VolumeType"] == "gp3"
    assert root["Ebs"]["VolumeSize"] == env.settings.eks.node_group.disk_size_gib


def test_node_role_has_only_what_nodes_need(env: Synthesized) -> None:
    template = env.template("eks")
    nodegroup = only(template, "AWS::EKS::Nodegroup")["Properties"]
    role = template["Resources"][nodegroup["NodeRole"]["Fn::GetAtt"][0]]["Properties"]
    policies = {json.dumps(p).rsplit("/", 1)[-1].rstrip('"]}') for p in role["ManagedPolicyArns"]}
    assert policies == {"AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly"}
    assert "Policies" not in role


@pytest.mark.parametrize(
    ("role", "service_account"),
    [
        ("VpcCniRole", "kube-system:aws-node"),
        ("EbsCsiRole", "kube-system:ebs-csi-controller-sa"),
        ("ClusterAutoscalerRole", "kube-system:cluster-autoscaler"),
        ("AlbControlleralbsaRole", "kube-system:aws-load-balancer-controller"),
    ],
)
def test_each_add_on_role_trusts_exactly_its_own_service_account(
    env: Synthesized, role: str, service_account: str
) -> None:
    template = env.template("eks")
    if role == "ClusterAutoscalerRole" and env.settings.eks.autoscaling != "cluster-autoscaler":
        assert not [r for r in resources(template, "AWS::IAM::Role") if r.startswith(role)]
        return
    # The VPC CNI stays on IRSA (aws-node networks every pod, the Pod Identity agent's among them).
    pod_identity = env.settings.eks.workload_identity == "pod-identity" and role != "VpcCniRole"
    if pod_identity:
        assert identity_of(template, role) == ("pod-identity", service_account)
    else:
        assert identity_of(template, role) == ("irsa", irsa_condition(service_account))


def test_outputs_for_people_and_workflows(env: Synthesized) -> None:
    outputs = env.template("eks")["Outputs"]
    assert {"ClusterName", "KubeconfigCommand", "OidcIssuer"} <= set(outputs)
    command = outputs["KubeconfigCommand"]["Value"]["Fn::Join"][1]
    assert command[0] == "aws eks update-kubeconfig --name "
    assert command[2] == f" --region {env.settings.region}"


def _statements(node: object) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        found = [node] if "Effect" in node and ("Principal" in node or "NotPrincipal" in node) else []
        return found + [s for v in node.values() for s in _statements(v)]
    if isinstance(node, list):
        return [s for v in node for s in _statements(v)]
    return []


def test_no_statement_allows_a_wildcard_principal_anywhere(env: Synthesized) -> None:
    # A Deny to everyone (the keys' grant guard) is fine; an Allow to everyone never is, but for the
    # AWS-managed keys' own pattern: a KMS key usable only by this account's principals and only through
    # one AWS service (the master secret's copy in another region: ADR 0014).
    for path in env.outdir.glob("*.template.json"):
        for statement in _statements(json.loads(path.read_text(encoding="utf-8"))):
            if statement["Effect"] != "Allow" or statement["Principal"] not in ("*", {"AWS": "*"}):
                continue
            scoped = statement.get("Condition", {}).get("StringEquals", {})
            assert {"kms:CallerAccount", "kms:ViaService"} <= set(scoped), (path.name, statement)
            assert all(a.startswith("kms:") for a in statement["Action"]), (path.name, statement)


def _load(tmp_path: Path, base: str, edit: dict[str, Any]) -> None:
    """The example environment ``base`` with ``edit`` (dotted keys), loaded as synth would."""
    example_settings(tmp_path, base, nested(edit))


@pytest.mark.parametrize("version", ["1.29", "1.34", "1.37", "latest"])
def test_unsupported_kubernetes_version_names_the_support_dates(tmp_path: Path, version: str) -> None:
    with pytest.raises(SettingsError, match=r"is not in EKS standard support; allowed: 1.35: standard support"):
        _load(tmp_path, "sandbox", {"eks.kubernetes_version": version})


def test_nodes_may_stay_one_minor_behind_a_new_control_plane_and_no_further(tmp_path: Path) -> None:
    from infra.config.settings import EKS_STANDARD_SUPPORT

    newest = max(EKS_STANDARD_SUPPORT, key=lambda v: int(v.split(".")[1]))
    major, minor = newest.split(".")
    behind, too_far, ahead = f"{major}.{int(minor) - 1}", f"{major}.{int(minor) - 2}", f"{major}.{int(minor) + 1}"
    held = example_settings(
        tmp_path / "held",
        "sandbox",
        nested({"eks.kubernetes_version": newest, "eks.node_group.kubernetes_version": behind}),
    )
    assert (held.eks.kubernetes_version, held.eks.node_version) == (newest, behind)
    assert (
        example_settings(tmp_path / "default", "sandbox", nested({"eks.kubernetes_version": newest})).eks.node_version
        == newest
    )
    for version in (too_far, ahead):
        with pytest.raises(
            SettingsError,
            match=rf"eks.node_group.kubernetes_version = '{version}': nodes run the cluster's minor "
            rf"\({newest}\) or the one before it.*allowed: '{newest}', '{behind}'",
        ):
            _load(
                tmp_path / version,
                "sandbox",
                {"eks.kubernetes_version": newest, "eks.node_group.kubernetes_version": version},
            )


def test_every_accepted_kubernetes_version_has_its_kubectl_layer_pinned_and_installed() -> None:
    """A version change in settings needs no dependency edit (ADR 0014)."""
    from aws_cdk import App, Stack

    from infra.config.settings import EKS_STANDARD_SUPPORT
    from infra.stacks.eks import kubectl_layer

    pins = dict(
        line.split("==") for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").split() if "==" in line
    )
    for version in EKS_STANDARD_SUPPORT:
        package = f"aws-cdk.lambda-layer-kubectl-v{version.split('.')[1]}"
        assert package in pins, f"{package} is not pinned in requirements.txt"
        assert importlib.metadata.version(package) == pins[package]
        kubectl_layer(Stack(App(), "S"), version)  # importable, with its layer class


def test_missing_kubectl_layer_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from aws_cdk import App, Stack

    from infra.stacks import eks

    def missing(name: str) -> Any:
        raise ModuleNotFoundError(name)

    monkeypatch.setattr(importlib, "import_module", missing)
    with pytest.raises(
        SettingsError,
        match=r"needs the kubectl layer package aws-cdk.lambda-layer-kubectl-v36.*EKS versions: 1.35: standard support",
    ):
        eks.kubectl_layer(Stack(App(), "S"), "1.36")


def test_production_refuses_an_api_endpoint_open_to_the_internet(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"'0.0.0.0/0' is not allowed in production"):
        _load(tmp_path, "live", {"eks.endpoint.public_access_cidrs": ["0.0.0.0/0"]})


def test_endpoint_cidrs_must_be_cidrs(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"'203.0.113.7/24' must be an IPv4 CIDR with host bits clear"):
        _load(tmp_path, "sandbox", {"eks.endpoint.public_access_cidrs": ["203.0.113.7/24"]})


def test_production_needs_a_node_per_zone(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"min_size = 2 is below one node per zone \(3\) in production"):
        _load(tmp_path, "live", {"eks.node_group.min_size": 2})


def test_node_sizes_must_be_ordered(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"min_size <= desired_size <= max_size, got 1 <= 9 <= 4"):
        _load(tmp_path, "sandbox", {"eks.node_group.desired_size": 9})


def test_instance_types_are_checked(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"'large' is not an EC2 instance type"):
        _load(tmp_path, "sandbox", {"eks.node_group.instance_types": ["large"]})


@pytest.mark.parametrize("role", ["arn:aws:iam::123456789012:user/alice", "role/with space", "*"])
def test_admin_roles_must_be_role_names_or_arns(tmp_path: Path, role: str) -> None:
    with pytest.raises(SettingsError, match=r"must be an IAM role name of the account deployed to"):
        _load(tmp_path, "sandbox", {"eks.admin_roles": [role]})


def test_service_names_are_dns_labels_and_unique(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"setting 'services\[0\].name' = 'Api_1' must be a DNS label"):
        _load(tmp_path, "sandbox", {"services": [{"name": "Api_1", "ingress": True}]})
    with pytest.raises(SettingsError, match=r"service names must be unique"):
        _load(tmp_path, "sandbox", {"services": [{"name": "api", "ingress": True}, {"name": "api", "ingress": False}]})


def test_core_add_ons_are_eks_managed_with_the_pinned_versions(env: Synthesized) -> None:
    from infra.stacks.eks_addons import EKS_MANAGED_ADDONS

    assert _cluster(env)["BootstrapSelfManagedAddons"] is False
    addons = {a["Properties"]["AddonName"]: a for a in resources(env.template("eks"), "AWS::EKS::Addon").values()}
    pinned = dict(EKS_MANAGED_ADDONS[env.settings.eks.kubernetes_version])
    assert set(pinned) == {
        "vpc-cni",
        "kube-proxy",
        "coredns",
        "aws-ebs-csi-driver",
        "amazon-cloudwatch-observability",
        "eks-pod-identity-agent",
    }
    # The Pod Identity agent where something uses Pod Identity: the add-ons and services, or Karpenter.
    eks = env.settings.eks
    if eks.workload_identity == "irsa" and eks.autoscaling == "cluster-autoscaler":
        del pinned["eks-pod-identity-agent"]
    # An unpinned add-on (None) carries no AddonVersion: EKS installs its default for the minor.
    assert {name: a["Properties"].get("AddonVersion") for name, a in addons.items()} == pinned
    del addons["amazon-cloudwatch-observability"]  # tests/test_observability.py
    roles = {
        name: a["Properties"].get("ServiceAccountRoleArn", {}).get("Fn::GetAtt", [""])[0] for name, a in addons.items()
    }
    assert roles["vpc-cni"].startswith("VpcCniRole")
    ebs_role = associations(env.template("eks")) if eks.workload_identity == "pod-identity" else {}
    assert roles["aws-ebs-csi-driver"].startswith("EbsCsiRole") or any(r.startswith("EbsCsiRole") for r in ebs_role)
    assert roles["coredns"] == roles["kube-proxy"] == ""
    if "eks-pod-identity-agent" in addons:
        assert (
            "PodIdentityAgentAddon"
            in next(iter(resources(env.template("eks"), "AWS::EKS::Nodegroup").values()))["DependsOn"]
        )
    # Networking before nodes; DNS and the CSI driver after them (their pods need somewhere to run).
    nodegroup_id, nodegroup = next(iter(resources(env.template("eks"), "AWS::EKS::Nodegroup").items()))
    assert {"VpcCniAddon", "KubeProxyAddon"} <= set(nodegroup["DependsOn"])
    for name in ("coredns", "aws-ebs-csi-driver"):
        assert nodegroup_id in addons[name]["DependsOn"]


def test_every_supported_kubernetes_version_has_its_add_ons_pinned() -> None:
    from infra.config.settings import EKS_STANDARD_SUPPORT
    from infra.stacks.eks_addons import CLUSTER_AUTOSCALER_IMAGE, EKS_MANAGED_ADDONS

    assert set(EKS_MANAGED_ADDONS) == set(CLUSTER_AUTOSCALER_IMAGE) == set(EKS_STANDARD_SUPPORT)
    for version, addons in EKS_MANAGED_ADDONS.items():
        # kube-proxy and cluster-autoscaler must match the control plane's minor version.
        assert str(addons["kube-proxy"]).startswith(f"v{version}.")
        assert CLUSTER_AUTOSCALER_IMAGE[version].startswith(f"v{version}.")
        for pinned in addons.values():
            assert pinned is None or re.fullmatch(r"v\d+\.\d+\.\d+-eksbuild\.\d+", pinned), pinned


# Versions the EKS user guide publishes per Kubernetes minor (read 2026-11-27); a pin outside this
# list is a guess. Extend it when the guide (or `make check-versions`) confirms a newer build.
DOCUMENTED_ADDON_VERSIONS = {
    ("1.35", "kube-proxy"): {"v1.35.3-eksbuild.2", "v1.35.3-eksbuild.13"},
    ("1.35", "coredns"): {"v1.13.2-eksbuild.4", "v1.14.2-eksbuild.4", "v1.14.3-eksbuild.3"},
    ("1.36", "kube-proxy"): {"v1.36.0-eksbuild.14"},
    ("1.36", "coredns"): {"v1.14.3-eksbuild.3"},
}


def test_every_pinned_add_on_version_is_one_aws_documents_for_its_minor() -> None:
    from infra.stacks.eks_addons import EKS_MANAGED_ADDONS

    for version, addons in EKS_MANAGED_ADDONS.items():
        for name, pinned in addons.items():
            if pinned is not None:
                assert pinned in DOCUMENTED_ADDON_VERSIONS.get((version, name), set()), (version, name, pinned)


def test_control_plane_logs_go_to_an_encrypted_log_group_created_or_adopted_first(env: Synthesized) -> None:
    template = env.template("eks")
    calls = service_log_group(template, "ControlPlaneLogGroup")
    name = f"/aws/eks/{env.settings.stack_prefix}/cluster"
    # Created with its key, or adopted when EKS (or a retained stack) left it behind.
    assert calls.create["action"] == "createLogGroup"
    assert calls.create["parameters"] == {"logGroupName": name, "kmsKeyId": calls.key["parameters"]["kmsKeyId"]}
    assert calls.create["ignoreErrorCodesMatching"] == "ResourceAlreadyExistsException"
    # Every deploy sets the key and the retention, also on an adopted group.
    assert calls.key["action"] == "associateKmsKey"
    assert calls.key["parameters"]["kmsKeyId"].startswith("<ref:ControlPlaneLogKey")
    assert calls.retention["parameters"] == {
        "logGroupName": name,
        "retentionInDays": env.settings.eks.control_plane_log_retention_days,
    }
    # Dev deletes it with the stack; prod keeps it, and its logs.
    if env.settings.retain_data:
        assert calls.delete is None
    else:
        assert calls.delete == {
            "action": "deleteLogGroup",
            "service": "CloudWatchLogs",
            "parameters": {"logGroupName": name},
            "ignoreErrorCodesMatching": "ResourceNotFoundException",
        }
    cluster_id = next(iter(resources(template, "AWS::EKS::Cluster")))
    assert set(calls.ids) <= set(template["Resources"][cluster_id]["DependsOn"])


def test_the_log_group_function_may_touch_only_the_service_log_groups(env: Synthesized) -> None:
    template = env.template("eks")
    policies = [p for k, p in resources(template, "AWS::IAM::ManagedPolicy").items() if k.startswith("ServiceLogGroup")]
    (policy,) = policies
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    group = f":log-group:/aws/eks/{env.settings.stack_prefix}/cluster"
    # The group, and the group with :* (the form IAM evaluates these actions against): nothing else.
    assert [r["Fn::Join"][1][-1] for r in statement["Resource"]] == [group, f"{group}:*"]


def test_load_balancer_controller_is_installed_after_the_nodes(env: Synthesized) -> None:
    charts = resources(env.template("eks"), "Custom::AWSCDK-EKS-HelmChart")
    (chart,) = [c for c in charts.values() if c["Properties"]["Release"] == "aws-load-balancer-controller"]
    assert any(d.startswith("ClusterNodegroupNodes") for d in chart["DependsOn"])
    assert any(d.startswith("ClusterOidcProvider") for d in chart["DependsOn"])


def test_network_policies_are_enforced_by_the_vpc_cni(env: Synthesized) -> None:
    addons = {
        a["Properties"]["AddonName"]: a["Properties"]
        for a in resources(env.template("eks"), "AWS::EKS::Addon").values()
    }
    assert json.loads(addons["vpc-cni"]["ConfigurationValues"]) == {"enableNetworkPolicy": "true"}


def test_the_default_storage_class_is_encrypted_gp3_through_the_ebs_csi_driver(env: Synthesized) -> None:
    template = env.template("eks")
    manifests = [
        (k, r)
        for k, r in resources(template, "Custom::AWSCDK-EKS-KubernetesResource").items()
        if "StorageClass" in json.dumps(r["Properties"]["Manifest"])
    ]
    ((_, resource),) = manifests
    (storage_class,) = json.loads(resource["Properties"]["Manifest"])
    assert storage_class["metadata"]["annotations"] == {"storageclass.kubernetes.io/is-default-class": "true"}
    assert storage_class["provisioner"] == "ebs.csi.aws.com"
    assert storage_class["parameters"] == {"type": "gp3", "encrypted": "true"}
    assert "EbsCsiAddon" in resource["DependsOn"]


def test_load_balancer_controller_service_account_carries_its_role(env: Synthesized) -> None:
    """Its IRSA role's annotation, or (Pod Identity) no annotation and an association naming the same role."""
    template = env.template("eks")
    accounts = [
        r["Properties"]["Manifest"]
        for r in resources(template, "Custom::AWSCDK-EKS-KubernetesResource").values()
        if "aws-load-balancer-controller" in json.dumps(r["Properties"]["Manifest"])
    ]
    (manifest,) = accounts
    if env.settings.eks.workload_identity == "pod-identity":
        (document,) = json.loads(manifest)
        assert document["kind"] == "ServiceAccount"
        assert "annotations" not in document["metadata"]
        # The prune label KubernetesManifest selects its later applies by is still on it.
        (resource,) = [
            r
            for r in resources(template, "Custom::AWSCDK-EKS-KubernetesResource").values()
            if r["Properties"]["Manifest"] is manifest
        ]
        assert document["metadata"]["labels"][resource["Properties"]["PruneLabel"]] == ""
        (role_id,) = [r for r in resources(template, "AWS::IAM::Role") if r.startswith("AlbControlleralbsaRole")]
        assert associations(template)[role_id] == "kube-system:aws-load-balancer-controller"
        # Its IRSA trust's condition (a custom resource) is gone with the trust.
        assert not [r for r in template["Resources"] if "albsaConditionJson" in r]
        return
    parts = manifest["Fn::Join"][1]
    (document,) = json.loads("".join(p if isinstance(p, str) else "ROLE" for p in parts))
    assert document["kind"] == "ServiceAccount"
    assert document["metadata"]["namespace"] == "kube-system"
    assert document["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "ROLE"}
    (role_ref,) = [p for p in parts if not isinstance(p, str)]
    assert role_ref["Fn::GetAtt"][0].startswith("AlbControlleralbsaRole")


def test_load_balancer_controller_policy_is_upstreams_narrowed_to_this_region_and_account() -> None:
    import tarfile

    import aws_cdk

    from infra.stacks.eks import ALB_CONTROLLER_POLICY, alb_controller_policy
    from infra.stacks.eks_addons import ALB_CONTROLLER

    (tarball,) = (Path(aws_cdk.__file__).parent / "_jsii").glob("aws-cdk-lib@*.jsii.tgz")
    with tarfile.open(tarball) as archive:
        member = archive.extractfile(f"package/aws-eks-v2/lib/addons/alb-iam_policy-v{ALB_CONTROLLER.version}.json")
        assert member is not None
        upstream = json.loads(member.read())
    assert json.loads(ALB_CONTROLLER_POLICY.read_text(encoding="utf-8")) == upstream

    narrowed = alb_controller_policy(region="r-1", account="123")
    arns = [
        a
        for s in narrowed["Statement"]
        for a in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
    ]
    assert not [a for a in arns if ":*:*:" in a]
    assert all(a == "*" or ":r-1:123:" in a for a in arns)
    # Everything but the resources is upstream's, statement by statement.
    strip = [{k: v for k, v in s.items() if k != "Resource"} for s in upstream["Statement"]]
    assert strip == [{k: v for k, v in s.items() if k != "Resource"} for s in narrowed["Statement"]]


def test_load_balancer_controller_policy_in_the_template_names_no_other_region_or_account(env: Synthesized) -> None:
    policies = resources(env.template("eks"), "AWS::IAM::Policy")
    (document,) = [
        p["Properties"]["PolicyDocument"] for k, p in policies.items() if k.startswith("AlbControlleralbsaRole")
    ]
    assert ":*:*:" not in json.dumps(document)
