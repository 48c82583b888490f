"""Powertools Logger, Tracer and Metrics shared by every handler (service name and namespace come from the
POWERTOOLS_* environment variables the stack sets)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger(service="fleetwave")
tracer = Tracer(service="fleetwave")
metrics = Metrics(namespace="fleetwave", service="fleetwave")
