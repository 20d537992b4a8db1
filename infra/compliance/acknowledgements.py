"""Every acknowledged rule finding of the platform, each on the narrowest construct, with its reason.

An acknowledgement is for a finding that cannot be fixed, never for one that merely was not.
Rule ids are exact (``Pack-Rule`` or ``Pack-Rule[finding]``); the ledger refuses wildcards.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from infra.compliance.ledger import Ledger

if TYPE_CHECKING:
    from infra.platform import Platform
    from infra.stacks.network import NetworkStack

# The same control appears in several packs under its own prefix.
_COMPLIANCE_PACKS = ("NIST.800.53.R5", "HIPAA.Security", "PCI.DSS.321")


def acknowledge_platform(platform: Platform) -> None:
    _network(platform.network, platform.ledger)


def _network(network: NetworkStack, ledger: Ledger) -> None:
    reason = (
        "Public subnets exist to hold the internet-facing load balancers and the NAT gateways; their "
        "0.0.0.0/0 route to the internet gateway is what makes them public. No workload runs in them: "
        "instances launch without public IPs, nodes and data live in private and isolated subnets."
    )
    zones = (
        "Availability zones are explicit settings by design (DESIGN.md decision 6): synth must run offline, "
        "with no lookup, and not every region has the zone letters a lookup would assume. Each zone is "
        "validated against the region when the settings load."
    )
    for subnet in [*network.vpc.public_subnets, *network.vpc.private_subnets, *network.vpc.isolated_subnets]:
        cfn_subnet = subnet.node.default_child
        assert cfn_subnet is not None
        ledger.acknowledge(cfn_subnet, "CloudFormation-Validate::W3010", zones)
    for subnet in network.vpc.public_subnets:
        route = subnet.node.find_child("DefaultRoute")
        for pack in _COMPLIANCE_PACKS:
            ledger.acknowledge(route, f"{pack}-VPCNoUnrestrictedRouteToIGW", reason)
