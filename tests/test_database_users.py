"""Database users created by the platform (ADR 0009): the handler's behaviour, and what each env deploys."""

from __future__ import annotations

from typing import Any

import pytest

from infra.constructs import database_users_handler as handler
from infra.constructs.database_users import HANDLER_FILE, INLINE_CODE_LIMIT, RESOURCE_TYPE
from tests.synth import Synthesized, deleted, kept, resources, text


class FakeDataApi:
    """A PostgreSQL that knows which roles exist, recording every statement."""

    def __init__(self, roles: set[str] | None = None, resuming: int = 0) -> None:
        self.roles = set(roles or ())
        self.statements: list[str] = []
        self.resuming = resuming

    def execute(self, sql: str, parameters: list[dict[str, Any]]) -> dict[str, Any]:
        self.statements.append(sql)
        if sql.startswith("SELECT 1 FROM pg_roles"):
            name = parameters[0]["value"]["stringValue"]
            return {"records": [[{"longValue": 1}]] if name in self.roles else []}
        if sql.startswith("CREATE ROLE"):
            self.roles.add(sql.split('"')[1])
        return {}


def _event(request: str, user: str = "billing-api") -> dict[str, Any]:
    return {
        "RequestType": request,
        "ResourceProperties": {"User": user, "Database": "app", "ClusterArn": "arn:c", "SecretArn": "arn:s"},
    }


def test_create_makes_the_role_with_iam_auth_and_a_schema_it_owns() -> None:
    db = FakeDataApi()
    assert handler.handle(_event("Create"), db.execute) == "dbuser:billing-api"
    assert db.statements == [
        "SELECT 1 FROM pg_roles WHERE rolname = :name",
        'CREATE ROLE "billing-api" LOGIN',
        'GRANT rds_iam TO "billing-api"',
        'GRANT "billing-api" TO CURRENT_USER',
        'CREATE SCHEMA IF NOT EXISTS "billing-api" AUTHORIZATION "billing-api"',
        'ALTER ROLE "billing-api" SET search_path = "billing-api"',
    ]


def test_create_and_update_are_idempotent_for_an_existing_role() -> None:
    """A role made by hand (the old README step) or by an earlier deploy is completed, not recreated."""
    for request in ("Create", "Update"):
        db = FakeDataApi(roles={"billing-api"})
        handler.handle(_event(request), db.execute)
        assert not [s for s in db.statements if s.startswith("CREATE ROLE")]
        assert 'GRANT rds_iam TO "billing-api"' in db.statements


def test_delete_never_drops_a_role_or_data() -> None:
    db = FakeDataApi(roles={"billing-api"})
    assert handler.handle(_event("Delete"), db.execute) == "dbuser:billing-api"
    assert db.statements == []


@pytest.mark.parametrize("user", ['api"; DROP TABLE x; --', "Api", "1api", "a" * 64, ""])
def test_only_service_names_become_sql_identifiers(user: str) -> None:
    with pytest.raises(ValueError, match="invalid user name"):
        handler.handle(_event("Create", user), FakeDataApi().execute)


class DatabaseResumingException(Exception):
    pass


# The Data API's errors that pass by themselves, named as boto3's modeled exceptions are (botocore's
# rds-data service model): the writer resuming, failing over or scaling, the Data API itself briefly away.
PASSING = {
    "DatabaseResumingException": "The Aurora DB instance is resuming after being auto-paused.",
    "DatabaseUnavailableException": "",
    "ServiceUnavailableError": "",
    "InternalServerErrorException": "",
}


