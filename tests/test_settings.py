"""Bad input stops synth with one message naming the setting, the value and what is allowed."""

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

from infra.config.instance_types import unavailable
from infra.config.project import REPOSITORY, Project
from infra.config.regions import ACCOUNT_DEPENDENT_ZONES, NO_DATA_API, ZONE_LETTERS
from infra.config.settings import SettingsError
from tests.projects import EXAMPLES, ROOT, dump_yaml, example_data, load_yaml, settings_of, write_environment


def _base() -> dict[str, Any]:
    """The tests' non-production example (never the user's settings)."""
    return example_data("sandbox")


def _load(tmp_path: Path, data: object, **overrides: str | None) -> None:
    project = Project(tmp_path)
    project.environments.mkdir(parents=True, exist_ok=True)
    (project.environments / "qa.yaml").write_text(dump_yaml(data), encoding="utf-8")
    if not project.catalogue.exists():
        project.catalogue.write_text(EXAMPLES.catalogue.read_text(encoding="utf-8"), encoding="utf-8")
    project.settings("qa", overrides)


def _qa(tmp_path: Path) -> Project:
    return Project(tmp_path)


def _network(**changes: Any) -> dict[str, Any]:
    data = _base()
    data["network"] = {**data["network"], **changes}
    return data


def test_every_environment_of_the_user_loads_with_one_catalogue_shared() -> None:
    names = REPOSITORY.environment_names()
    assert names
    catalogue = load_yaml(REPOSITORY.catalogue.read_text(encoding="utf-8"))["services"]
    for name in names:
        settings = settings_of(REPOSITORY, name)
        assert settings.environment == name
        assert "services" not in load_yaml((REPOSITORY.environments / f"{name}.yaml").read_text("utf-8"))
        assert [s.name for s in settings.services] == [s["name"] for s in catalogue]


def test_unknown_environment_lists_the_known_ones() -> None:
    known = ", ".join(REPOSITORY.environment_names())
    with pytest.raises(
        SettingsError, match=rf"setting 'env' = 'nosuchenv' is not a known environment; allowed: {re.escape(known)} "
    ):
        REPOSITORY.settings("nosuchenv")


def test_missing_environment_says_how_to_pass_it() -> None:
    with pytest.raises(SettingsError, match=r"setting 'env' is missing: pass --context env=<name>"):
        REPOSITORY.settings(None)


def test_missing_field_is_named(tmp_path: Path) -> None:
    data = _base()
    del data["project"]
    with pytest.raises(SettingsError, match=r"setting 'project' is required but missing"):
        _load(tmp_path, data)


def test_unknown_field_is_rejected_with_the_allowed_ones(tmp_path: Path) -> None:
    with pytest.raises(
        SettingsError,
        match=r"setting 'network.nat_gateway' is not a known setting \(did you mean 'nat_gateways'\?\); "
        r"allowed here: .*nat_gateways",
    ):
        _load(tmp_path, _network(nat_gateway=2))


def test_malformed_yaml_is_reported(tmp_path: Path) -> None:
    project = write_environment(tmp_path, "qa", {})
    (project.environments / "qa.yaml").write_text("project: [unclosed\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"qa.yaml: not valid YAML"):
        project.settings("qa")


def test_a_file_that_is_not_a_mapping_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"must be a mapping of settings, got list"):
        _load(tmp_path, ["project", "x"])


def test_wrong_type_is_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"setting 'network.nat_gateways' = '2' is invalid: must be a whole number"):
        _load(tmp_path, _network(nat_gateways="2"))


def test_region_must_be_an_aws_region(tmp_path: Path) -> None:
    with pytest.raises(
        SettingsError,
        match=r"invalid command line\n  --context region=us-east-9 is not an AWS region .*allowed: af-south-1",
    ):
        _load(tmp_path, _base(), region="us-east-9")


@pytest.mark.parametrize("account", ["12345678901", "1234567890123", "abcdefghijkl"])
def test_account_must_be_twelve_digits(tmp_path: Path, account: str) -> None:
    with pytest.raises(SettingsError, match=rf"--context account={account} must be a 12-digit AWS account id"):
        _load(tmp_path, _base(), account=account)


