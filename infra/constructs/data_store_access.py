"""The security group of a data store: one source, one port, nothing out."""

from __future__ import annotations

from aws_cdk import aws_ec2 as ec2
from constructs import Construct


def security_group_admitting(
    scope: Construct,
    *,
    vpc: ec2.IVpc,
    source: ec2.ISecurityGroup,
    port: int,
    what: str,
    description: str,
    more_ports: dict[int, str] | None = None,
) -> ec2.SecurityGroup:
    """``SecurityGroup`` in ``scope`` admitting TCP ``port`` (and ``more_ports``: port -> what) from
    ``source`` only, with no egress.

    The source is the network stack's workload group (every EKS node), so the data store stacks do
    not wait for the EKS stack (docs/decisions/0003-data-stores-access.md).
    """
    group = ec2.SecurityGroup(scope, "SecurityGroup", vpc=vpc, description=description, allow_all_outbound=False)
    group.add_ingress_rule(source, ec2.Port.tcp(port), f"{what} from EKS workloads")
    for extra, purpose in (more_ports or {}).items():
        group.add_ingress_rule(source, ec2.Port.tcp(extra), f"{purpose} from EKS workloads")
    return group