class Client:
    def __init__(self, failures: int, error: str = "DatabaseResumingException") -> None:
        self.failures = failures
        resuming = error == "DatabaseResumingException"
        self.error = DatabaseResumingException if resuming else type(error, (Exception,), {})
        self.message = PASSING[error]
        self.calls: list[dict[str, Any]] = []

    def execute_statement(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.failures:
            self.failures -= 1
            raise self.error(self.message)
        return {"records": []}


def test_the_errors_waited_out_are_the_data_apis_own() -> None:
    import botocore.session

    model = botocore.session.get_session().get_service_model("rds-data")
    assert set(PASSING) <= {shape.name for shape in model.error_shapes}


@pytest.mark.parametrize("error", sorted(PASSING))
def test_an_error_that_passes_by_itself_is_waited_out(error: str) -> None:
    client, naps = Client(failures=2, error=error), list[float]()
    execute = handler.data_api(client, _event("Create")["ResourceProperties"], deadline=1e12, sleep=naps.append)
    assert execute("SELECT 1", []) == {"records": []}
    assert naps == [10, 10]


def test_a_paused_writer_is_waited_for_then_the_statement_runs() -> None:
    client, naps = Client(failures=2), list[float]()
    execute = handler.data_api(client, _event("Create")["ResourceProperties"], deadline=1e12, sleep=naps.append)
    assert execute("SELECT 1", []) == {"records": []}
    assert naps == [10, 10]
    assert len(client.calls) == 3
    assert client.calls[0] == {
        "resourceArn": "arn:c",
        "secretArn": "arn:s",
        "database": "app",
        "sql": "SELECT 1",
        "parameters": [],
    }


def test_a_master_password_being_rotated_is_waited_out() -> None:
    """Between the rotation's setSecret and finishSecret the secret's current password is refused."""

    class Rotating:
        def __init__(self) -> None:
            self.failures = 3

        def execute_statement(self, **_: Any) -> dict[str, Any]:
            if self.failures:
                self.failures -= 1
                raise RuntimeError(
                    'An error occurred (BadRequestException): FATAL: password authentication failed for user "postgres"'
                )
            return {"records": []}

    naps = list[float]()
    execute = handler.data_api(Rotating(), _event("Create")["ResourceProperties"], deadline=1e12, sleep=naps.append)
    assert execute("SELECT 1", []) == {"records": []}
    assert naps == [10, 10, 10]


def test_waiting_stops_before_the_function_times_out() -> None:
    execute = handler.data_api(Client(failures=100), {"ClusterArn": "c", "SecretArn": "s", "Database": "d"}, 0.0)
    with pytest.raises(DatabaseResumingException):
        execute("SELECT 1", [])


def test_other_errors_fail_at_once() -> None:
    class Broken:
        def execute_statement(self, **_: Any) -> None:
            raise PermissionError("AccessDeniedException")

    execute = handler.data_api(Broken(), {"ClusterArn": "c", "SecretArn": "s", "Database": "d"}, 1e12)
    with pytest.raises(PermissionError):
        execute("SELECT 1", [])


def test_the_handler_fits_cloudformation_inline_code() -> None:
    assert len(HANDLER_FILE.read_text(encoding="utf-8")) <= INLINE_CODE_LIMIT


# --- What each environment deploys ----------------------------------------------------------------


def _master_secret(env: Synthesized) -> dict[str, Any]:
    """The master secret: RDS-managed, or generated where the cluster is a global database's primary."""
    template = env.template("database")
    attachments = list(resources(template, "AWS::SecretsManager::SecretTargetAttachment"))
    if attachments:
        assert env.global_primary
        return {"Ref": attachments[0]}
    (cluster,) = resources(template, "AWS::RDS::DBCluster")
    return {"Fn::GetAtt": [cluster, "MasterUserSecret.SecretArn"]}


def _away(env: Synthesized) -> bool:
    """After a switchover: the global database's writer in another region than this stack's."""
    return env.settings.writer_region != env.settings.region


def _writer_secret(env: Synthesized) -> str:
    """The master secret the users are made with: this region's, or its copy in the writer's region."""
    secret = text(_master_secret(env))
    if not _away(env):
        return secret
    # The copy's ARN: the primary's with the writer's region (same name and suffix).
    return ":".join(env.settings.writer_region if i == 3 else f"{secret}[{i}]" for i in range(7))


def _rendered_secret(value: Any) -> str:
    """A secret ARN as text; a part picked from an ARN split at ':' reads ``<ARN>[i]``."""
    if isinstance(value, dict) and "Fn::Select" in value:
        index, source = value["Fn::Select"]
        return f"{text(source['Fn::Split'][1])}[{index}]"
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(_rendered_secret(p) for p in parts)
    return text(value)


def _users(env: Synthesized) -> dict[str, dict[str, Any]]:
    return {r["Properties"]["User"]: r for r in resources(env.template("database"), RESOURCE_TYPE).values()}


def test_one_user_per_service_that_uses_the_database(env: Synthesized) -> None:
    users = _users(env)
    assert sorted(users) == sorted(s.name for s in env.settings.services if "database" in s.uses)
    template = env.template("database")
    (function_id,) = resources(template, "AWS::Lambda::Function").keys() - {
        k for k in template["Resources"] if k.startswith("AWS679f53fac")
    }
    for user in users.values():
        props = user["Properties"]
        assert props["ServiceToken"] == {"Fn::GetAtt": [function_id, "Arn"]}
        assert props["Database"] == env.settings.database.database_name
        if _away(env):  # the writer's cluster in its region, by the name every region's cluster has
            writer = env.settings.writer_region
            assert text(props["ClusterArn"]).endswith(
                f":rds:{writer}:<AWS::AccountId>:cluster:{env.settings.name_prefix}-db"
            )
            assert props["Region"] == writer
        else:
            assert props["ClusterArn"]["Fn::Join"][1][-1]["Ref"].startswith("Cluster")
            assert "Region" not in props
        assert _rendered_secret(props["SecretArn"]) == _writer_secret(env)
        assert any(d.startswith("Clusterwriter") for d in user["DependsOn"])  # after the writer is up
    cluster = next(iter(resources(template, "AWS::RDS::DBCluster").values()))
    assert cluster["Properties"]["EnableHttpEndpoint"] is True


def test_a_user_outlives_its_removal_from_the_catalogue_where_data_is_retained(env: Synthesized) -> None:
    # Elsewhere they go with the stack; the handler itself drops nothing in either (test above).
    assert all(map(kept if env.settings.retain_data else deleted, _users(env).values()))


def test_the_function_may_only_run_statements_as_the_master_user_of_this_cluster(env: Synthesized) -> None:
    template = env.template("database")
    policy = next(p for k, p in resources(template, "AWS::IAM::ManagedPolicy").items() if k.startswith("UsersPolicy"))
    statements = {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    assert set(statements) == {"DataApi", "MasterSecret", "MasterSecretKey"}
    assert statements["DataApi"]["Action"] == "rds-data:ExecuteStatement"
    assert statements["MasterSecret"]["Action"] == "secretsmanager:GetSecretValue"
    assert _rendered_secret(statements["MasterSecret"]["Resource"]) == _writer_secret(env)
    key = statements["MasterSecretKey"]
    assert key["Action"] == "kms:Decrypt"
    writer = env.settings.writer_region
    assert key["Condition"]["StringEquals"] == {"kms:ViaService": f"secretsmanager.{writer}.amazonaws.com"}
    if _away(env):  # the copy's key, known by its alias there
        assert text(key["Resource"]).endswith(f":kms:{writer}:<AWS::AccountId>:key/*")
        assert key["Condition"]["ForAnyValue:StringEquals"] == {
            "kms:ResourceAliases": [f"alias/{env.settings.name_prefix}/aurora-master-secret-replica"]
        }
    else:
        assert key["Resource"]["Fn::GetAtt"][0].startswith("SecretKey")
        assert set(key["Condition"]) == {"StringEquals"}
    function = next(f for k, f in resources(template, "AWS::Lambda::Function").items() if k.startswith("UsersFunction"))
    props = function["Properties"]
    assert props["Runtime"] == "python3.14"
    assert props["Timeout"] == 600  # room to wait out a rotation of the master password
    assert props["Code"]["ZipFile"] == HANDLER_FILE.read_text(encoding="utf-8")
    subnets = props["VpcConfig"]["SubnetIds"]
    assert all("privateSubnet" in s["Fn::GetStackOutput"]["OutputName"] for s in subnets)
    (group,) = props["VpcConfig"]["SecurityGroupIds"]
    egress = template["Resources"][group["Fn::GetAtt"][0]]["Properties"]["SecurityGroupEgress"]
    assert [(e["IpProtocol"], e["FromPort"], e["ToPort"], e["CidrIp"]) for e in egress] == [
        ("tcp", 443, 443, "0.0.0.0/0")
    ]


def test_settings_refuse_where_the_data_api_cannot_create_users(tmp_path: Any) -> None:
    from infra.config.settings import SettingsError
    from tests.projects import example_settings

    # (with instance types Melbourne offers: the instance type table is checked first)
    edits = {"region": "ap-southeast-4", "eks": {"node_group": {"instance_types": ["t3.large", "m5.large"]}}}
    with pytest.raises(SettingsError, match=r"'region' = 'ap-southeast-4': the RDS Data API, .* of orders, jobs"):
        example_settings(tmp_path, "sandbox", edits)


def test_settings_refuse_a_burstable_instance_class(tmp_path: Any) -> None:
    from infra.config.settings import SettingsError
    from tests.projects import example_settings

    with pytest.raises(SettingsError, match=r"'database.instance_class' = 'db.t4g.medium': .* T instance classes"):
        example_settings(tmp_path, "sandbox", {"database": {"capacity": None, "instance_class": "db.t4g.medium"}})
