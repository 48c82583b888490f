"""Build the fleetwave app from its context: shared by app.py and the infra tests."""

from __future__ import annotations

from aws_cdk import App
from fleetwave import constants

from .config import load_config
from .fleetwave_stack import FleetwaveStack
from .nag import apply_nag

STACK_NAME = constants.DEFAULT_STACK_NAME


def build(app: App) -> FleetwaveStack:
    """Validate the ``fleetwave:*`` context (ConfigError names each bad key), add the stack, apply cdk-nag."""
    config = load_config(app.node.try_get_context)
    stack = FleetwaveStack(app, STACK_NAME, config=config)
    apply_nag(app)
    return stack
