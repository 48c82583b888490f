"""The fleet simulator: SSM agents and the Run Command service, simulated on a virtual clock (see ``fleet``)."""

from .botocore_hook import SsmApiError, patch_client
from .clock import VirtualClock
from .fleet import FleetSimulator
from .model import Command, EmittedEvent, Invocation, ManagedNode, Session, SimStats

__all__ = [
    "Command",
    "EmittedEvent",
    "FleetSimulator",
    "Invocation",
    "ManagedNode",
    "Session",
    "SimStats",
    "SsmApiError",
    "VirtualClock",
    "patch_client",
]
