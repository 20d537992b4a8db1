"""AWS regions of the commercial (``aws``) partition that cloud-ops supports.

Source: aws-cdk-lib 2.275.0 ``region_info.RegionInfo.regions``, restricted to the
``aws`` partition (GovCloud, China and the ISO partitions have different service
endpoints, prices and ARN partitions and are not tested here). Kept as data so that
validating settings needs neither the jsii runtime nor AWS credentials.
"""

from __future__ import annotations

ZONES_CHECKED = "2026-11-27"

# The Availability Zone letters of each region (us-east-1 -> us-east-1a ... us-east-1f), so that
# zone names follow from the region with no lookup at synth. Letters are not contiguous everywhere
# (ap-northeast-1 has no b, ca-central-1 no c for accounts created in recent years). Local and
# Wavelength Zones are not listed: they cannot hold EKS control-plane subnets. Sources, as of
# ZONES_CHECKED: cfn-lint 1.58.0's AVAILABILITY_ZONES (cfnlint/helpers.py), the AZ ids per region in
# the AWS "AWS Availability Zones" page, and public `describe-availability-zones` output; where they
# differ, the zones a new account sees win (ap-northeast-1b and ca-central-1c exist only in old
# accounts; eu-west-2d opened in August 2026).
ZONE_LETTERS: dict[str, str] = {
    "af-south-1": "abc",
    "ap-east-1": "abc",
    "ap-east-2": "abc",
    "ap-northeast-1": "acd",
    "ap-northeast-2": "abcd",
    "ap-northeast-3": "abc",
    "ap-south-1": "abc",
    "ap-south-2": "abc",
    "ap-southeast-1": "abc",
    "ap-southeast-2": "abc",
    "ap-southeast-3": "abc",
    "ap-southeast-4": "abc",
    "ap-southeast-5": "abc",
    "ap-southeast-6": "abc",
    "ap-southeast-7": "abc",
    "ca-central-1": "abd",
    "ca-west-1": "abc",
    "eu-central-1": "abc",
    "eu-central-2": "abc",
    "eu-north-1": "abc",
    "eu-south-1": "abc",
    "eu-south-2": "abc",
    "eu-west-1": "abc",
    "eu-west-2": "abcd",
    "eu-west-3": "abc",
    "il-central-1": "abc",
    "me-central-1": "abc",
    "me-south-1": "abc",
    "mx-central-1": "abc",
    "sa-east-1": "abc",
    "us-east-1": "abcdef",
    "us-east-2": "abc",
    "us-west-1": "abc",
    "us-west-2": "abcd",
}

# Regions where an account sees only some of the letters, and which ones depends on the account
# (us-west-1: two of a, b, c). A zone count cannot be turned into names there; letters must be given.
ACCOUNT_DEPENDENT_ZONES: dict[str, int] = {"us-west-1": 2}


class ZoneError(ValueError):
    """The zones asked for do not exist in the region; the message says which do."""


def zone_names(region: str, zones: int | list[str]) -> list[str]:
    """Zone names of ``region`` for a zone count (the region's first zones) or a list of letters."""
    letters = ZONE_LETTERS[region]
    if isinstance(zones, int):
        if region in ACCOUNT_DEPENDENT_ZONES:
            raise ZoneError(
                f"a zone count is not enough in {region}: which {ACCOUNT_DEPENDENT_ZONES[region]} of its zones "
                f"({', '.join(letters)}) an account has depends on the account; list the letters instead, "
                "e.g. [a, c], as `aws ec2 describe-availability-zones` shows them"
            )
        if zones > len(letters):
            raise ZoneError(
                f"{zones} zones asked for, but {region} has {len(letters)} ({', '.join(letters)}); "
                f"allowed: 2 to {len(letters)}, or another region"
            )
        return [region + letter for letter in letters[:zones]]
    unknown = [letter for letter in zones if letter not in letters]
    if unknown:
        raise ZoneError(
            f"{region} has no zone {', '.join(region + u for u in unknown)}; its zones are "
            f"{', '.join(region + letter for letter in letters)}"
        )
    if len(zones) > ACCOUNT_DEPENDENT_ZONES.get(region, len(letters)):
        raise ZoneError(
            f"an account has {ACCOUNT_DEPENDENT_ZONES[region]} of the zones {', '.join(letters)} of {region}, not "
            f"{len(zones)}; list the {ACCOUNT_DEPENDENT_ZONES[region]} that `aws ec2 describe-availability-zones` "
            "shows, e.g. [a, c]"
        )
    return [region + letter for letter in zones]


AWS_REGIONS: frozenset[str] = frozenset(ZONE_LETTERS)

# Regions where the RDS Data API (how the platform creates database users, ADR 0009) is not available
# for Aurora PostgreSQL: Hyderabad, Melbourne, New Zealand ("Not available" in the Aurora user guide's
# "Supported Regions and Aurora DB engines for RDS Data API", read 2026-11-27).
NO_DATA_API: frozenset[str] = frozenset({"ap-south-2", "ap-southeast-4", "ap-southeast-6"})
