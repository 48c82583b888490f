"""The customer-managed KMS key that encrypts fleetwave's SNS topics."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from .names import KEY_ALIAS

# AWS services that publish to fleetwave's topics (CloudWatch alarm actions, EventBridge rule targets).
CLOUDWATCH_SERVICE = "cloudwatch.amazonaws.com"
EVENTS_SERVICE = "events.amazonaws.com"
PUBLISHING_SERVICES = (CLOUDWATCH_SERVICE, EVENTS_SERVICE)


class Encryption(Construct):
    """One key with rotation. IAM principals of the account get access through their own policies (the default
    key policy delegates to IAM); the AWS services that publish to the topics get it here, for this account only."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        account = Stack.of(self).account
        self.key = kms.Key(
            self,
            "TopicKey",
            alias=KEY_ALIAS,
            description="fleetwave: encrypts the SSM status and summary SNS topics",
            enable_key_rotation=True,
            # The key only protects messages in flight: after a teardown it has nothing left to decrypt, so deleting
            # the stack schedules its deletion (30 days to change one's mind).
            pending_window=Duration.days(30),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowServicesToPublishToEncryptedTopics",
                principals=[iam.ServicePrincipal(service) for service in PUBLISHING_SERVICES],
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=["*"],  # In a key policy, "*" is this key.
                conditions={"StringEquals": {"aws:SourceAccount": account}},
            )
        )
