"""eks.autoscaling (the cluster autoscaler or Karpenter) and eks.workload_identity (IRSA or EKS Pod Identity),
per environment: whatever each one chose (the examples carry the other choices: tests/subjects.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from infra.config.settings import SettingsError
from infra.stacks.eks import WORKLOAD_IDENTITY_ANNOTATION
from infra.stacks.eks_addons import KARPENTER, KARPENTER_CRD
from infra.stacks.eks_karpenter import INTERRUPTION_EVENTS
from tests.helm import Helm
from tests.identity import associations, identity_of
from tests.projects import example_settings, nested
from tests.synth import Synthesized, helm_release, helm_values, resources


def _karpenter(env: Synthesized) -> Any:
    """The environment's Karpenter settings, or None: then it has none of Karpenter's resources."""
    karpenter = env.settings.eks.karpenter
    if karpenter is None:
        assert not [k for k in env.template("eks")["Resources"] if k.startswith("Karpenter")]
    return karpenter


def _manifest(env: Synthesized, kind: str) -> dict[str, Any]:
    """The one manifest of ``kind`` the EKS stack applies, deploy-time values written <ref:id>."""
    found = []
    for resource in resources(env.template("eks"), "Custom::AWSCDK-EKS-KubernetesResource").values():
        raw = resource["Properties"]["Manifest"]
        parts = raw["Fn::Join"][1] if isinstance(raw, dict) else [raw]
        text = "".join(p if isinstance(p, str) else f"<ref:{_referenced(p)}>" for p in parts)
        found += [(resource, d) for d in json.loads(text) if d["kind"] == kind]
    ((resource, document),) = found
    return {"resource": resource, "document": document}


def _referenced(value: dict[str, Any]) -> str:
    """What a deploy-time value refers to: a resource of the stack, or another stack's output."""
    if "Fn::GetStackOutput" in value:
        return str(value["Fn::GetStackOutput"]["OutputName"])
    return str((value.get("Fn::GetAtt") or [value.get("Ref")])[0])


def _chart(env: Synthesized, release: str) -> dict[str, Any]:
    return helm_release(env.template("eks"), release)[1]


# --- EKS Pod Identity ---------------------------------------------------------------------------------


def test_the_pod_identity_agent_runs_where_something_uses_pod_identity(env: Synthesized) -> None:
    template = env.template("eks")
    agents = [
        a
        for a in resources(template, "AWS::EKS::Addon").values()
        if a["Properties"]["AddonName"] == "eks-pod-identity-agent"
    ]
    eks = env.settings.eks
    needed = eks.workload_identity == "pod-identity" or eks.autoscaling == "karpenter"
    assert len(agents) == needed
    if not needed:
        assert not resources(template, "AWS::EKS::PodIdentityAssociation")
        return
    # Before the nodes join (a DaemonSet, like kube-proxy): every node runs it before pods needing it start.
    (nodegroup,) = resources(template, "AWS::EKS::Nodegroup").values()
    assert "PodIdentityAgentAddon" in nodegroup["DependsOn"]


def test_every_pod_identity_association_names_a_role_trusting_only_that_service_account(env: Synthesized) -> None:
    """Every association, in the EKS stack and the services stacks: its role's trust admits exactly its own
    namespace and service account of this cluster (tests/identity.py reads the trust's session tags)."""
    templates = [env.template("eks"), *env.shards("services").values()]
    named = {role: sa for t in templates for role, sa in associations(t).items()}
    if env.settings.eks.workload_identity == "irsa":
        # Only Karpenter's controller, which uses Pod Identity either way.
        assert list(named.values()) == (["kube-system:karpenter"] if env.settings.eks.karpenter else [])
    for template in templates:
        for role_id, service_account in associations(template).items():
            assert identity_of(template, role_id) == ("pod-identity", service_account)


