#!/usr/bin/env python3
"""fleetwave CDK app: `npx aws-cdk@<pinned> deploy` runs this (see docs/deploy.md)."""

from aws_cdk import App

from stacks.build import build

app = App()
build(app)
app.synth()
