"""Deployment configuration from the CDK context (cdk.json or ``cdk deploy -c key=value``), validated at synth time.

Every problem names its context key, e.g. ``fleetwave:allowedDocuments[2]: 'bad name' is not a document name``,
and all problems are reported at once.
"""

from __future__ import annotations

import contextlib
import glob
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from fleetwave import constants
from fleetwave.core.remediation import RemediationRule, RuleError, parse_rule
from fleetwave.core.spec import RolloutSpec, SpecError, load_spec_text, spec_digest
from fleetwave.documents import DEFAULT_RESTARTABLE_SERVICES, SERVICE_NAME_PATTERN

from . import PROJECT_ROOT

# The rule model is fleetwave.core.remediation.RemediationRule: what the stack validates here is exactly what the
# remediate function reads from REMEDIATION_RULES.
__all__ = ["ConfigError", "FleetwaveConfig", "RemediationRule", "ScheduledSpec", "TagCondition", "load_config"]

KEY_ALLOWED_DOCUMENTS: Final = "fleetwave:allowedDocuments"
KEY_NOTIFICATION_EMAILS: Final = "fleetwave:notificationEmails"
KEY_SLACK_SECRET_NAME: Final = "fleetwave:slackSecretName"  # noqa: S105 (a context key, not a secret)
KEY_SCHEDULED_SPECS: Final = "fleetwave:scheduledSpecs"
KEY_REMEDIATION_RULES: Final = "fleetwave:remediationRules"
KEY_POWERTOOLS_LAYER_VERSION: Final = "fleetwave:powertoolsLayerVersion"
KEY_SKIP_DEPENDENCY_BUNDLING: Final = "fleetwave:skipDependencyBundling"
KEY_INSTANCE_TAG_CONDITION: Final = "fleetwave:instanceTagCondition"
KEY_RESERVED_CONCURRENCY: Final = "fleetwave:reservedConcurrency"
KEY_RESTARTABLE_SERVICES: Final = "fleetwave:restartableServices"
KEY_SLACK_WEBHOOK_HOSTS: Final = "fleetwave:slackWebhookHosts"
KEY_SESSION_TERMINATION: Final = "fleetwave:sessionTermination"
# The explicit opt-out of the instance tag condition (any other value must be {"key": ..., "value": ...}).
TAG_CONDITION_OFF: Final = ("false", "off", "none")
# AWS-owned documents that run whatever their parameters say (commands, scripts, playbooks, other documents): with
# one of these allowed, whoever may start a rollout may run anything as root on the nodes the tag condition admits.
FREE_FORM_DOCUMENTS: Final = frozenset(
    {
        "AWS-RunShellScript",
        "AWS-RunPowerShellScript",
        "AWS-RunRemoteScript",
        "AWS-RunDocument",
        "AWS-ApplyAnsiblePlaybooks",
        "AWS-RunAnsiblePlaybook",
        "AWS-ApplyChefRecipes",
        "AWS-ApplyDSCMofs",
        "AWS-RunSaltState",
    }
)

# Version of the public layer AWSLambdaPowertoolsPythonV3-python313-arm64 (Powertools for AWS Lambda, Python, V3).
DEFAULT_POWERTOOLS_LAYER_VERSION: Final = 27

# SSM document names (not ARNs): the stack builds the ARNs. No ',' (ALLOWED_DOCUMENTS is comma-separated).
_DOCUMENT_NAME = re.compile(r"^[a-zA-Z0-9_.\-]{3,128}\Z")
_EMAIL = re.compile(r"^[^@\s,]+@[^@\s,]+\.[^@\s,]+\Z")
_SECRET_NAME = re.compile(r"^[A-Za-z0-9/_+=.@\-]{1,512}\Z")
_TAG_KEY = re.compile(r"^[\w.:/=+\-@ ]{1,128}\Z")
_TAG_VALUE = re.compile(r"^[\w.:/=+\-@ ]{0,256}\Z")
_SERVICE_NAME = re.compile(SERVICE_NAME_PATTERN)
_HOST = re.compile(r"^(?=.{1,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}\Z")
# start_rollout's SCHEDULED_SPECS (about 80 bytes a spec) shares Lambda's 4 KB of environment.
_MAX_SCHEDULED_SPECS_JSON: Final = 2500
# Prefixes AWS reserves for its own documents: their ARNs have no account ID.
_AWS_OWNED_PREFIXES: Final = ("aws", "amazon", "amzn")
# Lambda allows 4 KB of environment variables per function, names and values together.
_MAX_REMEDIATION_RULES_JSON: Final = 3000


