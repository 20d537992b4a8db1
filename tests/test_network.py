"""The network stack, per environment."""

from __future__ import annotations

import pytest

from tests.synth import Synthesized, kept, only, resources


def _subnets(env: Synthesized, kind: str) -> list[dict]:  # type: ignore[type-arg]
    template = env.template("network")
    return [
        r["Properties"]
        for r in resources(template, "AWS::EC2::Subnet").values()
        if {"Key": "aws-cdk:subnet-name", "Value": kind} in r["Properties"]["Tags"]
    ]


def test_vpc_uses_the_cidr_from_settings(env: Synthesized) -> None:
    vpc = only(env.template("network"), "AWS::EC2::VPC")["Properties"]
    assert vpc["CidrBlock"] == env.settings.network.vpc_cidr
    assert vpc["EnableDnsHostnames"] is True
    assert vpc["EnableDnsSupport"] is True


@pytest.mark.parametrize("kind", ["public", "private", "data"])
def test_one_subnet_of_each_kind_per_zone(env: Synthesized, kind: str) -> None:
    zones = sorted(s["AvailabilityZone"] for s in _subnets(env, kind))
    assert zones == sorted(env.settings.availability_zones)


def test_subnets_are_where_the_settings_plan_them_with_load_balancer_subnets_of_27_or_more(env: Synthesized) -> None:
    """infra/config/subnets.py computes the subnets as CDK allocates them (synth checks the values
    files' network policies against it): the template has exactly those."""
    from infra.config.subnets import LOAD_BALANCER_MAX_MASK, PUBLIC, subnet_plan

    plan = subnet_plan(env.settings.network.vpc_cidr, env.settings.network.zone_count)
    zones = env.settings.availability_zones
    for kind, cidrs in plan.items():
        by_zone = {s["AvailabilityZone"]: s["CidrBlock"] for s in _subnets(env, kind)}
        assert [by_zone[z] for z in zones] == cidrs
    assert all(int(c.split("/")[1]) <= LOAD_BALANCER_MAX_MASK for c in plan[PUBLIC])


def test_no_subnet_assigns_public_ips(env: Synthesized) -> None:
    for subnet in resources(env.template("network"), "AWS::EC2::Subnet").values():
        assert subnet["Properties"]["MapPublicIpOnLaunch"] is False


def test_nat_gateways_match_settings(env: Synthesized) -> None:
    gateways = resources(env.template("network"), "AWS::EC2::NatGateway")
    assert len(gateways) == env.settings.network.nat_gateways


def test_data_subnets_have_no_route_out(env: Synthesized) -> None:
    template = env.template("network")
    data_tables = {
        k
        for k, r in resources(template, "AWS::EC2::RouteTable").items()
        if any(t["Key"] == "Name" and "/data" in t["Value"] for t in r["Properties"]["Tags"])
    }
    assert data_tables
    for route in resources(template, "AWS::EC2::Route").values():
        assert route["Properties"]["RouteTableId"]["Ref"] not in data_tables


def test_private_subnets_route_out_through_nat(env: Synthesized) -> None:
    template = env.template("network")
    nat_routes = [r for r in resources(template, "AWS::EC2::Route").values() if "NatGatewayId" in r["Properties"]]
    assert len(nat_routes) == len(env.settings.availability_zones)


def test_flow_log_captures_all_traffic_to_the_encrypted_log_group(env: Synthesized) -> None:
    template = env.template("network")
    flow_log = only(template, "AWS::EC2::FlowLog")["Properties"]
    assert flow_log["TrafficType"] == "ALL"
    assert flow_log["ResourceType"] == "VPC"
    assert flow_log["LogDestinationType"] == "cloud-watch-logs"
    log_group_id = flow_log["LogGroupName"]["Ref"]
    log_group = template["Resources"][log_group_id]["Properties"]
    key_id = log_group["KmsKeyId"]["Fn::GetAtt"][0]
    assert template["Resources"][key_id]["Type"] == "AWS::KMS::Key"
    assert template["Resources"][key_id]["Properties"]["EnableKeyRotation"] is True
    assert log_group["RetentionInDays"] == env.settings.network.flow_log_retention_days
    # Delivery starts after the role's policies are attached (resources of their own).
    role_id = flow_log["DeliverLogsPermissionArn"]["Fn::GetAtt"][0]
    policies = [
        policy_id
        for policy_id, policy in resources(template, "AWS::IAM::ManagedPolicy").items()
        if {"Ref": role_id} in policy["Properties"].get("Roles", [])
    ]
    assert policies
    assert set(policies) <= set(only(template, "AWS::EC2::FlowLog")["DependsOn"])


def test_flow_log_key_lets_only_regional_cloudwatch_logs_use_it(env: Synthesized) -> None:
    key = only(env.template("network"), "AWS::KMS::Key")["Properties"]
    service_principals = [
        s["Principal"]["Service"] for s in key["KeyPolicy"]["Statement"] if "Service" in s.get("Principal", {})
    ]
    assert service_principals == [f"logs.{env.settings.region}.amazonaws.com"]