def test_switching_identity_restarts_the_helm_add_ons(env: Synthesized) -> None:
    """A pod keeps the credentials it started with: the charts whose identity the setting decides carry an
    annotation with Pod Identity only, so a switch either way changes their pod template."""
    pod_identity = env.settings.eks.workload_identity == "pod-identity"
    for release in ("aws-load-balancer-controller", "cluster-autoscaler"):
        if release == "cluster-autoscaler" and env.settings.eks.autoscaling != "cluster-autoscaler":
            continue
        annotations = helm_values(env.template("eks"), release).get("podAnnotations", {})
        assert (annotations.get(WORKLOAD_IDENTITY_ANNOTATION) == "pod-identity") == pod_identity, release


def test_charts_wait_for_their_pod_identity_association(env: Synthesized) -> None:
    """EKS injects a pod's credentials' address when the pod starts: the association must exist by then."""
    template = env.template("eks")
    by_service_account = {
        sa: association_id
        for association_id, association in resources(template, "AWS::EKS::PodIdentityAssociation").items()
        for sa in [association["Properties"]["ServiceAccount"]]
    }
    for release, service_account in (
        ("aws-load-balancer-controller", "aws-load-balancer-controller"),
        ("cluster-autoscaler", "cluster-autoscaler"),
        ("karpenter", "karpenter"),
    ):
        if service_account in by_service_account:
            assert by_service_account[service_account] in _chart(env, release)["DependsOn"]


# --- Karpenter ----------------------------------------------------------------------------------------


def test_karpenter_charts_are_pinned_crds_first(env: Synthesized) -> None:
    if _karpenter(env) is None:
        return
    (crd_id, crds), controller = helm_release(env.template("eks"), KARPENTER_CRD.name), _chart(env, KARPENTER.name)
    for chart, addon in ((crds, KARPENTER_CRD), (controller, KARPENTER)):
        assert chart["Properties"]["Repository"] == addon.repository
        assert chart["Properties"]["Version"] == addon.version
        assert chart["Properties"]["Namespace"] == "kube-system"
    # The controller's chart leaves its crds/ alone: the CRD chart owns them and Helm upgrades them there.
    assert controller["Properties"]["SkipCrds"] is True
    assert crd_id in controller["DependsOn"]


def test_karpenter_is_told_its_cluster_and_queue_and_runs_as_its_service_account(env: Synthesized) -> None:
    if _karpenter(env) is None:
        return
    values = helm_values(env.template("eks"), KARPENTER.name)
    assert values["settings"]["clusterName"] == env.settings.stack_prefix
    assert values["settings"]["interruptionQueue"].startswith("<ref:KarpenterInterruptionQueue")
    assert values["serviceAccount"] == {"create": True, "name": "karpenter"}
    # Its region: Pod Identity does not pass it, and IMDSv2 with one hop keeps pods from asking the node.
    assert {"name": "AWS_REGION", "value": env.settings.region} in values["controller"]["env"]
    assert identity_of(env.template("eks"), "KarpenterControllerRole") == ("pod-identity", "kube-system:karpenter")


