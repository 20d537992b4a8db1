"""Aurora PostgreSQL and ElastiCache Serverless (Valkey): per environment, and the grants on them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from infra.config.settings import AURORA_POSTGRES_VERSIONS, SettingsError
from infra.constructs.valkey_cache import SERVERLESS_READ_PORT, VALKEY_PORT
from infra.stacks.database import POSTGRES_PORT
from tests.projects import EXAMPLES, example_settings, settings_of
from tests.synth import Synthesized, deleted, kept, only, resources, service_log_group, text

# Renaming the construct of a data store would replace it: these ids are part of the contract.
AURORA_CLUSTER_ID = "ClusterEB0386A7"
CACHE_IDS = {"serverless": "Valkey26DD46EF", "replication-group": "ValkeyReplicationGroup77C9E011"}
CACHE_TYPES = {
    "serverless": "AWS::ElastiCache::ServerlessCache",
    "replication-group": "AWS::ElastiCache::ReplicationGroup",
}


def _db(env: Synthesized) -> dict[str, Any]:
    return dict(env.template("database")["Resources"][AURORA_CLUSTER_ID])


def _cache(env: Synthesized) -> dict[str, Any]:
    return dict(env.template("cache")["Resources"][CACHE_IDS[env.settings.cache.kind]])


def _global_primary(env: Synthesized) -> bool:
    """The primary of an Aurora global database (an environment of several regions, setting `global`)."""
    assert env.global_primary is bool(env.settings.other_regions and env.settings.database.other_regions == "global")
    return env.global_primary


def _key_of(template: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    key_id = ref["Fn::GetAtt"][0]
    key = template["Resources"][key_id]
    assert key["Type"] == "AWS::KMS::Key"
    return dict(key)


def test_logical_ids_of_the_stateful_resources_are_pinned(env: Synthesized) -> None:
    assert _db(env)["Type"] == "AWS::RDS::DBCluster"
    assert _cache(env)["Type"] == CACHE_TYPES[env.settings.cache.kind]


def test_aurora_engine_capacity_and_readers_follow_settings(env: Synthesized) -> None:
    props = _db(env)["Properties"]
    settings = env.settings.database
    assert props["Engine"] == "aurora-postgresql"
    assert props["EngineVersion"] == settings.engine_version
    if settings.capacity is not None:
        assert props["ServerlessV2ScalingConfiguration"] == {
            "MinCapacity": settings.capacity.min_acu,
            "MaxCapacity": settings.capacity.max_acu,
        }
        instance_class = "db.serverless"
    else:
        assert "ServerlessV2ScalingConfiguration" not in props
        instance_class = "db." + (settings.instance_class or "").removeprefix("db.")
    instances = resources(env.template("database"), "AWS::RDS::DBInstance")
    assert len(instances) == 1 + settings.readers
    for instance in instances.values():
        assert instance["Properties"]["DBInstanceClass"] == instance_class
        assert instance["Properties"]["PubliclyAccessible"] is False
    # Readers scale with the writer (promotion tier 0-1), so a failover lands on a same-size instance.
    if settings.capacity is not None:
        assert sorted(i["Properties"]["PromotionTier"] for i in instances.values()) == [0] + [1] * settings.readers


def test_production_keeps_a_reader_and_never_pauses(env: Synthesized) -> None:
    if not env.settings.production:
        return
    assert len(resources(env.template("database"), "AWS::RDS::DBInstance")) >= 2
    scaling = _db(env)["Properties"].get("ServerlessV2ScalingConfiguration")
    if scaling is not None:
        assert scaling["MinCapacity"] >= 0.5


def test_aurora_storage_secret_and_insights_use_rotating_customer_keys(env: Synthesized) -> None:
    template = env.template("database")
    props = _db(env)["Properties"]
    assert props["StorageEncrypted"] is True
    secret_key = (
        only(template, "AWS::SecretsManager::Secret")["Properties"]["KmsKeyId"]
        if _global_primary(env)
        else props["MasterUserSecret"]["KmsKeyId"]
    )
    for ref in (props["KmsKeyId"], secret_key):
        assert _key_of(template, ref)["Properties"]["EnableKeyRotation"] is True
    assert secret_key != props["KmsKeyId"]
    if env.settings.database.performance_insights:
        assert props["PerformanceInsightsKmsKeyId"] == props["KmsKeyId"]
        for instance in resources(template, "AWS::RDS::DBInstance").values():
            assert instance["Properties"]["PerformanceInsightsKMSKeyId"] == props["KmsKeyId"]


def test_aurora_credentials_are_generated_and_rotated_and_iam_auth_is_on(env: Synthesized) -> None:
    """RDS manages and rotates the master password; a global database's primary cannot have that (Aurora
    user guide), so there Secrets Manager generates it and rotates it every 30 days."""
    from infra.stacks.database import MASTER_PASSWORD_ROTATION_DAYS

    props = _db(env)["Properties"]
    template = env.template("database")
    assert props["EnableIAMDatabaseAuthentication"] is True
    if not _global_primary(env):
        assert props["ManageMasterUserPassword"] is True
        assert "MasterUserPassword" not in props
        assert not resources(template, "AWS::SecretsManager::Secret")
        return
    assert not props.get("ManageMasterUserPassword")
    assert "resolve:secretsmanager" in json.dumps(props["MasterUserPassword"])
    if env.settings.writer_region != env.settings.region:  # paused while the writer is away (test_switchover)
        assert not resources(template, "AWS::SecretsManager::RotationSchedule")
        return
    schedule = only(template, "AWS::SecretsManager::RotationSchedule")["Properties"]
    assert schedule["RotationRules"]["ScheduleExpression"] == f"rate({MASTER_PASSWORD_ROTATION_DAYS} days)"


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


def test_aurora_logs_go_to_encrypted_log_groups_with_retention(env: Synthesized) -> None:
    """The PostgreSQL log and the IAM authentication errors (the services sign in with IAM only), each into
    a group the stack creates first, under a key of its own."""
    from infra.stacks.database import LOG_EXPORTS

    template = env.template("database")
    props = _db(env)["Properties"]
    assert props["EnableCloudwatchLogsExports"] == ["postgresql", "iam-db-auth-error"]
    assert [log_type for log_type, *_ in LOG_EXPORTS] == props["EnableCloudwatchLogsExports"]
    keys = set()
    for log_type, construct_id, *_ in LOG_EXPORTS:
        calls = service_log_group(template, construct_id)
        name = f"/aws/rds/cluster/{props['DBClusterIdentifier']}/{log_type}"
        assert calls.create["parameters"]["logGroupName"] == name
        assert calls.retention["parameters"] == {
            "logGroupName": name,
            "retentionInDays": env.settings.database.log_retention_days,
        }
        key_id = calls.key["parameters"]["kmsKeyId"].removeprefix("<ref:").removesuffix(">")
        assert template["Resources"][key_id]["Type"] == "AWS::KMS::Key"
        keys.add(key_id)
        assert set(calls.ids) <= set(_db(env)["DependsOn"])
    assert len(keys) == len(LOG_EXPORTS)


def test_monitoring_and_backups_follow_settings(env: Synthesized) -> None:
    props = _db(env)["Properties"]
    database = env.settings.database
    assert props["BackupRetentionPeriod"] == database.backup_retention_days
    for instance in resources(env.template("database"), "AWS::RDS::DBInstance").values():
        assert instance["Properties"]["MonitoringInterval"] == database.monitoring_interval_seconds
    assert props.get("PerformanceInsightsEnabled", False) is database.performance_insights
    if env.settings.production:
        assert props["BackupRetentionPeriod"] >= 14


def test_a_database_that_retains_data_cannot_be_lost_by_a_mistaken_destroy(env: Synthesized) -> None:
    if not env.settings.retain_data:
        return
    cluster = _db(env)
    assert cluster["Properties"]["DeletionProtection"] is True
    assert cluster["DeletionPolicy"] == cluster["UpdateReplacePolicy"] == "Snapshot"
    assert cluster["Properties"]["DeleteAutomatedBackups"] is False
    template = env.template("database")
    for key in resources(template, "AWS::KMS::Key").values():
        assert kept(key)
    # An AWS Backup plan selects the cluster; its vault and key outlive the stack.
    vault = only(template, "AWS::Backup::BackupVault")
    assert kept(vault)
    assert kept(_key_of(template, vault["Properties"]["EncryptionKeyArn"]))
    selection = only(template, "AWS::Backup::BackupSelection")["Properties"]["BackupSelection"]
    assert AURORA_CLUSTER_ID in json.dumps(selection["Resources"])
    rule = only(template, "AWS::Backup::BackupPlan")["Properties"]["BackupPlan"]["BackupPlanRule"][0]
    assert rule["Lifecycle"]["DeleteAfterDays"] >= 35
    stacks = env.manifest()["artifacts"]
    for stack in ("database", "cache"):
        assert stacks[f"{env.settings.stack_prefix}-{stack}"]["properties"]["terminationProtection"] is True


def test_a_database_that_does_not_retain_data_is_destroyable(env: Synthesized) -> None:
    if env.settings.retain_data:
        return
    cluster = _db(env)
    assert cluster["Properties"]["DeletionProtection"] is False
    assert cluster["DeletionPolicy"] == "Delete"
    assert not resources(env.template("database"), "AWS::Backup::BackupPlan")
    artifact = env.manifest()["artifacts"][f"{env.settings.stack_prefix}-database"]
    assert artifact["properties"].get("terminationProtection") is not True


def _ingress(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [r["Properties"] for r in resources(template, "AWS::EC2::SecurityGroupIngress").values()]


@pytest.mark.parametrize("stack", ["database", "cache"])
def test_data_stores_admit_only_the_workload_security_group_on_their_port(env: Synthesized, stack: str) -> None:
    """PostgreSQL on 5432; Valkey on 6379, and a serverless cache also on 6380 (reads from replicas)."""
    ports = [POSTGRES_PORT]
    if stack == "cache":
        ports = [VALKEY_PORT, SERVERLESS_READ_PORT] if env.settings.cache.kind == "serverless" else [VALKEY_PORT]
    template = env.template(stack)
    # The data store's group (the database stack also has its functions' groups, which admit nothing).
    (group,) = [
        g
        for k, g in resources(template, "AWS::EC2::SecurityGroup").items()
        if not k.startswith(("AWS679f53fac", "UsersSecurityGroup", "MasterRotation"))
    ]
    assert "SecurityGroupIngress" not in group["Properties"]
    # No egress: the "disallow all" placeholder CDK writes when allow_all_outbound is False.
    assert group["Properties"]["SecurityGroupEgress"][0]["CidrIp"] == "255.255.255.255/32"
    rules = [r for r in _ingress(template) if "WorkloadSecurityGroup" in json.dumps(r["SourceSecurityGroupId"])]
    assert sorted((r["IpProtocol"], r["FromPort"], r["ToPort"]) for r in rules) == [("tcp", p, p) for p in ports]
    for rule in rules:
        source = rule["SourceSecurityGroupId"]["Fn::GetStackOutput"]
        assert source["StackName"] == f"{env.settings.stack_prefix}-network"
    # Anything else admitted is the platform's own function (a global primary's password rotation).
    others = [r for r in _ingress(template) if r not in rules]
    assert all("Fn::GetAtt" in r["SourceSecurityGroupId"] for r in others)


def test_every_node_carries_the_workload_security_group_and_the_cluster_one(env: Synthesized) -> None:
    template = env.template("eks")
    data = only(template, "AWS::EC2::LaunchTemplate")["Properties"]["LaunchTemplateData"]
    workload, cluster = data["SecurityGroupIds"]
    assert "WorkloadSecurityGroup" in workload["Fn::GetStackOutput"]["OutputName"]
    assert cluster == {"Fn::GetAtt": [next(iter(resources(template, "AWS::EKS::Cluster"))), "ClusterSecurityGroupId"]}


def test_data_stores_live_in_the_isolated_data_subnets(env: Synthesized) -> None:
    zones = len(env.settings.availability_zones)
    subnet_group = only(env.template("database"), "AWS::RDS::DBSubnetGroup")["Properties"]["SubnetIds"]
    cache = _cache(env)["Properties"]
    cache_subnets = (
        cache["SubnetIds"]
        if env.settings.cache.kind == "serverless"
        else env.template("cache")["Resources"][cache["CacheSubnetGroupName"]["Ref"]]["Properties"]["SubnetIds"]
    )
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
    if settings.kind == "serverless":
        assert props["DailySnapshotTime"] == settings.daily_snapshot_time
        assert props["CacheUsageLimits"] == {
            "DataStorage": {"Maximum": settings.max_data_storage_gb, "Unit": "GB"},
            "ECPUPerSecond": {"Maximum": settings.max_ecpu_per_second},
        }
    else:
        hour = int(settings.daily_snapshot_time[:2])
        assert (
            props["SnapshotWindow"]
            == f"{settings.daily_snapshot_time}-{(hour + 1) % 24:02d}{settings.daily_snapshot_time[2:]}"
        )
        assert props["CacheNodeType"] == settings.node_type
    (group,) = props["SecurityGroupIds"]
    assert template["Resources"][group["Fn::GetAtt"][0]]["Type"] == "AWS::EC2::SecurityGroup"
    assert (kept if env.settings.retain_data else deleted)(_cache(env))
    if env.settings.production:
        assert props["SnapshotRetentionLimit"] >= (7 if settings.kind == "serverless" else 15)


def test_only_iam_users_can_connect_to_the_cache(env: Synthesized) -> None:
    template = env.template("cache")
    users = {u["Properties"]["UserId"]: u["Properties"] for u in resources(template, "AWS::ElastiCache::User").values()}
    group = only(template, "AWS::ElastiCache::UserGroup")["Properties"]
    assert sorted(group["UserIds"]) == sorted(users)
    props = _cache(env)["Properties"]
    assert props.get("UserGroupIds", [props.get("UserGroupId")]) == [group["UserGroupId"]]
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
    region, account = env.settings.region, env.settings.account or "<AWS::AccountId>"
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
            assert re.fullmatch(
                rf"arn:aws:rds-db:{region}:{account}:dbuser:<{prefix}-database/\w*DBClusterResourceId\w*>/{service.name}",
                text(rds["Resource"]),
            ), text(rds["Resource"])
        if "cache" in service.uses:
            expected.add("ConnectAsItsOwnCacheUser")
            cache = by_sid["ConnectAsItsOwnCacheUser"]
            assert cache["Action"] == "elasticache:Connect"
            cache_arn, user_arn = cache["Resource"]
            if env.settings.cache.kind == "serverless":
                assert "Valkey" in cache_arn["Fn::GetStackOutput"]["OutputName"]
            else:
                mode = "cm" if env.settings.cache.cluster_mode else "rg"
                assert (
                    text(cache_arn) == f"arn:aws:elasticache:{region}:{account}:replicationgroup:{prefix}-cache-{mode}"
                )
            # arn:aws:elasticache:<region>:<account>:user:<user id>
            assert text(user_arn) == f"arn:aws:elasticache:{region}:{account}:user:{prefix}-cache-{service.name}"
        assert set(by_sid) == expected
        assert "*" not in json.dumps(statements)


def test_database_and_cache_do_not_wait_for_the_cluster(env: Synthesized) -> None:
    artifacts = env.manifest()["artifacts"]
    prefix = env.settings.stack_prefix

    def deps(stack: str) -> set[str]:
        return {d for d in artifacts[f"{prefix}-{stack}"].get("dependencies", []) if not d.endswith(".assets")}

    assert deps("cache") == deps("eks") == {f"{prefix}-network"}
    # A global database's primary also waits for the other regions' networks: their keys encrypt the
    # master secret's copies there.
    others = {f"{env.settings.in_region(r).stack_prefix}-network" for r in env.settings.other_regions}
    assert deps("database") == {f"{prefix}-network"} | (others if env.global_primary else set())


def test_outputs_name_endpoints_ports_and_the_secret(env: Synthesized) -> None:
    db = env.template("database")["Outputs"]
    assert {"Endpoint", "ReaderEndpoint", "Port", "MasterSecretArn"} <= set(db)
    if _global_primary(env):
        (attachment,) = resources(env.template("database"), "AWS::SecretsManager::SecretTargetAttachment")
        assert db["MasterSecretArn"]["Value"] == {"Ref": attachment}
    else:
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


def _with(tmp_path: Path, base: str = "sandbox", **sections: dict[str, Any]) -> None:
    example_settings(tmp_path, base, sections)


@pytest.mark.parametrize(
    ("base", "sections", "message"),
    [
        (
            "sandbox",
            {"database": {"capacity": {"min_acu": 0.3, "max_acu": 4}}},
            r"between 0 and 256 ACUs in steps of 0.5",
        ),
        (
            "sandbox",
            {"database": {"capacity": {"min_acu": 4, "max_acu": 2}}},
            r"max_acu = 2.0 must be at least 1 and at least min_acu",
        ),
        (
            "live",
            {"database": {"capacity": {"min_acu": 0, "max_acu": 4}}},
            r"min_acu = 0.0 is not allowed in production",
        ),
        (
            "sandbox",
            {"database": {"engine_version": "16.6"}},
            r"'database.engine_version' = '16.6' is not an accepted .* allowed: 16.9",
        ),
        (
            "sandbox",
            {"database": {"backup_retention_days": 36}},
            r"'database.backup_retention_days' = 36 .*less than or equal to 35",
        ),
        (
            "sandbox",
            {"database": {"backup_retention_days": 0}},
            r"'database.backup_retention_days' = 0 .*greater than or equal to 1",
        ),
        (
            "live",
            {"database": {"backup_retention_days": 7}},
            r"backup_retention_days = 7 is below the production minimum",
        ),
        ("live", {"database": {"readers": 0}}, r"database.readers = 0: production needs a reader"),
        (
            "sandbox",
            {"database": {"instance_class": "r7g.large"}},
            r"set exactly one of database.capacity .* or database.instance_class",
        ),
        (
            "sandbox",
            {"cache": {"max_data_storage_gb": 6000}},
            r"'cache.max_data_storage_gb' = 6000 .*less than or equal to 5000",
        ),
        (
            "sandbox",
            {"cache": {"max_ecpu_per_second": 500}},
            r"'cache.max_ecpu_per_second' = 500 .*greater than or equal to 1000",
        ),
        (
            "sandbox",
            {"cache": {"daily_snapshot_time": "25:00"}},
            r"'cache.daily_snapshot_time' = '25:00' must be a UTC time HH:MM",
        ),
        (
            "live",
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
    services = [{"name": "orders", "ingress": True, "uses": ["database", "queue"]}]
    with pytest.raises(
        SettingsError, match=r"'services\[0\].uses' = .* unknown data store 'queue'; allowed: database, cache"
    ):
        example_settings(tmp_path, "sandbox", {"services": services})


def test_production_must_retain_data(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"retain_data = False is not allowed in production"):
        example_settings(tmp_path, "live", {"retain_data": False})


def test_provisioned_instances_replace_serverless_when_an_instance_class_is_set(tmp_path: Path) -> None:
    from aws_cdk import App, Environment
    from aws_cdk.assertions import Template

    from infra.stacks.database import DatabaseStack
    from infra.stacks.network import NetworkStack

    settings = settings_of(EXAMPLES, "live")
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
        function_log_retention_days=settings.observability.function_log_retention_days,
    )
    template = Template.from_stack(stack).to_json()
    instances = [r for r in template["Resources"].values() if r["Type"] == "AWS::RDS::DBInstance"]
    assert [i["Properties"]["DBInstanceClass"] for i in instances] == ["db.r7g.large"] * (1 + database.readers)
    cluster = next(r for r in template["Resources"].values() if r["Type"] == "AWS::RDS::DBCluster")
    assert "ServerlessV2ScalingConfiguration" not in cluster["Properties"]


def test_a_service_may_not_list_a_data_store_twice(tmp_path: Path) -> None:
    services = [{"name": "orders", "ingress": True, "uses": ["cache", "cache"]}]
    with pytest.raises(SettingsError, match=r"'services\[0\].uses' = \['cache', 'cache'\] must not list the same data"):
        example_settings(tmp_path, "sandbox", {"services": services})
