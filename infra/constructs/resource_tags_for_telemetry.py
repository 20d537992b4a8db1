"""CloudWatch's "resource tags for telemetry", turned on in the stack's account and region.

Once on, Metrics Insights queries (and alarms on them) can filter AWS vended metrics by the tags of
the resource that emitted them, ``WHERE tag.<key> = '<value>'``: the load balancer alarms watch only
the load balancers the environment's controller tagged (``LOAD_BALANCER_TAG``), not every ALB in the
account and region (CloudWatch user guide, "Resource tags for telemetry"; the supported metrics list
``AWS/ApplicationELB`` under ``AWS::ElasticLoadBalancingV2::LoadBalancer``).

The switch is one per account and region and other environments (or other teams) may rely on it, so
it is turned on idempotently by a custom resource (``StartTelemetryEnrichment``; "already on" is
success) and never turned off by a stack deletion, instead of an ``AWS::ObservabilityAdmin::
TelemetryEnrichment`` that exactly one stack per account and region would have to own.
"""

from __future__ import annotations

from aws_cdk import Aws, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import custom_resources as cr
from constructs import Construct

from infra.constructs.service_log_group import provider_of

# The tag the load balancer controller puts on every AWS resource it creates (its --default-tags),
# and which the load balancer alarms filter on. Letters and an underscore: Metrics Insights reads a
# label key without quotes only when it has nothing else.
LOAD_BALANCER_TAG = "platform_environment"


class ResourceTagsForTelemetry(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        alias_prefix: str,
        retain: bool,
        function_log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        provider = provider_of(
            stack, alias_prefix=alias_prefix, retain=retain, log_retention_days=function_log_retention_days
        )
        self.policy = iam.ManagedPolicy(
            self,
            "Policy",
            description="Turn on CloudWatch resource tags for telemetry in this account and region",
            statements=[
                iam.PolicyStatement(
                    sid="StartTelemetryEnrichment",
                    actions=["observabilityadmin:StartTelemetryEnrichment"],
                    resources=["*"],
                ),
                # What StartTelemetryEnrichment does for its caller (CloudWatch user guide, "Enable
                # resource tags on telemetry": the permissions it lists).
                iam.PolicyStatement(
                    sid="ResourceExplorerIndexAndView",
                    actions=[
                        "resource-explorer-2:CreateIndex",
                        "resource-explorer-2:CreateManagedView",
                        "resource-explorer-2:CreateStreamingAccessForService",
                    ],
                    resources=["*"],
                ),
                iam.PolicyStatement(
                    sid="ServiceLinkedRole",
                    actions=["iam:CreateServiceLinkedRole"],
                    resources=[f"arn:{Aws.PARTITION}:iam::{Aws.ACCOUNT_ID}:role/aws-service-role/*"],
                ),
            ],
        )
        provider.role.add_managed_policy(self.policy)
        call = cr.AwsSdkCall(
            service="ObservabilityAdmin",
            action="startTelemetryEnrichment",
            parameters={},
            physical_resource_id=cr.PhysicalResourceId.of("resource-tags-for-telemetry"),
            # Already on (the console, another environment, another team): nothing to do.
            ignore_error_codes_matching="ConflictException",
        )
        self.resource = cr.AwsCustomResource(
            self,
            "Start",
            on_create=call,
            on_update=call,
            # Deleting this stack leaves the switch on: other environments may filter by tags too.
            on_delete=None,
            vpc=vpc,
            vpc_subnets=subnets,
            role=provider.role,
            log_group=provider.log_group,
            install_latest_aws_sdk=False,
        )
        self.resource.node.add_dependency(self.policy)