def test_the_interruption_queue_is_encrypted_tls_only_and_fed_by_the_five_rules(env: Synthesized) -> None:
    if _karpenter(env) is None:
        return
    template = env.template("eks")
    queues = resources(template, "AWS::SQS::Queue")
    (queue_id,) = [k for k, q in queues.items() if "RedrivePolicy" in q["Properties"]]
    queue = queues[queue_id]["Properties"]
    assert queue["MessageRetentionPeriod"] == 300
    for props in (q["Properties"] for q in queues.values()):
        key_id = props["KmsMasterKeyId"]["Fn::GetAtt"][0]
        assert template["Resources"][key_id]["Properties"]["EnableKeyRotation"] is True
    for policy in resources(template, "AWS::SQS::QueuePolicy").values():
        (deny,) = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    rules = resources(template, "AWS::Events::Rule")
    patterns = sorted(
        (r["Properties"]["EventPattern"]["source"], r["Properties"]["EventPattern"]["detail-type"])
        for r in rules.values()
    )
    assert patterns == sorted((p["source"], p["detail-type"]) for p in INTERRUPTION_EVENTS.values())
    for rule in rules.values():
        (target,) = rule["Properties"]["Targets"]
        assert target["Arn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    # EventBridge may use the queue's key (it encrypts what it sends), for this account only.
    key_id = queue["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key_policy = template["Resources"][key_id]["Properties"]["KeyPolicy"]["Statement"]
    (events,) = [s for s in key_policy if s.get("Principal") == {"Service": "events.amazonaws.com"}]
    assert {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(events["Action"])
    # This account's: the stack's own, literal when synthesized for one.
    account = events["Condition"]["StringEquals"]["aws:SourceAccount"]
    assert account == (env.settings.account or {"Ref": "AWS::AccountId"})


def test_the_controller_may_pass_only_its_nodes_role_and_read_only_its_queue(env: Synthesized) -> None:
    if _karpenter(env) is None:
        return
    template = env.template("eks")
    (policy,) = [
        p
        for k, p in resources(template, "AWS::IAM::ManagedPolicy").items()
        if k.startswith("KarpenterControllerPolicy")
    ]
    statements = {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    assert statements["AllowPassingInstanceRole"]["Resource"]["Fn::GetAtt"][0].startswith("KarpenterNodeRole")
    assert statements["AllowInterruptionQueueActions"]["Resource"]["Fn::GetAtt"][0].startswith(
        "KarpenterInterruptionQueue"
    )
    # Read any profile (deleting an EC2NodeClass looks up the one Karpenter would have made), manage none:
    # the profile is made by the stack and named in the EC2NodeClass.
    profile = statements["AllowInstanceProfileReadActions"]
    assert profile["Action"] == "iam:GetInstanceProfile"
    assert json.dumps(profile["Resource"]).endswith(':instance-profile/*"]]}')
    actions = {a for s in statements.values() for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert not {"iam:CreateInstanceProfile", "iam:DeleteInstanceProfile", "iam:AddRoleToInstanceProfile"} & actions
    # Launching and ending: only what carries this cluster's tags.
    owned = f"aws:ResourceTag/kubernetes.io/cluster/{env.settings.stack_prefix}"
    for sid in ("AllowScopedDeletion", "AllowScopedEC2LaunchTemplateAccessActions", "AllowScopedResourceTagging"):
        assert statements[sid]["Condition"]["StringEquals"][owned] == "owned"


def test_karpenters_nodes_join_with_their_own_role_and_an_ec2_linux_entry(env: Synthesized) -> None:
    if _karpenter(env) is None:
        return
    template = env.template("eks")
    (profile,) = resources(template, "AWS::IAM::InstanceProfile").values()
    (role,) = profile["Properties"]["Roles"]
    assert role["Ref"].startswith("KarpenterNodeRole")
    (entry,) = [
        e for e in resources(template, "AWS::EKS::AccessEntry").values() if e["Properties"].get("Type") == "EC2_LINUX"
    ]
    assert entry["Properties"]["PrincipalArn"] == {"Fn::GetAtt": [role["Ref"], "Arn"]}
    node_role = template["Resources"][role["Ref"]]["Properties"]
    names = {json.dumps(p).rsplit("/", 1)[-1].rstrip('"]}') for p in node_role["ManagedPolicyArns"]}
    assert names == {"AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly"}


def test_the_node_pool_is_the_settings(env: Synthesized) -> None:
    karpenter = _karpenter(env)
    if karpenter is None:
        return
    pool = _manifest(env, "NodePool")["document"]
    spec = pool["spec"]
    requirements = {r["key"]: (r["operator"], r["values"]) for r in spec["template"]["spec"]["requirements"]}
    assert requirements == {
        "karpenter.k8s.aws/instance-family": ("In", karpenter.instance_families),
        "karpenter.k8s.aws/instance-size": ("In", karpenter.instance_sizes),
        "karpenter.sh/capacity-type": ("In", list(karpenter.capacity_types)),
        "kubernetes.io/arch": ("In", ["amd64"]),
        "kubernetes.io/os": ("In", ["linux"]),
    }
    assert spec["limits"] == {"cpu": str(karpenter.max_vcpus), "memory": f"{karpenter.max_memory_gib}Gi"}
    assert spec["disruption"] == {
        "consolidationPolicy": karpenter.consolidation_policy,
        "consolidateAfter": karpenter.consolidate_after,
    }
    assert spec["template"]["spec"]["expireAfter"] == karpenter.expire_after
    assert spec["template"]["spec"]["terminationGracePeriod"] == karpenter.termination_grace_period
    assert spec["template"]["spec"]["nodeClassRef"] == {
        "group": "karpenter.k8s.aws",
        "kind": "EC2NodeClass",
        "name": _manifest(env, "EC2NodeClass")["document"]["metadata"]["name"],
    }


def test_the_node_class_runs_imdsv2_one_hop_encrypted_volumes_in_the_private_subnets(env: Synthesized) -> None:
    karpenter = _karpenter(env)
    if karpenter is None:
        return
    found = _manifest(env, "EC2NodeClass")
    spec = found["document"]["spec"]
    assert spec["amiSelectorTerms"] == [{"alias": f"{karpenter.ami_family}@{karpenter.ami_version}"}]
    assert spec["metadataOptions"]["httpTokens"] == "required"
    assert spec["metadataOptions"]["httpPutResponseHopLimit"] == 1
    volumes = spec["blockDeviceMappings"]
    assert all(v["ebs"]["encrypted"] is True and v["ebs"]["volumeType"] == "gp3" for v in volumes)
    # The last volume is the one for images and pods (Bottlerocket's data volume, AL2023's root).
    assert volumes[-1]["ebs"]["volumeSize"] == f"{karpenter.disk_size_gib}Gi"
    assert [v["deviceName"] for v in volumes] == (
        ["/dev/xvda", "/dev/xvdb"] if karpenter.ami_family == "bottlerocket" else ["/dev/xvda"]
    )
    assert spec["instanceProfile"].startswith("<ref:")
    assert len(spec["subnetSelectorTerms"]) == env.settings.network.zone_count
    assert all("privateSubnet" in term["id"] for term in spec["subnetSelectorTerms"])
    # Deleted before the charts and the nodes' access (its finalizer waits for Karpenter to end the nodes).
    depends = found["resource"]["DependsOn"]
    for release in (KARPENTER.name, KARPENTER_CRD.name):
        assert helm_release(env.template("eks"), release)[0] in depends
    assert any(d.startswith("KarpenterNodeAccess") for d in depends)


def test_the_karpenter_chart_renders_with_these_values(env: Synthesized, helm: Helm, tmp_path: Path) -> None:
    """With real helm, the chart at the pinned version and the values the stack passes. The chart comes from
    Amazon ECR Public, which this machine cannot reach: CLOUD_OPS_KARPENTER_CHART names a copy (a directory
    or a .tgz, e.g. from `helm pull oci://public.ecr.aws/karpenter/karpenter --version <pin>`)."""
    if _karpenter(env) is None:
        return
    chart = os.environ.get("CLOUD_OPS_KARPENTER_CHART")
    if not chart:
        pytest.skip("CLOUD_OPS_KARPENTER_CHART is not set: Karpenter's chart is on ECR Public only")
    parts = _chart(env, KARPENTER.name)["Properties"]["Values"]["Fn::Join"][1]
    values = tmp_path / "values.json"
    values.write_text("".join(p if isinstance(p, str) else "queue-name" for p in parts), encoding="utf-8")
    result = helm.run("template", "karpenter", chart, "--namespace", "kube-system", "-f", str(values), "--skip-crds")
    assert result.returncode == 0, result.stderr
    documents = [d for d in _yaml_documents(result.stdout) if d]
    (deployment,) = [d for d in documents if d["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] == 2
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env_vars = {e["name"]: e.get("value") for e in container["env"]}
    assert env_vars["CLUSTER_NAME"] == env.settings.stack_prefix
    assert env_vars["INTERRUPTION_QUEUE"] == "queue-name"
    assert env_vars["AWS_REGION"] == env.settings.region
    assert container["resources"] == KARPENTER.defaults["controller"]["resources"]
    (account,) = [d for d in documents if d["kind"] == "ServiceAccount"]
    assert account["metadata"]["name"] == "karpenter"
    assert "annotations" not in account["metadata"] or not account["metadata"]["annotations"]
    # The NodePool and EC2NodeClass against the chart's CRDs (their OpenAPI schemas; not their CEL rules).
    schemas = {}
    for crd in (Path(chart) / "crds").glob("*.yaml") if Path(chart).is_dir() else []:
        (document,) = _yaml_documents(crd.read_text(encoding="utf-8"))
        schemas[document["spec"]["names"]["kind"]] = _openapi(
            document["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        )
    node_class = _manifest(env, "EC2NodeClass")["document"]
    # Deploy-time values as EC2 would have them: subnet and security group ids, an instance profile's name.
    spec = node_class["spec"]
    spec["subnetSelectorTerms"] = [{"id": f"subnet-0{i}abcd"} for i, _ in enumerate(spec["subnetSelectorTerms"])]
    spec["securityGroupSelectorTerms"] = [
        {"id": f"sg-0{i}abcd"} for i, _ in enumerate(spec["securityGroupSelectorTerms"])
    ]
    spec["instanceProfile"] = "acme-karpenter-nodes"
    for document in (node_class, _manifest(env, "NodePool")["document"]):
        if document["kind"] in schemas:
            jsonschema.validate(document, schemas[document["kind"]])


def _openapi(schema: Any) -> Any:
    """A CRD's schema without Kubernetes' own extensions (x-kubernetes-*), which jsonschema does not know."""
    if isinstance(schema, dict):
        return {k: _openapi(v) for k, v in schema.items() if not k.startswith("x-kubernetes")}
    if isinstance(schema, list):
        return [_openapi(v) for v in schema]
    return schema


def _yaml_documents(text: str) -> list[Any]:
    import yaml

    return list(yaml.safe_load_all(text))


# --- Settings -----------------------------------------------------------------------------------------

KARPENTER_SETTINGS = {
    "instance_families": ["m7i", "m6i"],
    "instance_sizes": ["large", "xlarge"],
    "max_vcpus": 64,
    "max_memory_gib": 256,
}


def _load(tmp_path: Path, base: str, edit: dict[str, Any]) -> None:
    example_settings(tmp_path, base, nested(edit))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"eks.autoscaling": "karpenter"}, r"eks.autoscaling = 'karpenter' needs eks.karpenter"),
        ({"eks.karpenter": KARPENTER_SETTINGS}, r"eks.karpenter is set but eks.autoscaling = 'cluster-autoscaler'"),
        (
            {"eks.autoscaling": "karpenter", "eks.karpenter": KARPENTER_SETTINGS, "eks.node_group.min_size": 1},
            r"eks.node_group.min_size = 1 with eks.autoscaling karpenter",
        ),
        (
            {"eks.autoscaling": "karpenter", "eks.karpenter": {**KARPENTER_SETTINGS, "instance_families": ["m7g"]}},
            r"'m7g' is a Graviton \(arm64\) family",
        ),
        (
            {"eks.autoscaling": "karpenter", "eks.karpenter": {**KARPENTER_SETTINGS, "expire_after": "30d"}},
            r"eks.karpenter.expire_after = '30d' is not a duration such as 30s, 5m or 720h, or Never",
        ),
        (
            {"eks.autoscaling": "karpenter", "eks.karpenter": {**KARPENTER_SETTINGS, "ami_version": "v1.50.0"}},
            r"eks.karpenter.ami_version = 'v1.50.0' is not a release of the al2023 AMI; allowed: latest, or a release",
        ),
        (
            {"eks.autoscaling": "karpenter", "eks.karpenter": {**KARPENTER_SETTINGS, "instance_families": ["zz9"]}},
            r"setting 'eks.karpenter.instance_families': 'zz9' has none of the sizes \['large', 'xlarge'\] in",
        ),
        ({"eks.workload_identity": "oidc"}, r"eks.workload_identity.*'irsa' or 'pod-identity'"),
    ],
)
def test_an_inconsistent_compute_or_identity_setting_is_named(
    tmp_path: Path, edit: dict[str, Any], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        _load(tmp_path, "sandbox", {**edit, "eks.node_group.min_size": edit.get("eks.node_group.min_size", 2)})


def test_every_kubernetes_version_the_settings_accept_is_one_karpenter_supports() -> None:
    from infra.config.settings import EKS_STANDARD_SUPPORT
    from infra.stacks.eks_addons import KARPENTER_KUBERNETES

    def minor(version: str) -> tuple[int, ...]:
        return tuple(int(part) for part in version.split("."))

    oldest, newest = (minor(v) for v in KARPENTER_KUBERNETES)
    for version in EKS_STANDARD_SUPPORT:
        assert oldest <= minor(version) <= newest, f"Karpenter {KARPENTER.version} does not support {version}"


def test_check_versions_asks_for_the_karpenter_charts_by_oci_reference() -> None:
    """`make check-versions` (tests/test_versions.py) asks ECR Public for both pinned charts: the same version."""
    assert KARPENTER.version == KARPENTER_CRD.version
    assert KARPENTER.repository == f"oci://public.ecr.aws/karpenter/{KARPENTER.chart}"
    assert KARPENTER_CRD.repository == f"oci://public.ecr.aws/karpenter/{KARPENTER_CRD.chart}"


# --- Switching -----------------------------------------------------------------------------------------

# What holds data or names: never replaced or deleted by a switch (ADR 0014's rule for day-two changes).
HOLDS_DATA_OR_NAMES = (
    "AWS::EKS::Cluster",
    "AWS::EKS::Nodegroup",
    "AWS::RDS::",
    "AWS::ElastiCache::",
    "AWS::Logs::LogGroup",
    "AWS::ECR::Repository",
    "AWS::SecretsManager::Secret",
    "AWS::KMS::Key",
)


@pytest.mark.needs_synth("examples-live-pod-identity", "examples-live-karpenter-bottlerocket")
def test_switching_autoscaling_and_identity_either_way_replaces_nothing_that_holds_data_or_names() -> None:
    """The production example with the cluster autoscaler and Pod Identity, and with Karpenter and IRSA, each
    deployed over the other (as CloudFormation would: tests/replacements.py): resources are added and
    removed, none is replaced, and none that holds data or names goes but Karpenter's own queue key."""
    from tests.conftest import subject
    from tests.replacements import deploy_changes
    from tests.subjects import synth

    one, other = (
        synth(subject(label)) for label in ("examples-live-pod-identity", "examples-live-karpenter-bottlerocket")
    )
    for before, after in ((one, other), (other, one)):
        changes = deploy_changes(before.outdir, after.outdir)
        assert not [c for c in changes if c.action == "replace"]
        gone = [c for c in changes if c.action == "delete" and c.resource_type.startswith(HOLDS_DATA_OR_NAMES)]
        assert [c.logical_id for c in gone if not c.logical_id.startswith("KarpenterQueueKey")] == []
        # The cluster and its node group are updated in place at most (their sizes), never recreated.
        assert not [c for c in changes if c.resource_type == "AWS::EKS::Cluster"]
