"""The VPC's subnets, computed from the settings as CDK allocates them, without CDK.

Three kinds per zone, allocated in this order, each kind zone by zone (``ec2.Vpc`` with
``IpAddresses.cidr``: aws-cdk-lib's ``NetworkBuilder`` takes the next free address, aligned up to the
subnet's size): public (load balancers, NAT gateways), private (nodes and pods), data (Aurora,
ElastiCache). Settings validation uses this to refuse a VPC too small for its zones before CDK
fails deep inside jsii, and the Helm values check uses it for the network policies' CIDRs.
"""

from __future__ import annotations

import ipaddress

PUBLIC, PRIVATE, DATA = "public", "private", "data"
KINDS = (PUBLIC, PRIVATE, DATA)
# Elastic Load Balancing: "the subnets must have at least a /27 bitmask and at least 8 free IP
# addresses" (ELB user guide, "Subnets for your load balancer"); the public subnets hold the ALBs.
LOAD_BALANCER_MAX_MASK = 27
# CDK's NetworkBuilder refuses subnets smaller than /28 (and so does EC2's CreateSubnet).
SMALLEST_SUBNET_MASK = 28


class SubnetPlanError(ValueError):
    """The VPC cannot hold the subnets its zones need."""


def subnet_masks(vpc_prefix: int) -> dict[str, int]:
    """Private subnets get most of the space: with the VPC CNI every pod takes a VPC address. Public
    subnets stay at /27 or larger (load balancers), data subnets at /28 or larger."""
    small = vpc_prefix + 6
    return {
        PUBLIC: min(small, LOAD_BALANCER_MAX_MASK),
        PRIVATE: vpc_prefix + 3,
        DATA: min(small, SMALLEST_SUBNET_MASK),
    }


def subnet_plan(vpc_cidr: str, zones: int) -> dict[str, list[str]]:
    """Each kind's subnet CIDR per zone, in zone order; raises :class:`SubnetPlanError` if they do not fit."""
    plan = _allocate(ipaddress.IPv4Network(vpc_cidr), zones)
    if plan is None:
        raise SubnetPlanError(_too_small(vpc_cidr, zones))
    return plan


def _allocate(network: ipaddress.IPv4Network, zones: int) -> dict[str, list[str]] | None:
    masks = subnet_masks(network.prefixlen)
    next_free = int(network.network_address)
    end = int(network.broadcast_address)
    plan: dict[str, list[str]] = {kind: [] for kind in KINDS}
    for kind in KINDS:
        size = 2 ** (32 - masks[kind])
        for _ in range(zones):
            start = -(-next_free // size) * size  # aligned up to the subnet's size
            if start + size - 1 > end:
                return None
            plan[kind].append(str(ipaddress.IPv4Network((start, masks[kind]))))
            next_free = start + size
    return plan


def _too_small(vpc_cidr: str, zones: int) -> str:
    network = ipaddress.IPv4Network(vpc_cidr)
    masks = subnet_masks(network.prefixlen)
    need = ", ".join(f"{zones} {kind} /{masks[kind]}" for kind in KINDS)
    fits = [p for p in range(16, network.prefixlen) if _allocate(ipaddress.IPv4Network(f"10.0.0.0/{p}"), zones)]
    larger = f"a /{fits[-1]} or larger network" if fits else "a larger network"
    return (
        f"{vpc_cidr} cannot hold the subnets of {zones} zones ({need}: a public, a private and a data subnet "
        f"per zone); allowed: {larger}, or fewer zones"
    )