def test_unquoted_account_in_yaml_is_explained(tmp_path: Path) -> None:
    with pytest.raises(
        SettingsError, match=r"setting 'account' = 123456789012 must be a 12-digit AWS account id in quotes"
    ):
        _load(tmp_path, {**_base(), "account": 123456789012})


def test_account_from_the_command_line_is_accepted(tmp_path: Path) -> None:
    project = write_environment(tmp_path, "qa", _base())
    assert project.settings("qa", {"account": "123456789012"}).account == "123456789012"


@pytest.mark.parametrize(
    "cidr",
    [
        "8.8.0.0/16",  # public
        "10.0.0.0/8",  # too large
        "10.0.0.0/25",  # too small
        "10.0.0.1/16",  # host bits set
        "172.32.0.0/16",  # just outside 172.16/12
        "fd00::/48",  # IPv6
        "not-a-cidr",
    ],
)
def test_vpc_cidr_must_be_private_and_sized(tmp_path: Path, cidr: str) -> None:
    with pytest.raises(SettingsError, match=rf"setting 'network.vpc_cidr' = '{cidr}' must be a private RFC 1918"):
        _load(tmp_path, _network(vpc_cidr=cidr))


@pytest.mark.parametrize("cidr", ["10.0.0.0/16", "172.16.0.0/20", "192.168.10.0/24"])
def test_private_cidrs_between_16_and_24_are_accepted(tmp_path: Path, cidr: str) -> None:
    _load(tmp_path, _network(vpc_cidr=cidr))


def _three_zones(tmp_path: Path, **overrides: str | None) -> list[str]:
    project = write_environment(tmp_path, "qa", _network(zones=3, nat_gateways=1))
    return project.settings("qa", overrides).availability_zones


def test_zone_names_follow_from_the_region_and_a_count(tmp_path: Path) -> None:
    assert settings_of(EXAMPLES, "sandbox").availability_zones == ["us-east-1a", "us-east-1b"]
    assert _three_zones(tmp_path, region="eu-west-1") == ["eu-west-1a", "eu-west-1b", "eu-west-1c"]


def test_zone_letters_skip_the_ones_a_region_does_not_have(tmp_path: Path) -> None:
    # ap-northeast-1 has no zone b: a count takes the zones that exist.
    assert _three_zones(tmp_path, region="ap-northeast-1") == ["ap-northeast-1a", "ap-northeast-1c", "ap-northeast-1d"]


def test_zone_letters_are_taken_as_given(tmp_path: Path) -> None:
    project = write_environment(tmp_path, "qa", _network(zones=["a", "c"]))
    assert project.settings("qa").availability_zones == ["us-east-1a", "us-east-1c"]


def test_a_letter_the_region_does_not_have_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(
        SettingsError,
        match=r"setting 'network.zones' = \['a', 'b'\]: ap-northeast-1 has no zone ap-northeast-1b; its zones are "
        r"ap-northeast-1a, ap-northeast-1c, ap-northeast-1d",
    ):
        _load(tmp_path, _network(zones=["a", "b"]), region="ap-northeast-1")


def test_a_region_with_too_few_zones_for_the_count_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(
        SettingsError, match=r"setting 'network.zones' = 4: 4 zones asked for, but eu-west-1 has 3 \(a, b, c\)"
    ):
        _load(tmp_path, _network(zones=4, nat_gateways=1), region="eu-west-1")


def test_a_region_whose_zones_depend_on_the_account_needs_letters(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"a zone count is not enough in us-west-1: .*list the letters instead"):
        _load(tmp_path, _base(), region="us-west-1")
    project = write_environment(tmp_path, "qa", _network(zones=["a", "c"]))
    assert project.settings("qa", {"region": "us-west-1"}).availability_zones == ["us-west-1a", "us-west-1c"]


def test_an_unknown_region_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        _load(tmp_path, _base(), region="eu-west-9")
    assert str(caught.value).count("\n") == 1
    assert "--context region=eu-west-9 is not an AWS region of the aws partition; allowed: af-south-1" in str(
        caught.value
    )


