"""The Command documents the stack ships (AWS::SSM::Document), so the default allow-list holds no free-form shell.

Every parameter of a shipped document is constrained (allowedValues or allowedPattern): whoever may start a rollout
picks among the values the deployment allows, and can never pass a command line. Pure data: the stack creates them,
the local twin seeds them, the tests check them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

RESTART_SERVICE_DOCUMENT: Final = "fleetwave-RestartService"
PATCH_BASELINE_DOCUMENT: Final = "fleetwave-PatchBaseline"
# The services fleetwave-RestartService may restart unless fleetwave:restartableServices says otherwise.
DEFAULT_RESTARTABLE_SERVICES: Final = ("nginx", "httpd", "amazon-cloudwatch-agent")
# What the stack accepts as a restartable service: a systemd unit name, in which no shell metacharacter fits.
SERVICE_NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}\Z"


def restart_service_document(services: Sequence[str]) -> dict[str, Any]:
    """Restart one of ``services`` (systemd), then fail unless it is active again."""
    return {
        "schemaVersion": "2.2",
        "description": "fleetwave: restart one allow-listed systemd service and check that it is active again.",
        "parameters": {
            "ServiceName": {
                "type": "String",
                "description": "(Required) The service to restart (one of the deployment's restartable services).",
                "allowedValues": list(services),
            },
        },
        "mainSteps": [
            {
                "action": "aws:runShellScript",
                "name": "restartService",
                "precondition": {"StringEquals": ["platformType", "Linux"]},
                "inputs": {
                    "timeoutSeconds": "300",
                    "runCommand": [
                        "set -eu",
                        "systemctl restart '{{ ServiceName }}'",
                        "systemctl is-active --quiet '{{ ServiceName }}'",
                    ],
                },
            }
        ],
    }


def patch_baseline_document() -> dict[str, Any]:
    """AWS-RunPatchBaseline with only Operation and RebootOption exposed (both allowedValues): no BaselineOverride
    or InstallOverrideList, whose URLs could point the node at a patch source nobody reviewed."""
    return {
        "schemaVersion": "2.2",
        "description": "fleetwave: scan for or install patches from the node's patch baseline (AWS-RunPatchBaseline).",
        "parameters": {
            "Operation": {
                "type": "String",
                "description": "(Required) Scan, or Install the approved patches.",
                "allowedValues": ["Scan", "Install"],
            },
            "RebootOption": {
                "type": "String",
                "description": "(Optional) Reboot after installing, if a patch needs it.",
                "default": "RebootIfNeeded",
                "allowedValues": ["RebootIfNeeded", "NoReboot"],
            },
        },
        "mainSteps": [
            {
                "action": "aws:runDocument",
                "name": "runPatchBaseline",
                "inputs": {
                    "documentType": "SSMDocument",
                    "documentPath": "AWS-RunPatchBaseline",
                    "documentParameters": {"Operation": "{{ Operation }}", "RebootOption": "{{ RebootOption }}"},
                },
            }
        ],
    }


def shipped_documents(services: Sequence[str] = DEFAULT_RESTARTABLE_SERVICES) -> dict[str, dict[str, Any]]:
    """Name -> content of every document the stack ships."""
    return {
        RESTART_SERVICE_DOCUMENT: restart_service_document(services),
        PATCH_BASELINE_DOCUMENT: patch_baseline_document(),
    }


def unconstrained_parameters(content: Mapping[str, Any]) -> list[str]:
    """Parameters of a document's content that take any value (no allowedValues, no allowedPattern)."""
    return [
        name
        for name, parameter in (content.get("parameters") or {}).items()
        if not parameter.get("allowedValues") and not parameter.get("allowedPattern")
    ]
