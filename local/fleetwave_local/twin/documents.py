"""The Command documents of the twin's account: the AWS-owned ones the examples use (moto lacks them: same names,
same parameters), and the ones the stack ships (fleetwave.documents)."""

from __future__ import annotations

import json
from typing import Any

AWS_DOCUMENTS: dict[str, dict[str, Any]] = {
    "AWS-RunShellScript": {
        "schemaVersion": "2.2",
        "description": "Run a shell script or specify the commands to run.",
        "parameters": {
            "commands": {"type": "StringList", "description": "(Required) Commands to run."},
            "workingDirectory": {"type": "String", "default": "", "description": "(Optional) Working directory."},
            "executionTimeout": {"type": "String", "default": "3600", "description": "(Optional) Seconds to run."},
        },
        "mainSteps": [
            {
                "action": "aws:runShellScript",
                "name": "runShellScript",
                "inputs": {
                    "runCommand": "{{ commands }}",
                    "workingDirectory": "{{ workingDirectory }}",
                    "timeoutSeconds": "{{ executionTimeout }}",
                },
            }
        ],
    },
    "AWS-RunPatchBaseline": {
        "schemaVersion": "2.2",
        "description": "Scans for or installs patches from a patch baseline.",
        "parameters": {
            "Operation": {"type": "String", "allowedValues": ["Scan", "Install"], "description": "(Required)"},
            "SnapshotId": {"type": "String", "default": ""},
            "InstallOverrideList": {"type": "String", "default": ""},
            "BaselineOverride": {"type": "String", "default": ""},
            "RebootOption": {
                "type": "String",
                "default": "RebootIfNeeded",
                "allowedValues": ["RebootIfNeeded", "NoReboot"],
            },
        },
        "mainSteps": [
            {
                "action": "aws:runShellScript",
                "name": "PatchLinux",
                "precondition": {"StringEquals": ["platformType", "Linux"]},
                "inputs": {"runCommand": ["patch-baseline-operation {{ Operation }}"], "timeoutSeconds": 7200},
            }
        ],
    },
    "AWS-RestartService": {
        "schemaVersion": "2.2",
        "description": "Restart a service (a stand-in runbook for remediation demos).",
        "parameters": {"ServiceName": {"type": "String", "description": "(Required) The service to restart."}},
        "mainSteps": [
            {
                "action": "aws:runShellScript",
                "name": "restart",
                "inputs": {"runCommand": ["systemctl restart {{ ServiceName }}"]},
            }
        ],
    },
}


def seed_documents(ssm: Any, documents: dict[str, dict[str, Any]] | None = None) -> None:
    """Create ``documents`` (default: the AWS-owned ones above) as Command documents."""
    for name, content in (AWS_DOCUMENTS if documents is None else documents).items():
        ssm.create_document(Name=name, Content=json.dumps(content), DocumentType="Command", DocumentFormat="JSON")
