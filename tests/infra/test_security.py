"""Data at rest and in transit: the ledger, the topics, the queues, the key."""

from __future__ import annotations

from fleetwave import constants

from .conftest import Synthesized


def test_ledger_table_is_recoverable_encrypted_and_shaped_by_the_constants(synthesized: Synthesized) -> None:
    table = synthesized.resources[synthesized.logical_id(synthesized.stack.state.table)]
    properties = table["Properties"]
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["SSESpecification"]["SSEEnabled"] is True
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["TimeToLiveSpecification"] == {"AttributeName": constants.TTL_ATTRIBUTE, "Enabled": True}
    assert properties["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert properties["KeySchema"] == [
        {"AttributeName": constants.PK, "KeyType": "HASH"},
        {"AttributeName": constants.SK, "KeyType": "RANGE"},
    ]
    indexes = {
        i["IndexName"]: [k["AttributeName"] for k in i["KeySchema"]] for i in properties["GlobalSecondaryIndexes"]
    }
    assert indexes == {
        constants.GSI_BY_STATE: [constants.GSI_BY_STATE_PK, constants.GSI_BY_STATE_SK],
        constants.GSI_BY_INSTANCE: [constants.GSI_BY_INSTANCE_PK, constants.GSI_BY_INSTANCE_SK],
        constants.GSI_BY_SPEC: [constants.GSI_BY_SPEC_PK, constants.GSI_BY_SPEC_SK],
    }
    assert {a["AttributeType"] for a in properties["AttributeDefinitions"]} == {"S"}
    # The ledger outlives the stack
    assert table["DeletionPolicy"] == "Retain"
    assert properties["DeletionProtectionEnabled"] is True


def test_topics_use_the_rotating_customer_key_and_refuse_plain_http(synthesized: Synthesized) -> None:
    stack = synthesized.stack
    key_id = synthesized.logical_id(stack.encryption.key)
    assert synthesized.resources[key_id]["Properties"]["EnableKeyRotation"] is True
    for topic in (stack.ingestion.status_topic, stack.notifications.summary_topic):
        topic_id = synthesized.logical_id(topic)
        assert synthesized.resources[topic_id]["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
        [policy] = [
            p["Properties"]["PolicyDocument"]
            for p in synthesized.of_type("AWS::SNS::TopicPolicy").values()
            if {"Ref": topic_id} in p["Properties"]["Topics"]
        ]
        assert {
            "Action": "sns:Publish",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            "Effect": "Deny",
            "Principal": "*",
            "Resource": {"Ref": topic_id},
            "Sid": "AllowPublishThroughSSLOnly",
        } in policy["Statement"]


def test_key_lets_cloudwatch_and_eventbridge_of_this_account_publish(synthesized: Synthesized) -> None:
    key_id = synthesized.logical_id(synthesized.stack.encryption.key)
    statements = synthesized.resources[key_id]["Properties"]["KeyPolicy"]["Statement"]
    [services] = [s for s in statements if s.get("Sid") == "AllowServicesToPublishToEncryptedTopics"]
    assert sorted(services["Principal"]["Service"]) == ["cloudwatch.amazonaws.com", "events.amazonaws.com"]
    assert sorted(services["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey"]
    assert services["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def test_queues_are_encrypted_and_refuse_plain_http(synthesized: Synthesized) -> None:
    for logical_id, queue in synthesized.of_type("AWS::SQS::Queue").items():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True, logical_id
        [policy] = [
            p["Properties"]["PolicyDocument"]
            for p in synthesized.of_type("AWS::SQS::QueuePolicy").values()
            if {"Ref": logical_id} in p["Properties"]["Queues"]
        ]
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in policy["Statement"]
        ), logical_id


def test_the_stack_never_holds_the_slack_webhook(synthesized: Synthesized) -> None:
    notify = synthesized.resources[synthesized.logical_id(synthesized.stack.functions.functions["notify"])]
    variables = notify["Properties"]["Environment"]["Variables"]
    assert variables["SLACK_SECRET_NAME"] == "fleetwave/slack-webhook"
    # The webhook URL (a credential) is nowhere in the template; only the host allow-list is
    template = str(synthesized.template.to_json())
    assert "https://hooks.slack.com" not in template and "/services/" not in template
    assert variables["SLACK_WEBHOOK_HOSTS"] == "hooks.slack.com"
    assert not synthesized.of_type("AWS::SecretsManager::Secret")
