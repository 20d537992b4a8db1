"""AWS regions of the commercial (``aws``) partition that cloud-ops supports.

Source: aws-cdk-lib 2.275.0 ``region_info.RegionInfo.regions``, restricted to the
``aws`` partition (GovCloud, China and the ISO partitions have different service
endpoints, prices and ARN partitions and are not tested here). Kept as data so that
validating settings needs neither the jsii runtime nor AWS credentials.
"""

from __future__ import annotations

import re

AWS_REGIONS: frozenset[str] = frozenset(
    {
        "af-south-1",
        "ap-east-1",
        "ap-east-2",
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-northeast-3",
        "ap-south-1",
        "ap-south-2",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-southeast-3",
        "ap-southeast-4",
        "ap-southeast-5",
        "ap-southeast-6",
        "ap-southeast-7",
        "ca-central-1",
        "ca-west-1",
        "eu-central-1",
        "eu-central-2",
        "eu-north-1",
        "eu-south-1",
        "eu-south-2",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "il-central-1",
        "me-central-1",
        "me-south-1",
        "mx-central-1",
        "sa-east-1",
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
    }
)

# A zone name is its region followed by one letter (us-east-1a). Local Zones and
# Wavelength Zones (us-west-2-lax-1a) are not valid homes for EKS control-plane subnets.
_ZONE_SUFFIX = re.compile(r"[a-z]")


def zone_in_region(zone: str, region: str) -> bool:
    return zone.startswith(region) and bool(_ZONE_SUFFIX.fullmatch(zone[len(region) :]))
