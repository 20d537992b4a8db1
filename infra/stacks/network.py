"""Network stack: VPC, subnets, NAT, flow logs, endpoints."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.config.settings import NetworkSettings
from infra.config.subnets import DATA as DATA_SUBNETS
from infra.config.subnets import PRIVATE as PRIVATE_SUBNETS
from infra.config.subnets import PUBLIC as PUBLIC_SUBNETS
from infra.config.subnets import subnet_masks
from infra.constructs.log_retention import encrypted_log_group
from infra.stacks.base import PlatformStack


class NetworkStack(PlatformStack):
    """A VPC over the zones in settings.

    - public subnets: load balancers and NAT gateways only; no public IPs on launch;
    - private subnets (egress through NAT): EKS nodes and pods;
    - data subnets (isolated, no route out): Aurora and ElastiCache.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        network: NetworkSettings,
        name_prefix: str,
        retain_data: bool,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.vpc = self._vpc(network)
        self._flow_log(network, name_prefix=name_prefix, retain_data=retain_data)

        # Attached to every EKS node (and so to every pod on the VPC CNI's default networking). The
        # data stores admit this group and nothing else: they need no reference to the EKS stack,
        # so the database and cache deploy in parallel with the cluster.
        self.workload_security_group = ec2.SecurityGroup(
            self,
            "WorkloadSecurityGroup",
            vpc=self.vpc,
            description="EKS nodes and pods: the only source the data stores admit",
            allow_all_outbound=True,
        )
        self._interface_endpoints(network)

        CfnOutput(self, "VpcId", value=self.vpc.vpc_id, description="VPC id")

    def _vpc(self, network: NetworkSettings) -> ec2.Vpc:
        """The VPC: public, private and data subnets in every zone, NAT gateways, an S3 gateway endpoint."""
        prefix = int(network.vpc_cidr.split("/")[1])
        masks = subnet_masks(prefix)
        return ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(network.vpc_cidr),
            availability_zones=self.availability_zones,
            nat_gateways=network.nat_gateways,
            restrict_default_security_group=True,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name=PUBLIC_SUBNETS,
                    subnet_type=ec2.SubnetType.PUBLIC,
                    cidr_mask=masks[PUBLIC_SUBNETS],
                    map_public_ip_on_launch=False,
                ),
                ec2.SubnetConfiguration(
                    name=PRIVATE_SUBNETS,
                    subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS,
                    cidr_mask=masks[PRIVATE_SUBNETS],
                ),
                ec2.SubnetConfiguration(
                    name=DATA_SUBNETS,
                    subnet_type=ec2.SubnetType.PRIVATE_ISOLATED,
                    cidr_mask=masks[DATA_SUBNETS],
                ),
            ],
            gateway_endpoints={"S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3)},
        )

    def _flow_log(self, network: NetworkSettings, *, name_prefix: str, retain_data: bool) -> None:
        """Every flow of the VPC into an encrypted log group, through a role only this account's flow logs use."""
        self.flow_log_key, self.flow_log_group = encrypted_log_group(
            self,
            key_id="FlowLogKey",
            group_id="FlowLogGroup",
            purpose="vpc-flow-logs",
            alias_prefix=name_prefix,
            retention_days=network.flow_log_retention_days,
            retain=retain_data,
        )
        # The delivery role trusts the flow-logs service only on behalf of this account
        # (confused-deputy guard); its permissions live in a managed policy, not inline.
        flow_log_role = iam.Role(
            self,
            "FlowLogRole",
            description="Delivers this VPC's flow logs to CloudWatch Logs",
            assumed_by=iam.ServicePrincipal(
                "vpc-flow-logs.amazonaws.com",
                conditions={
                    "StringEquals": {"aws:SourceAccount": self.account},
                    "ArnLike": {
                        "aws:SourceArn": self.format_arn(service="ec2", resource="vpc-flow-log", resource_name="*")
                    },
                },
            ),
        )
        delivery = iam.ManagedPolicy(
            self,
            "FlowLogDelivery",
            description="Write this VPC's flow logs to their log group",
            roles=[flow_log_role],
            statements=[
                iam.PolicyStatement(
                    actions=["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                    resources=[self.flow_log_group.log_group_arn],
                )
            ],
        )
        self.flow_log = ec2.FlowLog(
            self,
            "FlowLog",
            resource_type=ec2.FlowLogResourceType.from_vpc(self.vpc),
            # without_policy_updates: the grant above replaces the inline policy CDK would add.
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(
                self.flow_log_group, flow_log_role.without_policy_updates()
            ),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )
        # The role may write before the flow log starts delivering: CloudFormation attaches the policy
        # in a resource of its own, which nothing else orders before the flow log.
        self.flow_log.node.add_dependency(delivery)

    def _interface_endpoints(self, network: NetworkSettings) -> None:
        """The interface endpoints in settings, in the private subnets, behind one security group."""
        if network.interface_endpoints:
            # One group for all endpoints: HTTPS from inside the VPC, nothing else. The CIDR is the
            # literal from settings so the rule packs can evaluate it (a token would defeat them).
            self.endpoint_security_group = ec2.SecurityGroup(
                self,
                "EndpointSecurityGroup",
                vpc=self.vpc,
                description="Interface endpoints: HTTPS from inside the VPC",
                allow_all_outbound=False,
            )
            self.endpoint_security_group.add_ingress_rule(
                ec2.Peer.ipv4(network.vpc_cidr), ec2.Port.tcp(443), "HTTPS from the VPC"
            )
        for service in network.interface_endpoints:
            self.vpc.add_interface_endpoint(
                f"Endpoint-{service}",
                service=ec2.InterfaceVpcEndpointAwsService(service),
                subnets=ec2.SubnetSelection(subnet_group_name=PRIVATE_SUBNETS),
                private_dns_enabled=True,
                security_groups=[self.endpoint_security_group],
                open=False,
            )
