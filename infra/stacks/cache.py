"""Cache stack: ElastiCache for Valkey (Serverless or a replication group) in the isolated data subnets."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, CfnResource
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from constructs import Construct

from infra.config.settings import CacheSettings
from infra.config.subnets import DATA as DATA_SUBNETS
from infra.constructs.data_store_access import security_group_admitting
from infra.constructs.encryption_key import EncryptionKey
from infra.constructs.removal import kept_if
from infra.constructs.valkey_cache import SERVERLESS_READ_PORT, VALKEY_PORT, Valkey
from infra.stacks.base import PlatformStack


class CacheStack(PlatformStack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        workload_security_group: ec2.ISecurityGroup,
        zones: list[str],
        cache: CacheSettings,
        clients: list[str],
        name_prefix: str,
        retain_data: bool,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, zones=zones, **kwargs)
        self.key = EncryptionKey(self, "Key", alias_prefix=name_prefix, purpose="valkey", retain=retain_data).key
        self.security_group = security_group_admitting(
            self,
            vpc=vpc,
            source=workload_security_group,
            port=VALKEY_PORT,
            what="Valkey",
            description=f"Valkey {name_prefix}-cache: from the EKS workloads only",
            more_ports={SERVERLESS_READ_PORT: "Valkey reads from replicas"} if cache.kind == "serverless" else None,
        )
        self.valkey = Valkey(
            self,
            "Valkey",
            cache_name=f"{name_prefix}-cache",
            subnets=vpc.select_subnets(subnet_group_name=DATA_SUBNETS).subnets,
            security_group=self.security_group,
            key=self.key,
            settings=cache,
            clients=clients,
            removal_policy=kept_if(retain_data),
            alias_prefix=name_prefix,
        )
        # The security group and its rule stay with a retained cache, which keeps using them.
        removal = kept_if(retain_data)
        for child in self.security_group.node.find_all():
            if isinstance(child, CfnResource):
                child.apply_removal_policy(removal)
        endpoint = {
            "serverless": "Valkey endpoint",
            "replication-group": "Valkey configuration endpoint (cluster mode: clients must support it)"
            if cache.cluster_mode
            else "Valkey primary endpoint (writes; replicas serve reads through the reader endpoint)",
        }[cache.kind]
        CfnOutput(self, "Endpoint", value=self.valkey.endpoint_address, description=endpoint)
        if cache.kind == "replication-group" and not cache.cluster_mode:
            assert isinstance(self.valkey.cache, elasticache.CfnReplicationGroup)
            CfnOutput(
                self,
                "ReaderEndpoint",
                value=self.valkey.cache.attr_reader_end_point_address,
                description="Valkey reader endpoint (the replicas)",
            )
        CfnOutput(
            self,
            "Port",
            value=str(VALKEY_PORT),
            description="Valkey port. TLS is required: clients must connect with TLS",
        )
        if cache.kind == "serverless":
            CfnOutput(
                self,
                "ReaderPort",
                value=str(SERVERLESS_READ_PORT),
                description="Valkey port for reads from replicas in the client's zone (same endpoint, TLS)",
            )
        CfnOutput(
            self,
            "Authentication",
            value="IAM: user id <cache name>-<service>, token signed by the service's IRSA role",
            description="How clients authenticate; the default user is disabled",
        )
