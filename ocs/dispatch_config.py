"""The dispatch file (YAML): which plug-ins deliver which tenants' events, and the policy.

```yaml
policy: {attempts_max: 8, backoff_base_s: 1.0, backoff_max_s: 300.0}
plugins:
  - name: mno-hlr            # consumer group dispatch:<name>; one status per event and plug-in
    kind: hlr                # entry point in the mvna_ocs.plugins group
    tenants: [acme]          # optional: only these tenants' events (default: all)
    types: [created, blocked, unblocked]   # optional: only these event types (others: ok)
    options: {url: "http://gw.example:8080/prov", host_mno: "MNO-A"}
    confirms_provisioning: true  # optional: its ok releases a held subscriber (provisioning)
```
Errors name the file and the key (``dispatch.yaml: plugins[0].kind: ...``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from balance.events import EVENT_TYPES
from balance.keys import TENANT_ID_RE
from ocs.dispatch_core import Policy

PLUGINS_MAX = 32
# The dispatch file's keys (the docs' key check reads these as known vocabulary).
POLICY_KEYS = frozenset({"attempts_max", "backoff_base_s", "backoff_max_s"})
SETTINGS_KEYS = frozenset(
    {"poll_s", "read_count", "claim_idle_s", "handle_timeout_s", "scan_every_s", "trim",
     "streams_in_flight"}
)  # fmt: skip
PLUGIN_OPTION_KEYS = frozenset(
    {"url", "secret", "secret_env", "timeout_s", "host_mno", "namespace", "operations",
     "username", "password", "host", "port", "from", "to", "starttls", "language", "currency",
     "templates", "directory", "interval_s", "batch_max", "prefix"}
)  # fmt: skip
NAME_MAX = 64


class DispatchConfigError(ValueError):
    """The dispatch file is wrong; the message names file and key."""


@dataclass(frozen=True, slots=True)
class PluginSpec:
    name: str
    kind: str
    tenants: frozenset[str] | None = None  # None: every tenant
    types: frozenset[str] | None = None  # None: every event type
    options: dict[str, Any] = field(default_factory=dict)
    # Its ok for a held subscriber's created / sim_swapped event releases the provisioning
    # hold (ocs.provisioning_hold): set on the host MNO's provisioning plug-in.
    confirms_provisioning: bool = False

    @property
    def group(self) -> str:
        return f"dispatch:{self.name}"

    def takes(self, tenant: str) -> bool:
        return self.tenants is None or tenant in self.tenants

    def wants(self, event_type: str) -> bool:
        return self.types is None or event_type in self.types


@dataclass(frozen=True, slots=True)
class DispatchConfig:
    plugins: tuple[PluginSpec, ...]
    policy: Policy = field(default_factory=Policy)
    poll_s: float = 0.2
    read_count: int = 100
    claim_idle_s: float = 30.0
    handle_timeout_s: float = 10.0
    scan_every_s: float = 5.0
    trim: bool = True
    streams_in_flight: int = 32


def _names(where: str, value: Any, allowed: tuple[str, ...] | None) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DispatchConfigError(f"{where}: must be a list of names")
    for v in value:
        if allowed is not None and v not in allowed:
            raise DispatchConfigError(f"{where}: unknown {v!r} (one of {', '.join(allowed)})")
        if allowed is None and not TENANT_ID_RE.match(v):
            raise DispatchConfigError(f"{where}: {v!r} is not a tenant id")
    return frozenset(value)


def _number(where: str, data: dict[str, Any], key: str, default: float, low: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
        raise DispatchConfigError(f"{where}{key}: must be a number >= {low}")
    return float(value)


def parse_dispatch(data: Any, source: str = "dispatch") -> DispatchConfig:
    if not isinstance(data, dict):
        raise DispatchConfigError(f"{source}: must be a mapping with a plugins list")
    unknown = set(data) - {"policy", "plugins", "settings"}
    if unknown:
        raise DispatchConfigError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}")
    plugins = data.get("plugins")
    if not isinstance(plugins, list) or not 1 <= len(plugins) <= PLUGINS_MAX:
        raise DispatchConfigError(f"{source}: plugins: a list of 1-{PLUGINS_MAX} plug-ins")
    specs: list[PluginSpec] = []
    for i, item in enumerate(plugins):
        where = f"{source}: plugins[{i}]"
        if not isinstance(item, dict):
            raise DispatchConfigError(f"{where}: must be a mapping")
        extra = set(item) - {"name", "kind", "tenants", "types", "options", "confirms_provisioning"}
        if extra:
            raise DispatchConfigError(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
        name, kind = item.get("name"), item.get("kind")
        for key, value in (("name", name), ("kind", kind)):
            if not isinstance(value, str) or not TENANT_ID_RE.match(value):
                raise DispatchConfigError(f"{where}.{key}: 1-{NAME_MAX} of A-Z a-z 0-9 _ . -")
        assert isinstance(name, str) and isinstance(kind, str)
        if any(s.name == name for s in specs):
            raise DispatchConfigError(f"{where}.name: {name!r} used twice")
        options = item.get("options", {})
        if not isinstance(options, dict):
            raise DispatchConfigError(f"{where}.options: must be a mapping")
        confirms = item.get("confirms_provisioning", False)
        if not isinstance(confirms, bool):
            raise DispatchConfigError(f"{where}.confirms_provisioning: must be true or false")
        specs.append(
            PluginSpec(
                name,
                kind,
                _names(f"{where}.tenants", item.get("tenants"), None),
                _names(f"{where}.types", item.get("types"), EVENT_TYPES),
                dict(options),
                confirms,
            )
        )
    policy_data = data.get("policy", {})
    settings = data.get("settings", {})
    if not isinstance(policy_data, dict) or not isinstance(settings, dict):
        raise DispatchConfigError(f"{source}: policy and settings must be mappings")
    try:
        policy = Policy(
            attempts_max=int(_number(f"{source}: policy.", policy_data, "attempts_max", 8, 1)),
            backoff_base_s=_number(f"{source}: policy.", policy_data, "backoff_base_s", 1.0, 0),
            backoff_max_s=_number(f"{source}: policy.", policy_data, "backoff_max_s", 300.0, 0),
        )
    except ValueError as exc:
        raise DispatchConfigError(f"{source}: policy: {exc}") from None
    s = f"{source}: settings."
    return DispatchConfig(
        plugins=tuple(specs),
        policy=policy,
        poll_s=_number(s, settings, "poll_s", 0.2, 0.001),
        read_count=int(_number(s, settings, "read_count", 100, 1)),
        claim_idle_s=_number(s, settings, "claim_idle_s", 30.0, 0.001),
        handle_timeout_s=_number(s, settings, "handle_timeout_s", 10.0, 0.001),
        scan_every_s=_number(s, settings, "scan_every_s", 5.0, 0.001),
        trim=bool(settings.get("trim", True)),
        streams_in_flight=int(_number(s, settings, "streams_in_flight", 32, 1)),
    )


def load_dispatch_file(path: str | Path) -> DispatchConfig:
    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DispatchConfigError(f"{file}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise DispatchConfigError(f"{file}{line}: not valid YAML") from None
    return parse_dispatch(data, str(file))
