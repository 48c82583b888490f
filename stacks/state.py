"""The ledger: one DynamoDB table (on demand, PITR, TTL, stream), keys and GSIs from fleetwave.constants."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct
from fleetwave import constants

_STRING = dynamodb.AttributeType.STRING

# (index name, partition key, sort key): all sparse, all string keys.
GLOBAL_SECONDARY_INDEXES = (
    (constants.GSI_BY_STATE, constants.GSI_BY_STATE_PK, constants.GSI_BY_STATE_SK),
    (constants.GSI_BY_INSTANCE, constants.GSI_BY_INSTANCE_PK, constants.GSI_BY_INSTANCE_SK),
    (constants.GSI_BY_SPEC, constants.GSI_BY_SPEC_PK, constants.GSI_BY_SPEC_SK),
)


class State(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            table_name=constants.TABLE_NAME,
            partition_key=dynamodb.Attribute(name=constants.PK, type=_STRING),
            sort_key=dynamodb.Attribute(name=constants.SK, type=_STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            # KMS with the AWS managed key (aws/dynamodb): encrypted and audited in CloudTrail, and no key grant to
            # keep in step with every function and the stream consumer.
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            time_to_live_attribute=constants.TTL_ATTRIBUTE,
            stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
            deletion_protection=True,
            # The ledger is the audit trail of every rollout: it outlives the stack (see docs/deploy.md).
            removal_policy=RemovalPolicy.RETAIN,
        )
        for index_name, partition_key, sort_key in GLOBAL_SECONDARY_INDEXES:
            self.table.add_global_secondary_index(
                index_name=index_name,
                partition_key=dynamodb.Attribute(name=partition_key, type=_STRING),
                sort_key=dynamodb.Attribute(name=sort_key, type=_STRING),
                projection_type=dynamodb.ProjectionType.ALL,
            )