class ConfigError(ValueError):
    """The CDK context cannot build a working deployment. ``problems`` holds one ``key: rule`` line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid fleetwave configuration:\n  " + "\n  ".join(problems))
        self.problems = problems


def is_aws_owned_document(name: str) -> bool:
    """AWS-owned documents (AWS-RunShellScript, AmazonCloudWatch-...) live in no account: ``document/<name>``."""
    return name.lower().startswith(_AWS_OWNED_PREFIXES)


@dataclass(frozen=True)
class TagCondition:
    """Only managed nodes carrying this tag may receive commands (``ssm:resourceTag/<key>`` on SendCommand)."""

    key: str
    value: str


@dataclass(frozen=True)
class ScheduledSpec:
    """A spec file that EventBridge Scheduler starts on its cron."""

    source: str
    spec: RolloutSpec

    @property
    def expression(self) -> str:
        """``cron(...)`` or ``rate(...)``, as Scheduler takes it."""
        assert self.spec.schedule is not None
        return self.spec.schedule.expression

    @property
    def timezone(self) -> str:
        assert self.spec.schedule is not None
        return self.spec.schedule.timezone

    def schedule_input(self) -> dict[str, Any]:
        """The start_rollout event: the validated spec as JSON, so a schedule runs exactly what was reviewed (and
        start_rollout starts it only if its SHA-256 is the one deployed). No trigger: fleetwave sets it."""
        return {"spec": self.spec.model_dump(mode="json", exclude_none=True)}


@dataclass(frozen=True)
class FleetwaveConfig:
    allowed_documents: tuple[str, ...]
    notification_emails: tuple[str, ...] = ()
    slack_secret_name: str | None = None
    scheduled_specs: tuple[ScheduledSpec, ...] = ()
    remediation_rules: tuple[RemediationRule, ...] = ()
    powertools_layer_version: int = DEFAULT_POWERTOOLS_LAYER_VERSION
    skip_dependency_bundling: bool = False
    # The default (fleetwave:managed=true) unless the context opts out explicitly.
    instance_tag_condition: TagCondition | None = TagCondition(
        constants.DEFAULT_MANAGED_TAG_KEY, constants.DEFAULT_MANAGED_TAG_VALUE
    )
    reserved_concurrency: bool = True
    restartable_services: tuple[str, ...] = DEFAULT_RESTARTABLE_SERVICES
    slack_webhook_hosts: tuple[str, ...] = constants.DEFAULT_SLACK_WEBHOOK_HOSTS
    # Whether specs may ask to end Session Manager sessions (sessions.mode: terminate_older_than).
    session_termination: bool = False

    @property
    def remediation_documents(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(rule.document for rule in self.remediation_rules))

    def remediation_rules_json(self) -> str:
        return json.dumps([rule.to_json() for rule in self.remediation_rules], separators=(",", ":"))

    def scheduled_specs_json(self) -> str:
        """SCHEDULED_SPECS of start_rollout: the only specs it may start, by name and SHA-256."""
        digests = {scheduled.spec.name: spec_digest(scheduled.spec) for scheduled in self.scheduled_specs}
        return json.dumps(digests, separators=(",", ":"), sort_keys=True)

    def managed_node_tag_json(self) -> str:
        tag = self.instance_tag_condition
        return json.dumps({tag.key: tag.value} if tag else {}, separators=(",", ":"))

    @property
    def free_form_documents(self) -> tuple[str, ...]:
        """Allowed documents that run whatever their parameters say (each gets a synth-time warning)."""
        return tuple(name for name in self.allowed_documents if name in FREE_FORM_DOCUMENTS)


ContextGetter = Callable[[str], Any]


def load_config(get: ContextGetter | Mapping[str, Any], *, project_root: Path = PROJECT_ROOT) -> FleetwaveConfig:
    """Read and validate every ``fleetwave:*`` context key; raise ConfigError listing all problems."""
    getter: ContextGetter = get.get if isinstance(get, Mapping) else get
    reader = _Reader(getter, project_root)
    config = reader.read()
    if reader.problems:
        raise ConfigError(reader.problems)
    return config


class _Reader:
    def __init__(self, get: ContextGetter, project_root: Path) -> None:
        self._get = get
        self._root = project_root
        self.problems: list[str] = []

    def _problem(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def read(self) -> FleetwaveConfig:
        allowed = self._allowed_documents()
        return FleetwaveConfig(
            allowed_documents=allowed,
            notification_emails=self._emails(),
            slack_secret_name=self._slack_secret_name(),
            scheduled_specs=self._scheduled_specs(allowed),
            remediation_rules=self._remediation_rules(allowed),
            powertools_layer_version=self._positive_int(KEY_POWERTOOLS_LAYER_VERSION, DEFAULT_POWERTOOLS_LAYER_VERSION),
            skip_dependency_bundling=self._bool(KEY_SKIP_DEPENDENCY_BUNDLING, default=False),
            instance_tag_condition=self._tag_condition(),
            reserved_concurrency=self._bool(KEY_RESERVED_CONCURRENCY, default=True),
            restartable_services=self._restartable_services(),
            slack_webhook_hosts=self._slack_webhook_hosts(),
            session_termination=self._bool(KEY_SESSION_TERMINATION, default=False),
        )

    # --- shapes ------------------------------------------------------------------------------------
    def _list(self, key: str, *, comma_separated: bool = False) -> list[Any]:
        """A list from cdk.json, or from `-c key=<JSON list>` (or `-c key=a,b` where that is unambiguous)."""
        value = self._get(key)
        if value is None:
            return []
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as error:
                    self._problem(key, f"not a JSON list ({error.msg})")
                    return []
            elif comma_separated:
                value = [part.strip() for part in text.split(",") if part.strip()]
        if not isinstance(value, list):
            self._problem(key, f"expected a list, got {type(value).__name__}")
            return []
        return value

    def _bool(self, key: str, *, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
            return value.strip().lower() == "true"
        self._problem(key, f"{value!r} is not true or false")
        return default

    def _positive_int(self, key: str, default: int) -> int:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self._problem(key, f"{value!r} is not a positive whole number")
            return default
        return value

    # --- keys --------------------------------------------------------------------------------------
    def _allowed_documents(self) -> tuple[str, ...]:
        key = KEY_ALLOWED_DOCUMENTS
        if self._get(key) is None:
            self._problem(key, 'required: the SSM documents fleetwave may run, e.g. ["fleetwave-PatchBaseline"]')
            return ()
        names: list[str] = []
        for index, name in enumerate(self._list(key, comma_separated=True)):
            where = f"{key}[{index}]"
            if not isinstance(name, str) or not _DOCUMENT_NAME.match(name):
                self._problem(where, f"{name!r} is not a document name (3-128 of letters, digits, '_', '-', '.')")
            elif name in names:
                self._problem(where, f"{name!r} is listed twice")
            else:
                names.append(name)
        if not names and not any(p.startswith(key) for p in self.problems):
            self._problem(key, "name at least one document")
        return tuple(names)

    def _emails(self) -> tuple[str, ...]:
        emails: list[str] = []
        for index, email in enumerate(self._list(KEY_NOTIFICATION_EMAILS, comma_separated=True)):
            where = f"{KEY_NOTIFICATION_EMAILS}[{index}]"
            if not isinstance(email, str) or not _EMAIL.match(email):
                self._problem(where, f"{email!r} is not an e-mail address")
            elif email not in emails:
                emails.append(email)
        return tuple(emails)

    def _slack_secret_name(self) -> str | None:
        value = self._get(KEY_SLACK_SECRET_NAME)
        if value is None or value == "":
            return None  # Slack notifications off.
        if not isinstance(value, str) or not _SECRET_NAME.match(value):
            self._problem(KEY_SLACK_SECRET_NAME, f"{value!r} is not a Secrets Manager secret name")
            return None
        return value

    def _tag_condition(self) -> TagCondition | None:
        """Absent: the default tag condition. ``false`` (or "off", "none"): none at all, an explicit opt-out."""
        key = KEY_INSTANCE_TAG_CONDITION
        default = TagCondition(constants.DEFAULT_MANAGED_TAG_KEY, constants.DEFAULT_MANAGED_TAG_VALUE)
        value = self._get(key)
        if value is None or value == "":
            return default
        if value is False or (isinstance(value, str) and value.strip().lower() in TAG_CONDITION_OFF):
            return None
        if isinstance(value, str):
            with contextlib.suppress(json.JSONDecodeError):
                value = json.loads(value)
        if not isinstance(value, Mapping) or set(value) != {"key", "value"}:
            self._problem(key, f'{value!r} is not {{"key": <tag key>, "value": <tag value>}}, or false to opt out')
            return default
        tag_key, tag_value = value["key"], value["value"]
        if not isinstance(tag_key, str) or not _TAG_KEY.match(tag_key) or tag_key.lower().startswith("aws:"):
            self._problem(f"{key}.key", f"{tag_key!r} is not a tag key")
            return default
        if isinstance(tag_value, bool):
            tag_value = str(tag_value).lower()
        if not isinstance(tag_value, str) or not _TAG_VALUE.match(tag_value):
            self._problem(f"{key}.value", f"{tag_value!r} is not a tag value")
            return default
        return TagCondition(tag_key, tag_value)

    def _restartable_services(self) -> tuple[str, ...]:
        key = KEY_RESTARTABLE_SERVICES
        if self._get(key) is None:
            return DEFAULT_RESTARTABLE_SERVICES
        services: list[str] = []
        for index, name in enumerate(self._list(key, comma_separated=True)):
            if not isinstance(name, str) or not _SERVICE_NAME.match(name):
                self._problem(f"{key}[{index}]", f"{name!r} is not a systemd service name (letters, digits, _.@-)")
            elif name not in services:
                services.append(name)
        if not services and not any(p.startswith(key) for p in self.problems):
            self._problem(key, "name at least one service (fleetwave-RestartService allows only these)")
        return tuple(services)

    def _slack_webhook_hosts(self) -> tuple[str, ...]:
        key = KEY_SLACK_WEBHOOK_HOSTS
        if self._get(key) is None:
            return constants.DEFAULT_SLACK_WEBHOOK_HOSTS
        hosts: list[str] = []
        for index, host in enumerate(self._list(key, comma_separated=True)):
            if not isinstance(host, str) or not _HOST.match(host):
                self._problem(f"{key}[{index}]", f"{host!r} is not a host name (e.g. hooks.slack.com)")
            elif host not in hosts:
                hosts.append(host)
        if not hosts and not any(p.startswith(key) for p in self.problems):
            self._problem(key, "name at least one host (default: hooks.slack.com)")
        return tuple(hosts)

    def _scheduled_specs(self, allowed: tuple[str, ...]) -> tuple[ScheduledSpec, ...]:
        key = KEY_SCHEDULED_SPECS
        specs: list[ScheduledSpec] = []
        seen: dict[str, str] = {}
        for index, pattern in enumerate(self._list(key, comma_separated=True)):
            where = f"{key}[{index}]"
            if not isinstance(pattern, str) or not pattern.strip():
                self._problem(where, f"{pattern!r} is not a path to a spec file")
                continue
            base = Path(pattern) if Path(pattern).is_absolute() else self._root / pattern
            paths = sorted(Path(p) for p in glob.glob(str(base)) if Path(p).is_file())
            if not paths:
                self._problem(where, f"{pattern!r} matches no file")
                continue
            for path in paths:
                shown = _relative(path, self._root)
                try:
                    spec = load_spec_text(path.read_text(encoding="utf-8"), source=shown)
                except SpecError as error:
                    for problem in error.problems:
                        self._problem(where, problem if problem.startswith(shown) else f"{shown}: {problem}")
                    continue
                except (OSError, UnicodeDecodeError) as error:
                    self._problem(where, f"{shown}: cannot read ({error})")
                    continue
                if spec.schedule is None:
                    self._problem(where, f"{shown}: schedule: required for a scheduled spec ({{cron, timezone}})")
                    continue
                document = _document_name(spec.document.name)
                if document not in allowed:
                    self._problem(where, f"{shown}: document.name: {document!r} is not in {KEY_ALLOWED_DOCUMENTS}")
                    continue
                if spec.name in seen:
                    self._problem(where, f"{shown}: name: {spec.name!r} is also the name of {seen[spec.name]}")
                    continue
                seen[spec.name] = shown
                specs.append(ScheduledSpec(source=shown, spec=spec))
        size = len(json.dumps({s.spec.name: "0" * 64 for s in specs}, separators=(",", ":")))
        if size > _MAX_SCHEDULED_SPECS_JSON:
            self._problem(
                key,
                f"{len(specs)} scheduled specs take {size} bytes of start_rollout's environment "
                f"(at most {_MAX_SCHEDULED_SPECS_JSON})",
            )
        return tuple(specs)

    def _remediation_rules(self, allowed: tuple[str, ...]) -> tuple[RemediationRule, ...]:
        key = KEY_REMEDIATION_RULES
        rules: list[RemediationRule] = []
        for index, raw in enumerate(self._list(key)):
            rule = self._remediation_rule(f"{key}[{index}]", raw, allowed)
            if rule is None:
                continue
            if any(existing.name == rule.name for existing in rules):
                self._problem(f"{key}[{index}].name", f"{rule.name!r} is the name of an earlier rule")
                continue
            rules.append(rule)
        if rules:
            size = len(json.dumps([rule.to_json() for rule in rules], separators=(",", ":")))
            if size > _MAX_REMEDIATION_RULES_JSON:
                self._problem(
                    key,
                    f"the rules take {size} bytes as JSON; the remediate function's environment (4 KB in all) "
                    f"holds at most {_MAX_REMEDIATION_RULES_JSON}",
                )
        return tuple(rules)

    def _remediation_rule(self, where: str, raw: Any, allowed: tuple[str, ...]) -> RemediationRule | None:
        try:
            rule = parse_rule(raw)
        except RuleError as error:
            for path, problem in error.located:
                self._problem(f"{where}.{path}" if path else where, problem)
            return None
        if rule.document not in allowed:
            self._problem(f"{where}.document", f"{rule.document!r} is not in {KEY_ALLOWED_DOCUMENTS}")
            return None
        return rule


def _document_name(name_or_arn: str) -> str:
    return name_or_arn.split("document/", 1)[1] if name_or_arn.startswith("arn:") else name_or_arn


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()