@pytest.mark.parametrize(
    ("stack", "groups"),
    [
        ("network", []),
        # The control plane's group, the four Container Insights groups of the cluster under one key, and
        # the kubectl provider's functions' groups (generated names, under /aws/lambda/).
        ("eks", ["/aws/eks/{prefix}/cluster", "/aws/containerinsights/{prefix}/*", "/aws/lambda/*"]),
        ("database", ["/aws/rds/cluster/{prefix}-db/postgresql", "/aws/rds/cluster/{prefix}-db/iam-db-auth-error"]),
    ],
)
def test_log_keys_serve_cloudwatch_logs_only_for_this_accounts_log_groups(
    env: Synthesized, stack: str, groups: list[str]
) -> None:
    statements = [
        s
        for key in resources(env.template(stack), "AWS::KMS::Key").values()
        for s in key["Properties"]["KeyPolicy"]["Statement"]
        if s.get("Principal", {}).get("Service", "").startswith("logs.")
    ]
    assert statements
    suffixes: set[str] = set()
    for statement in statements:
        # The actions CloudWatch Logs documents for its key policy statement, nothing else.
        assert statement["Action"] == [
            "kms:Decrypt*",
            "kms:Describe*",
            "kms:Encrypt*",
            "kms:GenerateDataKey*",
            "kms:ReEncrypt*",
        ]
        (arn,) = statement["Condition"]["ArnLike"].values()
        assert list(statement["Condition"]["ArnLike"]) == ["kms:EncryptionContext:aws:logs:arn"]
        head, tail = arn["Fn::Join"][1][:-1], arn["Fn::Join"][1][-1]
        assert head == [
            "arn:",
            {"Ref": "AWS::Partition"},
            ":logs:",
            {"Ref": "AWS::Region"},
            ":",
            {"Ref": "AWS::AccountId"},
        ]
        suffixes.add(tail)
    # The service's fixed-name group has a key of its own; groups with generated names ("*") share none.
    prefix = env.settings.stack_prefix
    assert suffixes == {":log-group:" + group.format(prefix=prefix) for group in groups} | {":log-group:*"}


def test_flow_log_role_is_trusted_only_by_flow_logs_for_this_account(env: Synthesized) -> None:
    template = env.template("network")
    roles = [
        r
        for r in resources(template, "AWS::IAM::Role").values()
        if r["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"].get("Service")
        == "vpc-flow-logs.amazonaws.com"
    ]
    assert len(roles) == 1
    statement = roles[0]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert statement["Action"] == "sts:AssumeRole"
    assert set(statement["Condition"]) == {"StringEquals", "ArnLike"}
    assert "aws:SourceAccount" in statement["Condition"]["StringEquals"]
    assert "Policies" not in roles[0]["Properties"]


def test_flow_logs_and_their_key_are_retained_where_data_is(env: Synthesized) -> None:
    for resource_type in ("AWS::Logs::LogGroup", "AWS::KMS::Key"):
        resource = only(env.template("network"), resource_type)
        if env.settings.retain_data:
            assert kept(resource)
        else:
            assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Delete"


def test_default_security_group_is_stripped(env: Synthesized) -> None:
    assert len(resources(env.template("network"), "Custom::VpcRestrictDefaultSG")) == 1


def test_s3_gateway_endpoint_always_exists(env: Synthesized) -> None:
    endpoints = resources(env.template("network"), "AWS::EC2::VPCEndpoint").values()
    gateways = [e for e in endpoints if e["Properties"].get("VpcEndpointType") == "Gateway"]
    assert len(gateways) == 1
    assert "s3" in str(gateways[0]["Properties"]["ServiceName"])


def test_interface_endpoints_follow_settings_and_admit_only_https_from_the_vpc(env: Synthesized) -> None:
    endpoints = resources(env.template("network"), "AWS::EC2::VPCEndpoint").values()
    interfaces = [e["Properties"] for e in endpoints if e["Properties"]["VpcEndpointType"] == "Interface"]
    prefix = f"com.amazonaws.{env.settings.region}."
    assert {e["ServiceName"].removeprefix(prefix) for e in interfaces} == set(env.settings.network.interface_endpoints)
    assert all(e["PrivateDnsEnabled"] is True for e in interfaces)
    groups = resources(env.template("network"), "AWS::EC2::SecurityGroup")
    endpoint_groups = [g["Properties"] for k, g in groups.items() if k.startswith("EndpointSecurityGroup")]
    if not interfaces:
        assert endpoint_groups == []
        return
    (group,) = endpoint_groups
    assert group["SecurityGroupIngress"] == [
        {
            "CidrIp": env.settings.network.vpc_cidr,
            "Description": "HTTPS from the VPC",
            "FromPort": 443,
            "IpProtocol": "tcp",
            "ToPort": 443,
        }
    ]


def test_every_taggable_resource_carries_the_platform_tags(env: Synthesized) -> None:
    expected = {"project": env.settings.project, "environment": env.settings.environment, "managed-by": "cdk"}
    tagged = 0
    for resource in env.template("network")["Resources"].values():
        tags = resource.get("Properties", {}).get("Tags")
        if isinstance(tags, list):
            tagged += 1
            assert {t["Key"]: t["Value"] for t in tags}.items() >= expected.items(), resource["Type"]
    assert tagged > 10


def test_the_network_stack_is_termination_protected_where_data_is_retained(env: Synthesized) -> None:
    artifact = env.manifest()["artifacts"][f"{env.settings.stack_prefix}-network"]
    assert bool(artifact["properties"].get("terminationProtection", False)) is env.settings.retain_data


def test_synth_needs_no_lookups(env: Synthesized) -> None:
    assert "missing" not in env.manifest()


def test_workload_security_group_admits_nothing_itself(env: Synthesized) -> None:
    # Nodes get their inbound rules from the EKS cluster security group; this group only marks
    # the workloads as a source for the data stores.
    groups = resources(env.template("network"), "AWS::EC2::SecurityGroup")
    (group,) = [g["Properties"] for k, g in groups.items() if k.startswith("WorkloadSecurityGroup")]
    assert "SecurityGroupIngress" not in group
    assert not resources(env.template("network"), "AWS::EC2::SecurityGroupIngress")