@pytest.mark.parametrize("region", sorted(set(ZONE_LETTERS) - set(ACCOUNT_DEPENDENT_ZONES) - NO_DATA_API))
def test_production_settings_work_unchanged_in_every_region_with_three_zones_and_their_types(
    tmp_path: Path, region: str
) -> None:
    """The production example with a zone count, moved to each region: its zones follow; where the
    region does not offer its instance types, synth says which (not where the RDS Data API is missing:
    tests/test_database_users.py)."""
    data = {**example_data("live"), "network": {**example_data("live")["network"], "zones": 3}}
    project = write_environment(tmp_path, "qa", data)
    types = [*data["eks"]["node_group"]["instance_types"]]
    missing = next((why for t in types if (why := unavailable("ec2", t, [region]))), None)
    if missing:
        with pytest.raises(SettingsError, match=re.escape(missing)):
            project.settings("qa", {"region": region})
        return
    zones = project.settings("qa", {"region": region}).availability_zones
    assert [zone.removeprefix(region) for zone in zones] == list(ZONE_LETTERS[region][:3])


@pytest.mark.parametrize(
    ("zones", "message"),
    [
        (1, r"must be 2 to 6 zones"),
        (["a"], r"must be 2 to 6 zones"),
        (["a", "a"], r"must not list a zone twice"),
        (["us-east-1a", "us-east-1b"], r"'us-east-1a' is not a zone letter"),
    ],
)
def test_malformed_zones_are_rejected(tmp_path: Path, zones: object, message: str) -> None:
    with pytest.raises(SettingsError, match=rf"setting 'network.zones' = .* {message}"):
        _load(tmp_path, _network(zones=zones, nat_gateways=1))


def test_the_old_zone_setting_says_what_replaced_it(tmp_path: Path) -> None:
    data = _network(availability_zones=["us-east-1a", "us-east-1b"])
    del data["network"]["zones"]
    with pytest.raises(SettingsError, match=r"network.availability_zones was replaced by network.zones"):
        _load(tmp_path, data)


def test_more_nat_gateways_than_zones_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"nat_gateways = 3 is more than the 2 availability zones"):
        _load(tmp_path, _network(nat_gateways=3))


def test_unknown_interface_endpoint_lists_the_allowed_ones(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"unknown endpoint 'ecr'; allowed: ecr.api, ecr.dkr"):
        _load(tmp_path, _network(interface_endpoints=["ecr"]))


def test_log_retention_must_be_a_cloudwatch_period(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"setting 'network.flow_log_retention_days' = 31 must be one of"):
        _load(tmp_path, _network(flow_log_retention_days=31))


def test_project_name_is_validated(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"setting 'project' = 'Cloud_Ops' must be 3-20 characters"):
        _load(tmp_path, {**_base(), "project": "Cloud_Ops"})


def test_environment_is_the_file_name_not_a_setting(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"setting 'environment' is not allowed"):
        _load(tmp_path, {**_base(), "environment": "prod"})


