"""What fleetwave tells people and other systems about rollouts, one module per channel. Pure: no I/O, no clock,
no environment.

  common.py  what every channel shares: the records notify reads (RemediationRecord, NoticeRecord), the report of a
             rollout (RolloutReport, OutputLocation, links to command output), event IDs and text formatting
  events.py  which ledger changes are news (detail types) and the EventBridge event details
  sns.py     SNS subjects, bodies and attributes: the rollout summary and notices
  slack.py   Slack Block Kit messages: a rollout's end and its wave transitions

The schemas are documented in docs/notifications.md; the golden files under tests/notifications/golden/ pin them.
"""
