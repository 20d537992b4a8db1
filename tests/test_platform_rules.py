"""Our own compliance rules (infra/compliance/platform_rules.py): each proven to fire, the platform passes."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from infra.compliance.platform_rules import PLUGIN_NAME, RULES, evaluate
from infra.config.project import cdk_json_context
from tests.synth import Synthesized

KEY = {"Fn::GetAtt": ["Key", "Arn"]}


def _baseline() -> dict[str, dict[str, Any]]:
    """One compliant resource of each kind the rules look at, across two stacks like the platform."""
    network = {
        "Resources": {
            "Igw": {"Type": "AWS::EC2::InternetGateway"},
            "PrivateSubnet": {"Type": "AWS::EC2::Subnet", "Properties": {"MapPublicIpOnLaunch": False}},
            "PublicSubnet": {"Type": "AWS::EC2::Subnet", "Properties": {"MapPublicIpOnLaunch": False}},
            "PublicTable": {"Type": "AWS::EC2::RouteTable"},
            "PublicAssoc": {
                "Type": "AWS::EC2::SubnetRouteTableAssociation",
                "Properties": {"SubnetId": {"Ref": "PublicSubnet"}, "RouteTableId": {"Ref": "PublicTable"}},
            },
            "PublicRoute": {
                "Type": "AWS::EC2::Route",
                "Properties": {"RouteTableId": {"Ref": "PublicTable"}, "GatewayId": {"Ref": "Igw"}},
            },
        },
        "Outputs": {
            "Private": {"Value": {"Ref": "PrivateSubnet"}},
            "Public": {"Value": {"Ref": "PublicSubnet"}},
        },
    }
    private = {"Fn::GetStackOutput": {"StackName": "net", "OutputName": "Private"}}
    app = {
        "Resources": {
            "Key": {"Type": "AWS::KMS::Key"},
            "Cluster": {
                "Type": "AWS::EKS::Cluster",
                "Properties": {
                    "Logging": {
                        "ClusterLogging": {
                            "EnabledTypes": [
                                {"Type": t} for t in ("api", "audit", "authenticator", "controllerManager", "scheduler")
                            ]
                        }
                    },
                    "EncryptionConfig": [{"Resources": ["secrets"], "Provider": {"KeyArn": KEY}}],
                    "ResourcesVpcConfig": {"EndpointPublicAccess": False, "EndpointPrivateAccess": True},
                    "AccessConfig": {"AuthenticationMode": "API"},
                    "Name": "c",
                },
            },
            "LaunchTemplate": {
                "Type": "AWS::EC2::LaunchTemplate",
                "Properties": {
                    "LaunchTemplateData": {
                        "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 1},
                        "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"Encrypted": True}}],
                    }
                },
            },
            "Nodes": {
                "Type": "AWS::EKS::Nodegroup",
                "Properties": {
                    "LaunchTemplate": {"Id": {"Ref": "LaunchTemplate"}},
                    "Subnets": [private],
                    "ClusterName": {"Ref": "Cluster"},
                },
            },
            "DefaultUser": {
                "Type": "AWS::ElastiCache::User",
                "Properties": {"UserId": "c-default-off", "UserName": "default", "AccessString": "off -@all"},
            },
            "Users": {
                "Type": "AWS::ElastiCache::UserGroup",
                "Properties": {"UserGroupId": "c-users", "UserIds": ["c-default-off"]},
            },
            "Cache": {
                "Type": "AWS::ElastiCache::ServerlessCache",
                "Properties": {
                    "ServerlessCacheName": "c-cache",
                    "KmsKeyId": KEY,
                    "SnapshotRetentionLimit": 7,
                    "SecurityGroupIds": ["sg-1"],
                    "UserGroupId": "c-users",
                },
            },
            "ReplicationGroup": {
                "Type": "AWS::ElastiCache::ReplicationGroup",
                "Properties": {
                    "ReplicationGroupId": "c-rg",
                    "AtRestEncryptionEnabled": True,
                    "KmsKeyId": KEY,
                    "TransitEncryptionEnabled": True,
                    "TransitEncryptionMode": "required",
                    "SnapshotRetentionLimit": 15,
                    "SecurityGroupIds": ["sg-1"],
                    "UserGroupIds": ["c-users"],
                    "MultiAZEnabled": True,
                    "AutomaticFailoverEnabled": True,
                    "ClusterMode": "disabled",
                    "NumCacheClusters": 2,
                },
            },
            # One alarm per watched resource, the way the observability stack writes them.
            "NodesAlarm": _alarm("ContainerInsights", "ClusterName", "c"),
            "DatabaseAlarm": _alarm("AWS/RDS", "DBClusterIdentifier", "c-db"),
            "CacheAlarm": _alarm("AWS/ElastiCache", "clusterId", "c-cache"),
            "NodesOfCacheAlarm": {
                "Type": "AWS::CloudWatch::Alarm",
                "Properties": {
                    "AlarmActions": [{"Ref": "Topic"}],
                    "Metrics": [
                        {"Id": "e", "Expression": "MAX([n0])"},
                        {
                            "Id": "n0",
                            "MetricStat": {
                                "Metric": {
                                    "Namespace": "AWS/ElastiCache",
                                    "MetricName": "EngineCPUUtilization",
                                    "Dimensions": [
                                        {"Name": "CacheClusterId", "Value": "c-rg-001"},
                                        {"Name": "CacheNodeId", "Value": "0001"},
                                    ],
                                }
                            },
                        },
                    ],
                },
            },
            "LogGroup": {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": 365}},
            "ForeverLogGroup": {"Type": "AWS::Logs::LogGroup", "Properties": {}},
            "ServiceLogRetention": {
                "Type": "Custom::AWS",
                "Properties": {
                    "Create": json.dumps(
                        {
                            "action": "putRetentionPolicy",
                            "service": "CloudWatchLogs",
                            "parameters": {"logGroupName": "/aws/eks/c/cluster", "retentionInDays": 365},
                        },
                        separators=(",", ":"),
                    ),
                },
            },
            "Repository": {
                "Type": "AWS::ECR::Repository",
                "Properties": {
                    "ImageTagMutability": "IMMUTABLE",
                    "ImageScanningConfiguration": {"ScanOnPush": True},
                    "EncryptionConfiguration": {"EncryptionType": "KMS", "KmsKey": KEY},
                },
            },
            "Database": {
                "Type": "AWS::RDS::DBCluster",
                "Properties": {
                    "Engine": "aurora-postgresql",
                    "DBClusterIdentifier": "c-db",
                    "EngineVersion": "17.9",
                    "EnableIAMDatabaseAuthentication": True,
                    "DeletionProtection": True,
                },
            },
            "Conditions": {
                "Type": "Custom::AWSCDKCfnJson",
                "Properties": {"Value": {"Fn::Join": ["", ['{"', "issuer", ':sub":"system:serviceaccount:a:a"}']]}},
            },
            "IrsaRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": {
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Federated": {"Ref": "Provider"}},
                                "Action": "sts:AssumeRoleWithWebIdentity",
                                "Condition": {"StringEquals": {"Fn::GetAtt": ["Conditions", "Value"]}},
                            }
                        ]
                    }
                },
            },
            "GithubRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": {
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Federated": "arn:aws:iam::1:oidc-provider/x"},
                                "Condition": {"StringEquals": {"x:sub": "repo:o/r:environment:prod", "x:aud": "sts"}},
                            }
                        ]
                    }
                },
            },
            "Policy": {
                "Type": "AWS::IAM::ManagedPolicy",
                "Properties": {
                    "PolicyDocument": {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
                },
            },
            "PodRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": {
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "pods.eks.amazonaws.com"},
                                "Action": ["sts:AssumeRole", "sts:TagSession"],
                                "Condition": {
                                    "StringEquals": {
                                        "aws:RequestTag/kubernetes-namespace": "api-prod",
                                        "aws:RequestTag/kubernetes-service-account": "api",
                                    }
                                },
                            }
                        ]
                    }
                },
            },
            "QueueKey": {"Type": "AWS::KMS::Key", "Properties": {}},
            "Queue": {
                "Type": "AWS::SQS::Queue",
                "Properties": {"KmsMasterKeyId": {"Fn::GetAtt": ["QueueKey", "Arn"]}},
            },
        }
    }
    return {"net": network, "app": app}


def _alarm(namespace: str, dimension: str, value: str) -> dict[str, Any]:
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmActions": [{"Ref": "Topic"}],
            "Namespace": namespace,
            "MetricName": "M",
            "Dimensions": [{"Name": dimension, "Value": value}],
        },
    }


def _set(path: str, value: Any) -> Callable[[dict[str, dict[str, Any]]], None]:
    def mutate(templates: dict[str, dict[str, Any]]) -> None:
        stack, *keys = path.split(".")
        node: Any = templates[stack]
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is _DELETE:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value

    return mutate


_DELETE = object()
P = "app.Resources"
BREAKS: dict[str, Callable[[dict[str, dict[str, Any]]], None]] = {
    "CloudOps-EKS1": _set(f"{P}.Cluster.Properties.Logging.ClusterLogging.EnabledTypes", [{"Type": "api"}]),
    "CloudOps-EKS2": _set(f"{P}.Cluster.Properties.EncryptionConfig", _DELETE),
    "CloudOps-EKS3": _set(
        f"{P}.Cluster.Properties.ResourcesVpcConfig",
        {"EndpointPublicAccess": True, "PublicAccessCidrs": ["0.0.0.0/0"]},
    ),
    "CloudOps-EKS4": _set(f"{P}.Cluster.Properties.AccessConfig.AuthenticationMode", "API_AND_CONFIG_MAP"),
    "CloudOps-EKS5": _set(
        f"{P}.LaunchTemplate.Properties.LaunchTemplateData.MetadataOptions.HttpPutResponseHopLimit", 2
    ),
    "CloudOps-EKS6": _set(
        f"{P}.LaunchTemplate.Properties.LaunchTemplateData.BlockDeviceMappings.0.Ebs.Encrypted", False
    ),
    "CloudOps-EKS7": _set(
        f"{P}.Nodes.Properties.Subnets", [{"Fn::GetStackOutput": {"StackName": "net", "OutputName": "Public"}}]
    ),
    "CloudOps-EC1": _set(f"{P}.Cache.Properties.KmsKeyId", _DELETE),
    "CloudOps-EC2": _set(f"{P}.Cache.Properties.SnapshotRetentionLimit", 1),
    "CloudOps-EC3": _set(f"{P}.Cache.Properties.SecurityGroupIds", []),
    "CloudOps-EC4": _set(f"{P}.DefaultUser.Properties.AccessString", "on ~* +@all"),
    # The cache rules cover both kinds; a replication group breaks them in its own ways too.
    "CloudOps-EC1/replication-group": _set(f"{P}.ReplicationGroup.Properties.AtRestEncryptionEnabled", False),
    "CloudOps-EC1/replication-group-key": _set(f"{P}.ReplicationGroup.Properties.KmsKeyId", _DELETE),
    "CloudOps-EC2/replication-group": _set(f"{P}.ReplicationGroup.Properties.SnapshotRetentionLimit", 0),
    "CloudOps-EC3/replication-group": _set(f"{P}.ReplicationGroup.Properties.SecurityGroupIds", _DELETE),
    "CloudOps-EC4/replication-group": _set(f"{P}.ReplicationGroup.Properties.UserGroupIds", []),
    "CloudOps-EC4/replication-group-token": _set(f"{P}.ReplicationGroup.Properties.AuthToken", "shared-secret"),
    "CloudOps-EC5": _set(f"{P}.ReplicationGroup.Properties.TransitEncryptionMode", "preferred"),
    "CloudOps-EC5/off": _set(f"{P}.ReplicationGroup.Properties.TransitEncryptionEnabled", False),
    "CloudOps-EC6": _set(f"{P}.ReplicationGroup.Properties.MultiAZEnabled", False),
    "CloudOps-EC6/no-replica": _set(f"{P}.ReplicationGroup.Properties.NumCacheClusters", 1),
    "CloudOps-EC6/cluster-mode-no-replica": _set(
        f"{P}.ReplicationGroup.Properties",
        {
            **{
                k: v
                for k, v in _baseline()["app"]["Resources"]["ReplicationGroup"]["Properties"].items()
                if k != "NumCacheClusters"
            },
            "ClusterMode": "enabled",
            "ReplicasPerNodeGroup": 0,
        },
    ),
    "CloudOps-OBS1": _set(f"{P}.DatabaseAlarm.Properties.Dimensions.0.Value", "another-db"),
    "CloudOps-OBS1/cache": _set(f"{P}.CacheAlarm.Properties.Dimensions.0.Name", "CacheClusterId"),
    "CloudOps-OBS1/nodes": _set(f"{P}.NodesAlarm.Properties.Namespace", "AWS/EKS"),
    "CloudOps-OBS1/replication-group": _set(
        f"{P}.NodesOfCacheAlarm.Properties.Metrics.1.MetricStat.Metric.Dimensions.0.Value", "other-rg-001"
    ),
    "CloudOps-OBS2": _set(f"{P}.DatabaseAlarm.Properties.AlarmActions", []),
    "CloudOps-OBS2/disabled": _set(f"{P}.CacheAlarm.Properties.ActionsEnabled", False),
    "CloudOps-LOG1": _set(f"{P}.LogGroup.Properties.RetentionInDays", 90),
    "CloudOps-LOG1/service-log-group": _set(
        f"{P}.ServiceLogRetention.Properties.Create",
        json.dumps(
            {"action": "putRetentionPolicy", "parameters": {"logGroupName": "g", "retentionInDays": 30}},
            separators=(",", ":"),
        ),
    ),
    "CloudOps-ECR1": _set(f"{P}.Repository.Properties.ImageTagMutability", "MUTABLE"),
    "CloudOps-ECR2": _set(f"{P}.Repository.Properties.ImageScanningConfiguration", _DELETE),
    "CloudOps-ECR3": _set(f"{P}.Repository.Properties.EncryptionConfiguration.EncryptionType", "AES256"),
    "CloudOps-RDS1": _set(f"{P}.Database.Properties.EngineVersion", "16.6"),
    "CloudOps-RDS2": _set(f"{P}.Database.Properties.EnableIAMDatabaseAuthentication", False),
    "CloudOps-RDS3": _set(f"{P}.Database.Properties.DeletionProtection", False),
    "CloudOps-IAM1": _set(
        f"{P}.GithubRole.Properties.AssumeRolePolicyDocument.Statement.0.Condition", {"StringEquals": {"x:aud": "sts"}}
    ),
    "CloudOps-IAM2": _set(f"{P}.Policy.Properties.PolicyDocument.Statement.0.Action", ["s3:GetObject", "*"]),
    "CloudOps-IAM3": _set(f"{P}.PodRole.Properties.AssumeRolePolicyDocument.Statement.0.Condition", _DELETE),
    "CloudOps-IAM3/wildcard": _set(
        f"{P}.PodRole.Properties.AssumeRolePolicyDocument.Statement.0.Condition.StringEquals"
        ".aws:RequestTag/kubernetes-service-account",
        "*",
    ),
    "CloudOps-SQS1": _set(f"{P}.Queue.Properties.KmsMasterKeyId", "alias/aws/sqs"),
}


def test_every_rule_has_a_breaking_fixture_a_reason_and_a_link() -> None:
    assert {key.split("/")[0] for key in BREAKS} == {r.id for r in RULES}
    for rule in RULES:
        assert rule.reason.strip()
        assert rule.link.startswith("https://")


def test_the_compliant_baseline_passes_in_production() -> None:
    assert evaluate(_baseline(), production=True) == []


@pytest.mark.parametrize("rule_id", sorted(BREAKS))
def test_each_rule_fires_on_its_own_violation(rule_id: str) -> None:
    templates = copy.deepcopy(_baseline())
    BREAKS[rule_id](templates)
    assert {f.rule.id for f in evaluate(templates, production=True)} == {rule_id.split("/", maxsplit=1)[0]}


def test_production_only_rules_do_not_apply_elsewhere() -> None:
    production_only = {r.id for r in RULES if r.production_only}
    assert production_only == {
        "CloudOps-EKS3",
        "CloudOps-EC2",
        "CloudOps-EC6",
        "CloudOps-RDS3",
        "CloudOps-OBS1",
        "CloudOps-OBS2",
        "CloudOps-LOG1",
    }
    for rule_id in production_only:
        templates = copy.deepcopy(_baseline())
        BREAKS[rule_id](templates)
        assert evaluate(templates, production=False) == []


def test_a_stack_that_breaks_the_rules_fails_synth_with_their_ids(tmp_path: Path) -> None:
    """Through CDK's validation-plugin mechanism, as app.py runs it."""
    from aws_cdk import App, CfnResource, Stack

    from infra.compliance.platform_rules import PlatformRules

    app = App(outdir=str(tmp_path), context=cdk_json_context())
    stack = Stack(app, "bad")
    CfnResource(stack, "Repository", type="AWS::ECR::Repository", properties={"ImageTagMutability": "MUTABLE"})
    CfnResource(
        stack,
        "Database",
        type="AWS::RDS::DBCluster",
        properties={"Engine": "aurora-postgresql", "EngineVersion": "16.6", "MasterUsername": "x"},
    )
    from aws_cdk import Validations

    Validations.of(app).add_plugins(PlatformRules(production=True))
    with pytest.raises(RuntimeError):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text(encoding="utf-8"))
    (ours,) = [p for p in report["pluginReports"] if p["pluginName"] == PLUGIN_NAME]
    fired = {v["ruleName"] for v in ours["violations"]}
    assert fired == {
        "CloudOps-ECR1",
        "CloudOps-ECR2",
        "CloudOps-ECR3",
        "CloudOps-RDS1",
        "CloudOps-RDS2",
        "CloudOps-RDS3",
        "CloudOps-OBS1",
    }
    paths = {c["constructPath"] for v in ours["violations"] for c in v["violatingConstructs"]}
    assert paths == {"bad/Repository", "bad/Database"}


def test_the_platform_passes_and_the_report_has_a_section_for_the_rules(env: Synthesized, tmp_path: Path) -> None:
    from infra.compliance.platform_rules import rules_for
    from infra.compliance.report import build_report, render_markdown

    templates = {
        p.name.removesuffix(".template.json"): json.loads(p.read_text(encoding="utf-8"))
        for p in env.outdir.glob("*.template.json")
    }
    assert evaluate(templates, production=env.settings.production) == []
    report = build_report(
        environment=env.settings.environment,
        validation=env.validation_report(),
        packs=[PLUGIN_NAME],
        acknowledgements=[],
        production=env.settings.production,
        rules=rules_for(production=env.settings.production),
    )
    (section,) = [s for s in report["packs"] if s["pack"] == PLUGIN_NAME]
    assert section["findings"] == []
    assert {r["id"] for r in section["rules"]} == {r.id for r in rules_for(production=env.settings.production)}
    markdown = render_markdown(report)
    assert f"## {PLUGIN_NAME}" in markdown
    assert "CloudOps-EKS5" in markdown
