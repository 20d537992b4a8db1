"""What synth refuses before CloudFormation, or a reviewer, would: each mistake one message naming the
file (or the command line), the key, the value and what is allowed.

Every case works on a copy of the tests' examples (the user's files are never touched: the last test
of the session, tests/test_deploy_path.py, checks that none changed).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.config.helm_values import check_service_values
from infra.config.instance_types import offered_in, table_date
from infra.config.project import REPOSITORY, Project, cdk_json_context
from infra.config.settings import SettingsError
from infra.config.subnets import PUBLIC, subnet_plan
from tests.projects import (
    EXAMPLES,
    ROOT,
    dump_yaml,
    example_data,
    example_settings,
    merged,
    settings_of,
    write_environment,
)

# --- Helm values against the chart's schema and the settings ------------------------------------------


def _values(tmp_path: Path, environment: str, service: str, edit: dict[str, Any]) -> Path:
    """A copy of the examples' Helm values with ``edit`` made to one service's file."""
    values = tmp_path / "helm_values"
    shutil.copytree(EXAMPLES.helm_values, values)
    path = values / environment / "services" / f"{service}.yaml"
    path.write_text(dump_yaml(merged(yaml.safe_load(path.read_text(encoding="utf-8")), edit)), encoding="utf-8")
    return values


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            {"replica": 1},
            r"orders.yaml: key 'replica' is not a value of the chart \(did you mean 'replicas'\?\); allowed: .*"
            r"replicas, .* \(charts/microservice/values.schema.json\)",
        ),
        (
            {"ingress": {"schme": "internal"}},
            r"orders.yaml: key 'ingress.schme' is not a value of the chart \(did you mean 'scheme'\?\); allowed in "
            r"ingress: certificateArn, enabled, groupName, healthCheckPath, host, path, scheme",
        ),
        ({"replicas": -1}, r"orders.yaml: replicas = -1 is not allowed; allowed: at least 0"),
        (
            {"logLevel": "verbose"},
            r"orders.yaml: logLevel = 'verbose' is not allowed; allowed: debug, info, warn, error",
        ),
        (
            {"resources": {"limits": {"memory": "lots"}}},
            r"resources.limits.memory = 'lots' is not allowed; allowed: text",
        ),
    ],
)
def test_a_services_values_are_checked_against_the_charts_schema_at_synth(
    tmp_path: Path, edit: dict[str, Any], message: str
) -> None:
    values = _values(tmp_path, "sandbox", "orders", edit)
    with pytest.raises(SettingsError, match=message):
        check_service_values(settings_of(EXAMPLES, "sandbox"), values)


@pytest.mark.parametrize(
    ("environment", "service", "edit", "message"),
    [
        ("sandbox", "orders", {"service": {"port": 9000}}, r"service.port = 9000, but the catalogue entry's port is"),
        ("sandbox", "jobs", {"service": {"expose": True}}, r"service.expose = true, but the catalogue entry's ingress"),
        ("sandbox", "orders", {"production": True}, r"production = true, but the settings' production is false"),
        (
            "live",
            "orders",
            {"networkPolicy": {"egress": {"dataStoreCidrs": ["10.0.200.0/22"]}}},
            r"networkPolicy.egress.dataStoreCidrs = \['10.0.200.0/22'\], but this environment's data subnets .* are "
            r"\['10.0.128.0/22'",
        ),
        (
            "live",
            "jobs",
            {"networkPolicy": {"egress": {"dataStorePorts": [5432, 6379]}}},
            r"networkPolicy.egress.dataStorePorts = \[5432, 6379\], but jobs uses database \(the catalogue\); allowed: "
            r"\[5432\]$",
        ),
        (
            "live",
            "sessions",
            {"networkPolicy": {"egress": {"dataStorePorts": [6380]}}},
            r"networkPolicy.egress.dataStorePorts = \[6380\], but sessions uses cache .*allowed: \[6379\], and "
            r"optionally \[6380\]",
        ),
        (
            "live",
            "orders",
            {"networkPolicy": {"ingressFromCidrs": ["10.0.0.0/16"]}},
            r"networkPolicy.ingressFromCidrs lists '10.0.0.0/16', which is not a subnet of this environment's load "
            r"balancers; allowed: the public subnets 10.0.0.0/22",
        ),
    ],
)
def test_a_services_values_must_say_what_the_settings_say(
    tmp_path: Path, environment: str, service: str, edit: dict[str, Any], message: str
) -> None:
    values = _values(tmp_path, environment, service, edit)
    with pytest.raises(SettingsError, match=rf"{service}.yaml: {message}"):
        check_service_values(settings_of(EXAMPLES, environment), values)


def test_network_policies_may_keep_the_serverless_read_port_after_a_switch_to_nodes(tmp_path: Path) -> None:
    """Switching the cache kind needs no values edit: 6380 stays allowed, 6379 is what is needed."""
    values = _values(tmp_path, "live", "sessions", {})
    cache = {"kind": "replication-group", "engine_version": "8.2", "node_type": "cache.r7g.large"}
    nodes = example_settings(
        tmp_path / "settings",
        "live",
        replace={"cache": {**cache, "snapshot_retention_days": 15, "log_retention_days": 365}},
    )
    assert nodes.cache.kind == "replication-group"
    check_service_values(nodes.model_copy(update={"environment": "live"}), values)


def test_app_stops_at_a_bad_values_file_with_one_message(tmp_path: Path) -> None:
    """Through app.py, as `make synth` runs it: exit 2, the message, no traceback."""
    project = Project(tmp_path / "project")
    shutil.copytree(EXAMPLES.root / "infra", project.root / "infra")
    shutil.copytree(EXAMPLES.helm_values, project.helm_values)
    path = project.helm_values / "sandbox" / "services" / "orders.yaml"
    path.write_text(path.read_text(encoding="utf-8") + "replica: 1\n", encoding="utf-8")
    context = {**cdk_json_context(), "env": "sandbox", "project": str(project.root)}
    result = subprocess.run(
        [sys.executable, "app.py"],
        cwd=ROOT,
        env={**os.environ, "CDK_CONTEXT_JSON": json.dumps(context), "CDK_OUTDIR": str(tmp_path / "out")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {path}: key 'replica' is not a value of the chart")
    assert result.stderr.count("\n") == 1


# --- Instance and node types, per region -----------------------------------------------------------


@pytest.mark.parametrize(
    ("edit", "replace", "message"),
    [
        (
            {"eks": {"node_group": {"instance_types": ["t3.larg", "t3a.large"]}}},
            None,
            r"setting 'eks.node_group.instance_types': 't3.larg' is not an EC2 instance type offered in us-east-1 "
            r"\(table of \d{4}-\d\d-\d\d, infra/config/instance_types.json\); did you mean t3.large",
        ),
        (
            {},
            {"cache": {"kind": "replication-group", "engine_version": "8.2", "node_type": "cache.t4g.smal"}},
            r"setting 'cache.node_type': 'cache.t4g.smal' is not an ElastiCache node type offered in us-east-1 .*"
            r"did you mean cache.t4g.small",
        ),
        (
            {"database": {"capacity": None, "instance_class": "r7g.larg"}},
            None,
            r"setting 'database.instance_class': 'db.r7g.larg' is not an Aurora PostgreSQL instance class offered in "
            r"us-east-1 .*did you mean db.r7g.large",
        ),
    ],
)
def test_instance_and_node_types_are_checked_against_the_dated_table_with_the_nearest_names(
    tmp_path: Path, edit: dict[str, Any], replace: dict[str, Any] | None, message: str
) -> None:
    if replace:
        replace["cache"]["snapshot_retention_days"] = 1
    with pytest.raises(SettingsError, match=message):
        example_settings(tmp_path, "sandbox", edit, replace=replace)


def test_a_type_must_be_offered_in_every_region_of_the_environment(tmp_path: Path) -> None:
    types = example_data("live")["eks"]["node_group"]["instance_types"]
    # A region of the table that lacks one of the production example's types (not its own region).
    lacking, missing = next(
        (region, name)
        for region in ("ap-southeast-4", "il-central-1", "mx-central-1", "ca-west-1")
        for name in types
        if name not in (offered_in("ec2", region) or (name,))
    )
    edit = {"regions": ["us-east-1", lacking], "github": {"deploy_runs_on": ["x-{region}"]}}
    with pytest.raises(SettingsError, match=rf"'{missing}' is not an EC2 instance type offered in {lacking}"):
        example_settings(tmp_path, "live", edit)


def test_the_type_table_is_dated_and_is_the_pinned_cfn_lints_data() -> None:
    """scripts/instance_types.py rewrites it after a cfn-lint upgrade; until then it is that data."""
    from scripts.instance_types import TABLE, table

    committed = json.loads(TABLE.read_text(encoding="utf-8"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", table_date())
    assert {k: v for k, v in committed.items() if k != "date"} == {
        k: v for k, v in table(committed["date"]).items() if k != "date"
    }, "infra/config/instance_types.json is not the installed cfn-lint's data: run scripts/instance_types.py"
    # Every type the user's settings name is in the table for its regions (synth checks it; this says so).
    for name in REPOSITORY.environment_names():
        settings = settings_of(REPOSITORY, name)
        for region in settings.all_regions:
            offered = offered_in("ec2", region)
            assert offered is None or set(settings.eks.node_group.instance_types) <= set(offered)


# --- Duplicate keys --------------------------------------------------------------------------------


def test_a_key_given_twice_in_a_settings_file_is_refused_with_both_lines(tmp_path: Path) -> None:
    project = write_environment(tmp_path, "qa", example_data("sandbox"))
    path = project.environments / "qa.yaml"
    text = path.read_text(encoding="utf-8").replace("  nat_gateways: 1\n", "  nat_gateways: 1\n  nat_gateways: 2\n")
    path.write_text(text, encoding="utf-8")
    line = text.splitlines().index("  nat_gateways: 2") + 1
    with pytest.raises(
        SettingsError,
        match=rf"qa.yaml: line {line}: key 'nat_gateways' is given twice in one mapping \(first on line {line - 1}\); "
        "YAML would keep only the last one",
    ):
        project.settings("qa")


def test_a_key_given_twice_in_the_catalogue_or_a_values_file_is_refused(tmp_path: Path) -> None:
    project = write_environment(tmp_path, "qa", example_data("sandbox"))
    project.catalogue.write_text("services:\n  - {name: a, ingress: true, name: b}\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"services.yaml: line 2: key 'name' is given twice"):
        project.settings("qa")
    values = _values(tmp_path, "sandbox", "orders", {})
    path = values / "sandbox" / "services" / "orders.yaml"
    path.write_text(path.read_text(encoding="utf-8") + "replicas: 3\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"orders.yaml: line \d+: key 'replicas' is given twice"):
        check_service_values(settings_of(EXAMPLES, "sandbox"), values)


# --- The VPC and its subnets -----------------------------------------------------------------------


def test_a_vpc_too_small_for_its_zones_is_one_message_not_a_jsii_traceback(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        example_settings(tmp_path, "sandbox", {"network": {"vpc_cidr": "10.0.0.0/24", "zones": 6}})
    message = str(caught.value)
    assert message.count("\n") == 1
    assert (
        "setting 'network': vpc_cidr = '10.0.0.0/24' with zones = 6: 10.0.0.0/24 cannot hold the subnets of 6 zones "
        "(6 public /27, 6 private /27, 6 data /28: a public, a private and a data subnet per zone); allowed: a /21 or "
        "larger network, or fewer zones"
    ) in message


@pytest.mark.parametrize("prefix", range(16, 25))
def test_load_balancer_subnets_are_27_or_larger_and_the_subnets_fit_the_vpc_or_synth_says_so(prefix: int) -> None:
    from infra.config.subnets import SubnetPlanError

    for zones in range(2, 7):
        cidr = f"10.0.0.0/{prefix}"
        try:
            plan = subnet_plan(cidr, zones)
        except SubnetPlanError:
            continue  # its message: test_a_vpc_too_small_for_its_zones_is_one_message_not_a_jsii_traceback
        assert all(int(c.split("/")[1]) <= 27 for c in plan[PUBLIC])
        every = [c for cidrs in plan.values() for c in cidrs]
        assert len(set(every)) == len(every) == 3 * zones


# --- Errors name their source, once ------------------------------------------------------------------


def test_a_bad_catalogue_entry_names_the_catalogue_and_the_keys_of_a_service(tmp_path: Path) -> None:
    project = write_environment(tmp_path, "qa", example_data("sandbox"))
    project.catalogue.write_text("services:\n  - {name: orders, ingres: true}\n", encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        project.settings("qa")
    assert str(caught.value) == (
        f"{project.catalogue}: invalid service catalogue\n"
        "  setting 'services[0] (orders).ingres' is not a known setting (did you mean 'ingress'?); allowed here: "
        "ingress, name, port, uses"
    )


@pytest.mark.parametrize(
    ("context", "environ", "message"),
    [
        ({"region": "us-east-9"}, {}, "--context region=us-east-9 (make: REGION=us-east-9) is not an AWS region"),
        ({"account": "1234"}, {}, "--context account=1234 must be a 12-digit AWS account id"),
        ({}, {"CDK_DEFAULT_ACCOUNT": "x"}, "CDK_DEFAULT_ACCOUNT=x (the CDK CLI sets it from your credentials) must be"),
    ],
)
def test_a_bad_command_line_value_is_named_as_the_command_line_gave_it(
    context: dict[str, str], environ: dict[str, str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from aws_cdk import App

    import app

    full = {**cdk_json_context(), "env": "sandbox", "project": str(EXAMPLES.root), **context}
    saved = dict(os.environ)
    os.environ.update(environ)
    try:
        assert app.main(App(context=full, outdir=str(ROOT / "cdk.out.checks"))) == 2
    finally:
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(ROOT / "cdk.out.checks", ignore_errors=True)
    err = capsys.readouterr().err
    assert err.startswith("error: invalid command line\n")
    assert message in err
    assert err.count("\n") == 2


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        # An unknown region: once, not again for an account stack region the file does not set.
        ({"region": "eu-west-9"}, "setting 'region' = 'eu-west-9' is not an AWS region of the aws partition"),
        # A word for a count: what the setting takes, no hint about quotes there are none of.
        (
            {"network": {"zones": "two"}},
            "setting 'network.zones' = 'two' is invalid: must be a zone count such as 3, or zone letters such as "
            "[a, b, c]",
        ),
        # Quotes around a number: the hint that fits.
        ({"network": {"zones": "3"}}, "(the quotes make it text in YAML: write 3 without quotes)"),
    ],
)
def test_one_mistake_is_one_message_with_the_hint_that_fits(
    tmp_path: Path, edit: dict[str, Any], expected: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        example_settings(tmp_path, "sandbox", edit)
    message = str(caught.value)
    assert message.count("\n") == 1, message
    assert expected in message
    assert ".int" not in message
    assert "list[str]" not in message


def test_an_empty_settings_file_or_catalogue_says_it_is_empty(tmp_path: Path) -> None:
    project = write_environment(tmp_path, "qa", example_data("sandbox"))
    (project.environments / "qa.yaml").write_text("# nothing yet\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"qa.yaml: the file is empty; it holds the settings of environment 'qa'"):
        project.settings("qa")
    write_environment(tmp_path, "qa", example_data("sandbox"))
    project.catalogue.write_text("", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"services.yaml: the file is empty; it lists the services"):
        project.settings("qa")


# --- Every example the documents and the messages give is valid as written ----------------------------

_DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _inline_settings(text: str) -> list[str]:
    return re.findall(r"`([a-z_][a-z_.]*: [^`]+)`", text)


@pytest.mark.parametrize("path", _DOCUMENTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_yaml_example_of_the_documents_parses_as_written(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for block in re.findall(r"```yaml\n(.*?)```", text, re.DOTALL):
        assert isinstance(yaml.safe_load(block), dict), block
    for example in _inline_settings(text):
        yaml.safe_load(example)  # raises on `[self-hosted, linux, cloud-ops-prod-{region}]` unquoted


def test_the_runner_labels_the_documents_show_are_valid_labels(tmp_path: Path) -> None:
    examples = [e for p in _DOCUMENTS for e in _inline_settings(p.read_text(encoding="utf-8"))]
    labels = [yaml.safe_load(e)["deploy_runs_on"] for e in examples if e.startswith("deploy_runs_on:")]
    assert labels
    for found in labels:
        if any("<" in label for label in found):
            continue  # a placeholder for the reader's own name
        example_settings(tmp_path / str(len(found)), "live", {"github": {"deploy_runs_on": found}})


def test_every_example_a_message_gives_parses_as_written() -> None:
    """The `e.g. [...]` of every message: in YAML, as a person would paste it into the settings file."""
    sources = [p.read_text(encoding="utf-8") for p in (ROOT / "infra" / "config").rglob("*.py")]
    examples = [e for text in sources for e in re.findall(r"e\.g\. (\[[^\]\n]*\])", text)]
    assert len(examples) >= 5
    for example in examples:
        rendered = re.sub(r"\{(self|s)\.name_prefix\}", "acme-live", example).replace("{{", "{").replace("}}", "}")
        assert isinstance(yaml.safe_load(rendered), list), example


def test_the_private_endpoint_message_gives_labels_that_pass(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        example_settings(
            tmp_path, "live", {"regions": ["us-east-1", "us-west-2"], "github": {"deploy_runs_on": ["self-hosted"]}}
        )
    (example,) = re.findall(r"e\.g\. (\[[^\]]*\])", str(caught.value))
    labels = yaml.safe_load(example)
    example_settings(
        tmp_path / "ok", "live", {"regions": ["us-east-1", "us-west-2"], "github": {"deploy_runs_on": labels}}
    )
