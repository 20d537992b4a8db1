"""Aurora PostgreSQL and ElastiCache Serverless (Valkey): per environment, and the grants on them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.config.settings import (
    AURORA_POSTGRES_VERSIONS,
    ENVIRONMENTS_DIR,
    SettingsError,
    load_catalogue,
    load_settings,
)
from tests.synth import Synthesized, only, resources, service_log_group

# Renaming either construct would replace the database or the cache: these ids are part of the contract.
AURORA_CLUSTER_ID = "ClusterEB0386A7"
VALKEY_CACHE_ID = "Valkey26DD46EF"


def _db(env: Synthesized) -> dict[str, Any]:
    return dict(env.template("database")["Resources"][AURORA_CLUSTER_ID])


def _cache(env: Synthesized) -> dict[str, Any]:
    return dict(env.template("cache")["Resources"][VALKEY_CACHE_ID])


def _key_of(template: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    key_id = ref["Fn::GetAtt"][0]
    key = template["Resources"][key_id]
    assert key["Type"] == "AWS::KMS::Key"
    return dict(key)


def test_logical_ids_of_the_stateful_resources_are_pinned(env: Synthesized) -> None:
    assert _db(env)["Type"] == "AWS::RDS::DBCluster"
    assert _cache(env)["Type"] == "AWS::ElastiCache::ServerlessCache"


def test_aurora_engine_capacity_and_readers_follow_settings(env: Synthesized) -> None:
    props = _db(env)["Properties"]
    settings = env.settings.database
    assert props["Engine"] == "aurora-postgresql"
    assert props["EngineVersion"] == settings.engine_version
    assert settings.capacity is not None
    assert props["ServerlessV2ScalingConfiguration"] == {
        "MinCapacity": settings.capacity.min_acu,
        "MaxCapacity": settings.capacity.max_acu,
    }
    instances = resources(env.template("database"), "AWS::RDS::DBInstance")
    assert len(instances) == 1 + settings.readers
    for instance in instances.values():
        assert instance["Properties"]["DBInstanceClass"] == "db.serverless"
        assert instance["Properties"]["PubliclyAccessible"] is False
    # Readers scale with the writer (promotion tier 0-1), so a failover lands on a same-size instance.
    assert sorted(i["Properties"]["PromotionTier"] for i in instances.values()) == [0] + [1] * settings.readers


def test_dev_may_auto_pause_and_prod_keeps_a_reader_and_half_an_acu(dev: Synthesized, prod: Synthesized) -> None:
    assert _db(dev)["Properties"]["ServerlessV2ScalingConfiguration"]["MinCapacity"] == 0
    assert _db(prod)["Properties"]["ServerlessV2ScalingConfiguration"]["MinCapacity"] >= 0.5
    assert len(resources(prod.template("database"), "AWS::RDS::DBInstance")) >= 2


def test_aurora_storage_secret_and_insights_use_rotating_customer_keys(env: Synthesized) -> None:
    template = env.template("database")
    props = _db(env)["Properties"]
    assert props["StorageEncrypted"] is True
    for ref in (props["KmsKeyId"], props["MasterUserSecret"]["KmsKeyId"]):
        assert _key_of(template, ref)["Properties"]["EnableKeyRotation"] is True
    assert props["MasterUserSecret"]["KmsKeyId"] != props["KmsKeyId"]
    if env.settings.database.performance_insights:
        assert props["PerformanceInsightsKmsKeyId"] == props["KmsKeyId"]
        for instance in resources(template, "AWS::RDS::DBInstance").values():
            assert instance["Properties"]["PerformanceInsightsKMSKeyId"] == props["KmsKeyId"]


def test_aurora_credentials_are_generated_and_rotated_by_rds_and_iam_auth_is_on(env: Synthesized) -> None:
    props = _db(env)["Properties"]
    assert props["ManageMasterUserPassword"] is True
    assert "MasterUserPassword" not in props
    assert props["EnableIAMDatabaseAuthentication"] is True
    assert not resources(env.template("database"), "AWS::SecretsManager::Secret")


def test_aurora_master_user_is_not_a_well_known_name(env: Synthesized) -> None:
    username = _db(env)["Properties"]["MasterUsername"]
    assert username == "platform_admin"
    assert username not in {"postgres", "admin", "root", "master", "rdsadmin"}


def test_aurora_parameter_group_forces_tls(env: Synthesized) -> None:
    template = env.template("database")
    group = template["Resources"][_db(env)["Properties"]["DBClusterParameterGroupName"]["Ref"]]
    assert group["Properties"]["Parameters"]["rds.force_ssl"] == "1"
    assert group["Properties"]["Parameters"]["ssl_min_protocol_version"] == "TLSv1.2"
    assert group["Properties"]["Family"] == "aurora-postgresql" + env.settings.database.engine_version.split(".")[0]


def test_aurora_logs_go_to_an_encrypted_log_group_with_retention(env: Synthesized) -> None:
    template = env.template("database")
    props = _db(env)["Properties"]
    assert props["EnableCloudwatchLogsExports"] == ["postgresql"]
    calls = service_log_group(template, "PostgresLogGroup")
    name = f"/aws/rds/cluster/{props['DBClusterIdentifier']}/postgresql"
    assert calls.create["parameters"]["logGroupName"] == name
    assert calls.retention["parameters"] == {
        "logGroupName": name,
        "retentionInDays": env.settings.database.log_retention_days,
    }
    key_id = calls.key["parameters"]["kmsKeyId"].removeprefix("<ref:").removesuffix(">")
    assert template["Resources"][key_id]["Type"] == "AWS::KMS::Key"
    assert set(calls.ids) <= set(_db(env)["DependsOn"])


def test_monitoring_and_backups_per_environment(dev: Synthesized, prod: Synthesized) -> None:
    for env in (dev, prod):
        props = _db(env)["Properties"]
        assert props["BackupRetentionPeriod"] == env.settings.database.backup_retention_days
        for instance in resources(env.template("database"), "AWS::RDS::DBInstance").values():
            assert instance["Properties"]["MonitoringInterval"] == env.settings.database.monitoring_interval_seconds
    assert _db(prod)["Properties"]["BackupRetentionPeriod"] >= 14
    assert _db(prod)["Properties"]["PerformanceInsightsEnabled"] is True
    assert "PerformanceInsightsEnabled" not in _db(dev)["Properties"]


def test_prod_database_cannot_be_lost_by_a_mistaken_destroy(prod: Synthesized) -> None:
    cluster = _db(prod)
    assert cluster["Properties"]["DeletionProtection"] is True
    assert cluster["DeletionPolicy"] == cluster["UpdateReplacePolicy"] == "Snapshot"
    assert cluster["Properties"]["DeleteAutomatedBackups"] is False
    template = prod.template("database")
    for key in resources(template, "AWS::KMS::Key").values():
        assert key["DeletionPolicy"] == "Retain"
    # An AWS Backup plan selects the cluster; its vault and key outlive the stack.
    vault = only(template, "AWS::Backup::BackupVault")
    assert vault["DeletionPolicy"] == "Retain"
    assert _key_of(template, vault["Properties"]["EncryptionKeyArn"])["DeletionPolicy"] == "Retain"
    selection = only(template, "AWS::Backup::BackupSelection")["Properties"]["BackupSelection"]
    assert AURORA_CLUSTER_ID in json.dumps(selection["Resources"])
    rule = only(template, "AWS::Backup::BackupPlan")["Properties"]["BackupPlan"]["BackupPlanRule"][0]
    assert rule["Lifecycle"]["DeleteAfterDays"] >= 35
    stacks = prod.manifest()["artifacts"]
    for stack in ("database", "cache"):
        assert stacks[f"cloud-ops-prod-{stack}"]["properties"]["terminationProtection"] is True


def test_dev_database_is_cheap_and_destroyable(dev: Synthesized) -> None:
    cluster = _db(dev)
    assert cluster["Properties"]["DeletionProtection"] is False
    assert cluster["DeletionPolicy"] == "Delete"
    assert not resources(dev.template("database"), "AWS::Backup::BackupPlan")
    assert dev.manifest()["artifacts"]["cloud-ops-dev-database"]["properties"].get("terminationProtection") is not True


def _ingress(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [r["Properties"] for r in resources(template, "AWS::EC2::SecurityGroupIngress").values()]


@pytest.mark.parametrize(("stack", "ports"), [("database", [5432]), ("cache", [6379, 6380])])
def test_data_stores_admit_only_the_workload_security_group_on_their_port(
    env: Synthesized, stack: str, ports: list[int]
) -> None:
    """The cache is Serverless in both environments: 6379, and 6380 for reads from replicas."""
    template = env.template(stack)
    # The data store's group (the database stack also has its functions' groups, which admit nothing).
    (group,) = [
        g
        for k, g in resources(template, "AWS::EC2::SecurityGroup").items()
        if not k.startswith(("AWS679f53fac", "UsersSecurityGroup"))
    ]
    assert "SecurityGroupIngress" not in group["Properties"]
    # No egress: the "disallow all" placeholder CDK writes when allow_all_outbound is False.
    assert group["Properties"]["SecurityGroupEgress"][0]["CidrIp"] == "255.255.255.255/32"
    rules = _ingress(template)
    assert sorted((r["IpProtocol"], r["FromPort"], r["ToPort"]) for r in rules) == [("tcp", p, p) for p in ports]
    for rule in rules:
        source = rule["SourceSecurityGroupId"]["Fn::GetStackOutput"]
        assert source["StackName"] == f"{env.settings.stack_prefix}-network"
        assert "WorkloadSecurityGroup" in source["OutputName"]


def test_every_node_carries_the_workload_security_group_and_the_cluster_one(env: Synthesized) -> None:
    template = env.template("eks")
    data = only(template, "AWS::EC2::LaunchTemplate")["Properties"]["LaunchTemplateData"]
    workload, cluster = data["SecurityGroupIds"]
    assert "WorkloadSecurityGroup" in workload["Fn::GetStackOutput"]["OutputName"]
    assert cluster == {"Fn::GetAtt": [next(iter(resources(template, "AWS::EKS::Cluster"))), "ClusterSecurityGroupId"]}


def test_data_stores_live_in_the_isolated_data_subnets(env: Synthesized) -> None:
    zones = len(env.settings.availability_zones)
    subnet_group = only(env.template("database"), "AWS::RDS::DBSubnetGroup")["Properties"]["SubnetIds"]
    cache_subnets = _cache(env)["Properties"]["SubnetIds"]
    for subnets in (subnet_group, cache_subnets):
        assert len(subnets) == zones
        assert all("dataSubnet" in s["Fn::GetStackOutput"]["OutputName"] for s in subnets)


def test_cache_is_encrypted_limited_and_snapshotted_per_settings(env: Synthesized) -> None:
    template = env.template("cache")
    props = _cache(env)["Properties"]
    settings = env.settings.cache
    assert props["Engine"] == "valkey"
    assert _key_of(template, props["KmsKeyId"])["Properties"]["EnableKeyRotation"] is True
    assert props["SnapshotRetentionLimit"] == settings.snapshot_retention_days
    assert props["DailySnapshotTime"] == settings.daily_snapshot_time
    assert props["CacheUsageLimits"] == {
        "DataStorage": {"Maximum": settings.max_data_storage_gb, "Unit": "GB"},
        "ECPUPerSecond": {"Maximum": settings.max_ecpu_per_second},
    }
    assert props["SecurityGroupIds"] == [
        {"Fn::GetAtt": [next(iter(resources(template, "AWS::EC2::SecurityGroup"))), "GroupId"]}
    ]
    expected = "Retain" if env.settings.retain_data else "Delete"
    assert _cache(env)["DeletionPolicy"] == expected


def test_prod_keeps_a_week_of_cache_snapshots(prod: Synthesized) -> None:
    assert _cache(prod)["Properties"]["SnapshotRetentionLimit"] >= 7


def test_only_iam_users_can_connect_to_the_cache(env: Synthesized) -> None:
    template = env.template("cache")
    users = {u["Properties"]["UserId"]: u["Properties"] for u in resources(template, "AWS::ElastiCache::User").values()}
    group = only(template, "AWS::ElastiCache::UserGroup")["Properties"]
    assert sorted(group["UserIds"]) == sorted(users)
    assert _cache(env)["Properties"]["UserGroupId"] == group["UserGroupId"]
    (default,) = [u for u in users.values() if u["UserName"] == "default"]
    assert default["AccessString"] == "off -@all"
    clients = [s.name for s in env.settings.services if "cache" in s.uses]
    prefix = f"{env.settings.stack_prefix}-cache"
    for client in clients:
        user = users[f"{prefix}-{client}"]
        assert user["AuthenticationMode"] == {"Type": "iam"}
        assert user["UserName"] == user["UserId"]
        assert user["AccessString"].startswith(f"on ~{client}:* &{client}:* ")
    assert len(users) == len(clients) + 1


def _grants(env: Synthesized) -> dict[str, list[dict[str, Any]]]:
    """Service role logical id -> the statements attached to it in the services stacks."""
    out: dict[str, list[dict[str, Any]]] = {}
    for template in env.shards("services").values():
        for policy in resources(template, "AWS::IAM::ManagedPolicy").values():
            (role,) = policy["Properties"]["Roles"]
            out[role["Ref"]] = policy["Properties"]["PolicyDocument"]["Statement"]
    return out


def test_services_get_exactly_the_grants_their_catalogue_entry_declares(env: Synthesized) -> None:
    grants = _grants(env)
    prefix = env.settings.stack_prefix
    for service in env.settings.services:
        matching = [v for k, v in grants.items() if k == f"Role{service.name}"]
        if not service.uses:
            assert matching == [], service.name
            continue
        (statements,) = matching
        by_sid = {s["Sid"]: s for s in statements}
        expected = set()
        if "database" in service.uses:
            expected.add("ConnectAsItsOwnDatabaseUser")
            rds = by_sid["ConnectAsItsOwnDatabaseUser"]
            assert rds["Action"] == "rds-db:connect"
            # arn:aws:rds-db:<region>:<account>:dbuser:<cluster resource id>/<service>
            region = env.settings.region
            head, account, dbuser, resource_id, user = rds["Resource"]["Fn::Join"][1]
            assert (head, account, dbuser, user) == (
                f"arn:aws:rds-db:{region}:",
                {"Ref": "AWS::AccountId"},
                ":dbuser:",
                f"/{service.name}",
            )
            assert "DBClusterResourceId" in resource_id["Fn::GetStackOutput"]["OutputName"]
        if "cache" in service.uses:
            expected.add("ConnectAsItsOwnCacheUser")
            cache = by_sid["ConnectAsItsOwnCacheUser"]
            assert cache["Action"] == "elasticache:Connect"
            cache_arn, user_arn = cache["Resource"]
            assert "Valkey" in cache_arn["Fn::GetStackOutput"]["OutputName"]
            # arn:aws:elasticache:<region>:<account>:user:<user id>
            assert user_arn["Fn::Join"][1] == [
                f"arn:aws:elasticache:{env.settings.region}:",
                {"Ref": "AWS::AccountId"},
                f":user:{prefix}-cache-{service.name}",
            ]
        assert set(by_sid) == expected
        assert "*" not in json.dumps(statements)


def test_database_and_cache_do_not_wait_for_the_cluster(env: Synthesized) -> None:
    artifacts = env.manifest()["artifacts"]
    prefix = env.settings.stack_prefix

    def deps(stack: str) -> set[str]:
        return {d for d in artifacts[f"{prefix}-{stack}"].get("dependencies", []) if not d.endswith(".assets")}

    assert deps("database") == deps("cache") == deps("eks") == {f"{prefix}-network"}


def test_outputs_name_endpoints_ports_and_the_secret(env: Synthesized) -> None:
    db = env.template("database")["Outputs"]
    assert {"Endpoint", "ReaderEndpoint", "Port", "MasterSecretArn"} <= set(db)
    assert db["MasterSecretArn"]["Value"] == {"Fn::GetAtt": [AURORA_CLUSTER_ID, "MasterUserSecret.SecretArn"]}
    cache = env.template("cache")["Outputs"]
    assert {"Endpoint", "Port"} <= set(cache)
    assert "TLS" in cache["Port"]["Description"]


def test_accepted_engine_versions_are_valid_and_not_deprecated_for_cfn_lint() -> None:
    import importlib.util

    # The package's data files, found without importing cfnlint (a second-long import).
    spec = importlib.util.find_spec("cfnlint")
    assert spec is not None
    assert spec.origin is not None
    data = Path(spec.origin).parent / "data" / "schemas" / "extensions" / "aws_rds_dbcluster"

    def aurora_postgres(name: str) -> set[str]:
        schema = json.loads((data / name).read_text(encoding="utf-8"))
        found: set[str] = set()
        for clause in schema.get("allOf", []):
            props = clause.get("if", {}).get("properties", {})
            if props.get("Engine", {}).get("const") == "aurora-postgresql":
                found |= set(props.get("EngineVersion", {}).get("enum", []))
                then = clause.get("then")
                if isinstance(then, dict):
                    found |= set(then.get("properties", {}).get("EngineVersion", {}).get("enum", []))
        return found

    deprecated = aurora_postgres("engine_version_deprecated.json")
    assert "16.6" in deprecated  # the data is what we think it is
    assert not set(AURORA_POSTGRES_VERSIONS) & deprecated
    valid = aurora_postgres("engine_version.json")
    assert set(AURORA_POSTGRES_VERSIONS) <= valid


def _with(tmp_path: Path, base: str = "dev", **sections: dict[str, Any]) -> None:
    data = yaml.safe_load((ENVIRONMENTS_DIR / f"{base}.yaml").read_text(encoding="utf-8"))
    for section, changes in sections.items():
        data[section] = {**data[section], **changes}
    (tmp_path / "qa.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    load_settings("qa", directory=tmp_path)


@pytest.mark.parametrize(
    ("base", "sections", "message"),
    [
        ("dev", {"database": {"capacity": {"min_acu": 0.3, "max_acu": 4}}}, r"between 0 and 256 ACUs in steps of 0.5"),
        (
            "dev",
            {"database": {"capacity": {"min_acu": 4, "max_acu": 2}}},
            r"max_acu = 2.0 must be at least 1 and at least min_acu",
        ),
        (
            "prod",
            {"database": {"capacity": {"min_acu": 0, "max_acu": 4}}},
            r"min_acu = 0.0 is not allowed in production",
        ),
        (
            "dev",
            {"database": {"engine_version": "16.6"}},
            r"'database.engine_version' = '16.6' is not an accepted .* allowed: 16.9",
        ),
        (
            "dev",
            {"database": {"backup_retention_days": 36}},
            r"'database.backup_retention_days' = 36 .*less than or equal to 35",
        ),
        (
            "dev",
            {"database": {"backup_retention_days": 0}},
            r"'database.backup_retention_days' = 0 .*greater than or equal to 1",
        ),
        (
            "prod",
            {"database": {"backup_retention_days": 7}},
            r"backup_retention_days = 7 is below the production minimum",
        ),
        ("prod", {"database": {"readers": 0}}, r"database.readers = 0: production needs a reader"),
        (
            "dev",
            {"database": {"instance_class": "r7g.large"}},
            r"set exactly one of database.capacity .* or database.instance_class",
        ),
        (
            "dev",
            {"cache": {"max_data_storage_gb": 6000}},
            r"'cache.max_data_storage_gb' = 6000 .*less than or equal to 5000",
        ),
        (
            "dev",
            {"cache": {"max_ecpu_per_second": 500}},
            r"'cache.max_ecpu_per_second' = 500 .*greater than or equal to 1000",
        ),
        (
            "dev",
            {"cache": {"daily_snapshot_time": "25:00"}},
            r"'cache.daily_snapshot_time' = '25:00' must be a UTC time HH:MM",
        ),
        (
            "prod",
            {"cache": {"snapshot_retention_days": 3}},
            r"snapshot_retention_days = 3 is below the production minimum",
        ),
    ],
)
def test_bad_data_settings_are_rejected_with_what_is_allowed(
    tmp_path: Path, base: str, sections: dict[str, dict[str, Any]], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        _with(tmp_path, base, **sections)


def test_a_service_may_only_use_known_data_stores(tmp_path: Path) -> None:
    data = yaml.safe_load((ENVIRONMENTS_DIR / "dev.yaml").read_text(encoding="utf-8"))
    data["services"] = load_catalogue()
    data["services"][0]["uses"] = ["database", "queue"]
    (tmp_path / "qa.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(
        SettingsError, match=r"'services\[0\].uses' = .* unknown data store 'queue'; allowed: database, cache"
    ):
        load_settings("qa", directory=tmp_path)


def test_production_must_retain_data(tmp_path: Path) -> None:
    data = yaml.safe_load((ENVIRONMENTS_DIR / "prod.yaml").read_text(encoding="utf-8"))
    data["retain_data"] = False
    (tmp_path / "qa.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(SettingsError, match=r"retain_data = False is not allowed in production"):
        load_settings("qa", directory=tmp_path)


def test_provisioned_instances_replace_serverless_when_an_instance_class_is_set(tmp_path: Path) -> None:
    from aws_cdk import App, Environment
    from aws_cdk.assertions import Template

    from infra.stacks.database import DatabaseStack
    from infra.stacks.network import NetworkStack

    settings = load_settings("prod")
    database = settings.database.model_copy(update={"capacity": None, "instance_class": "r7g.large"})
    app = App(outdir=str(tmp_path))
    env = Environment(region=settings.region)
    network = NetworkStack(
        app,
        "n",
        env=env,
        zones=settings.availability_zones,
        network=settings.network,
        name_prefix="t",
        retain_data=False,
    )
    stack = DatabaseStack(
        app,
        "d",
        env=env,
        vpc=network.vpc,
        workload_security_group=network.workload_security_group,
        zones=settings.availability_zones,
        database=database,
        name_prefix="t",
        retain_data=True,
        users=["api"],
    )
    template = Template.from_stack(stack).to_json()
    instances = [r for r in template["Resources"].values() if r["Type"] == "AWS::RDS::DBInstance"]
    assert [i["Properties"]["DBInstanceClass"] for i in instances] == ["db.r7g.large"] * (1 + database.readers)
    cluster = next(r for r in template["Resources"].values() if r["Type"] == "AWS::RDS::DBCluster")
    assert "ServerlessV2ScalingConfiguration" not in cluster["Properties"]


def test_a_service_may_not_list_a_data_store_twice(tmp_path: Path) -> None:
    data = yaml.safe_load((ENVIRONMENTS_DIR / "dev.yaml").read_text(encoding="utf-8"))
    data["services"] = load_catalogue()
    data["services"][0]["uses"] = ["cache", "cache"]
    (tmp_path / "qa.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(SettingsError, match=r"'services\[0\].uses' = \['cache', 'cache'\] must not list the same data"):
        load_settings("qa", directory=tmp_path)
