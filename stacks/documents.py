"""fleetwave's own Command documents (fleetwave.documents): every parameter constrained, so the default allow-list
can hold them and no free-form shell."""

from __future__ import annotations

from aws_cdk import aws_ssm as ssm
from constructs import Construct
from fleetwave.documents import shipped_documents

from .config import FleetwaveConfig


class Documents(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: FleetwaveConfig) -> None:
        super().__init__(scope, construct_id)
        self.documents: dict[str, ssm.CfnDocument] = {}
        for name, content in shipped_documents(config.restartable_services).items():
            construct = "".join(part for part in name.replace("-", " ").title().split())
            self.documents[name] = ssm.CfnDocument(
                self,
                construct,
                name=name,
                document_type="Command",
                document_format="JSON",
                content=content,
                # A change of content (e.g. fleetwave:restartableServices) becomes a new version of the same document.
                update_method="NewVersion",
            )
