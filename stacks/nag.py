"""cdk-nag: the AwsSolutions and Serverless packs, applied to the whole app."""

from __future__ import annotations

from aws_cdk import App, Aspects
from cdk_nag import AwsSolutionsChecks, ServerlessChecks


def apply_nag(app: App) -> None:
    Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    Aspects.of(app).add(ServerlessChecks(verbose=True))