def test_app_reports_bad_input_in_one_message_without_a_traceback() -> None:
    known = ", ".join(REPOSITORY.environment_names())
    context = json.loads((ROOT / "cdk.json").read_text(encoding="utf-8"))["context"]
    result = subprocess.run(
        [sys.executable, "app.py"],
        cwd=ROOT,
        env={**os.environ, "CDK_CONTEXT_JSON": json.dumps({**context, "env": "nosuchenv"})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        f"error: setting 'env' = 'nosuchenv' is not a known environment; allowed: {known} "
        f"(one file each in {REPOSITORY.environments})"
    )


def test_environment_file_names_are_checked(tmp_path: Path) -> None:
    project = write_environment(tmp_path, "Staging_EU", _base())
    with pytest.raises(SettingsError, match=r"setting 'env' = 'Staging_EU' \(file Staging_EU.yaml\) is not a valid"):
        project.settings("Staging_EU")


def test_prod_with_a_private_endpoint_refuses_github_hosted_deploy_runners(tmp_path: Path) -> None:
    data = example_data("live")
    data["github"]["deploy_runs_on"] = ["ubuntu-latest"]
    with pytest.raises(SettingsError, match=r"GitHub-hosted runners cannot reach a production cluster whose API"):
        _load(tmp_path, data)
    # Opening the endpoint to the runners' CIDRs is the other way.
    data["eks"]["endpoint"]["public_access_cidrs"] = ["203.0.113.0/24"]
    _load(tmp_path, data)


def test_runner_labels_are_checked(tmp_path: Path) -> None:
    data = _base()
    data["github"] = {**data["github"], "deploy_runs_on": ["self hosted"]}
    with pytest.raises(SettingsError, match=r"'self hosted' is not a runner label"):
        _load(tmp_path, data)


def test_an_error_found_while_building_names_the_settings_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """app.py's main in this process (the subprocess test above proves the no-traceback exit); the
    error: a kubectl layer package missing from the machine (every accepted one is pinned)."""
    import importlib

    from aws_cdk import App

    import app

    real = importlib.import_module

    def without_layers(name: str, package: str | None = None) -> Any:
        if name.startswith("aws_cdk.lambda_layer_kubectl_v"):
            raise ModuleNotFoundError(name)
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", without_layers)
    data = _base()
    data["eks"] = {**data["eks"], "kubernetes_version": "1.36"}
    project = write_environment(tmp_path / "project", "qa", data)
    shutil.copytree(EXAMPLES.helm_values / "sandbox", project.helm_values / "qa")
    for values in (project.helm_values / "qa" / "services").glob("*.yaml"):
        values.write_text(values.read_text(encoding="utf-8").replace("environment: sandbox", "environment: qa"))
    context = json.loads((ROOT / "cdk.json").read_text(encoding="utf-8"))["context"]
    context = {**context, "env": "qa", "project": str(project.root)}
    assert app.main(App(context=context, outdir=str(tmp_path / "out"))) == 2
    stderr = capsys.readouterr().err
    settings_file = project.environments / "qa.yaml"
    assert stderr.startswith(f"error: {settings_file}: setting 'eks.kubernetes_version' = '1.36' needs")


def test_yaml_typing_mistakes_get_a_hint(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"= '4' is invalid: must be a whole number \(the quotes make it text"):
        _load(tmp_path, _network(nat_gateways="4"))
    data = _base()
    data["eks"] = {**data["eks"], "kubernetes_version": 1.35}
    with pytest.raises(SettingsError, match=r"YAML reads an unquoted 1.35 as a number: write it in quotes"):
        _load(tmp_path, data)


def test_a_check_across_a_section_does_not_print_the_whole_section(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        _load(tmp_path, _network(nat_gateways=4))
    assert "setting 'network': nat_gateways = 4 is more than the 2 availability zones" in str(caught.value)
    assert "vpc_cidr" not in str(caught.value)


def test_a_malformed_catalogue_is_one_clear_error(tmp_path: Path) -> None:
    from infra.config.settings import load_catalogue

    (tmp_path / "services.yaml").write_text("- {name: api}\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"services.yaml: must be a mapping with one key, `services:`"):
        load_catalogue(tmp_path / "services.yaml")
    with pytest.raises(SettingsError, match=r"the service catalogue is missing"):
        load_catalogue(tmp_path / "absent.yaml")


def test_the_apps_context_is_read_as_the_cdk_cli_passes_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CDK_CONTEXT_JSON, and the file CONTEXT_OVERFLOW_LOCATION_ENV names when the context is large
    (aws-cdk-lib's App reads both): so that settings are checked before jsii starts."""
    import app

    overflow = tmp_path / "context.json"
    overflow.write_text(json.dumps({"env": "from-file", "region": "eu-west-1"}), encoding="utf-8")
    monkeypatch.setenv("CONTEXT_OVERFLOW_LOCATION_ENV", str(overflow))
    monkeypatch.setenv("CDK_CONTEXT_JSON", json.dumps({"env": "sandbox"}))
    assert app.cli_context() == {"env": "sandbox", "region": "eu-west-1"}
    monkeypatch.delenv("CONTEXT_OVERFLOW_LOCATION_ENV")
    monkeypatch.delenv("CDK_CONTEXT_JSON")
    assert app.cli_context() == {}
