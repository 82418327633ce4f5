"""The traffic a simulator run offers: load shape, service mix, behaviour of each session kind,
injected faults. Read from a small YAML file and/or command-line flags (flags win).

Example (every key optional)::

    load: {rate: 200, rate_unit: session, duration_s: 30, ramp_s: 5}   # or concurrency: 50
    mix: {data: 0.6, voice: 0.25, sms: 0.15, sip: 0}
    data: {updates: 3, update_interval_s: 1.0, rating_groups: [10, 20], usage_bytes: 200000}
    voice: {mean_duration_s: 90, max_duration_s: 1200, time_scale: 60}
    roaming_share: 0.1
    international_share: 0.1
    faults: {duplicate_share: 0.01, retransmit_share: 0.01, abandon_share: 0.02,
             malformed_share: 0.001}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml


class ScenarioError(ValueError):
    """A scenario file or flag is invalid; the message names the field."""


class Load(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # Open loop: ``rate`` new sessions (rate_unit session) or CCRs (rate_unit ccr) per second.
    rate: float = 50.0
    rate_unit: Literal["session", "ccr"] = "session"
    # Closed loop instead of open: keep this many sessions in flight (0 = use ``rate``).
    concurrency: int = 0
    # Run length: seconds of arrivals and/or a number of sessions (whichever ends first).
    duration_s: float = 10.0
    sessions: int = 0
    # Linear ramp from 10 % to 100 % of the rate over this many seconds.
    ramp_s: float = 0.0
    # After the last arrival, how long in-flight sessions may take to finish.
    drain_s: float = 30.0
    # Sessions' waits between their requests end on a grid of this many milliseconds (1: the
    # event loop's own timer resolution, timing unchanged). A coarser grid sends more CCRs per
    # write and wakes the simulator less often (less of its CPU taken from a server on the same
    # cores), at the price of up to this much longer waits; arrivals keep 1 ms either way.
    session_timer_slot_ms: int = 1


class Mix(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    data: float = 0.6
    voice: float = 0.25
    sms: float = 0.15
    sip: float = 0.0


class DataSessions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    updates: int = 3  # CCR-U per session, each reporting usage
    update_interval_s: float = 1.0  # real seconds between CCRs of one session
    rating_groups: tuple[int, ...] = (10, 20)  # one MSCC per rating group
    usage_bytes: int = 200_000  # reported per MSCC per report (capped by the grant)
    request_bytes: int = 0  # RSU CC-Total-Octets; 0 = empty RSU (server's default grant)


class VoiceCalls(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    mean_duration_s: float = 90.0  # exponential distribution, in call seconds
    max_duration_s: int = 1200
    time_scale: float = 60.0  # call seconds per real second (60: a 90 s call lasts 1.5 s)


class Faults(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    duplicate_share: float = 0.0  # a request sent again (new Hop-by-Hop) after its answer
    retransmit_share: float = 0.0  # a request sent again at once with the T flag
    abandon_share: float = 0.0  # sessions that never send CCR-T (the server's Tcc releases)
    malformed_share: float = 0.0  # extra CCRs without CC-Request-Type (expect 5005)


class Target(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    diameter_host: str = "127.0.0.1"
    diameter_port: int = 3868
    # More server processes on other ports: connections are spread over all the ports.
    extra_diameter_ports: tuple[int, ...] = ()
    destination_realm: str = ""  # empty: the server's Origin-Realm from its CEA
    origin_realm: str = "sim.local"
    sip_host: str = "127.0.0.1"
    sip_port: int = 5060
    http_url: str = "http://127.0.0.1:8080"
    # The proxy key the call ends are posted with (ocs apikey create --role proxy --tenant ...,
    # one key for every tenant the run calls for).
    http_key: str = ""
    request_timeout_s: float = 5.0
    watchdog_s: float = 30.0


class Scenario(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    load: Load = Load()
    mix: Mix = Mix()
    data: DataSessions = DataSessions()
    voice: VoiceCalls = VoiceCalls()
    faults: Faults = Faults()
    target: Target = Target()
    roaming_share: float = 0.1
    international_share: float = 0.1
    catalog: str = "examples/catalog"
    tenants: tuple[str, ...] = ()  # empty: every tenant of the catalog
    subscribers_per_tenant_max: int = 0  # 0: every subscriber of the catalog
    workers: int = 2
    connections_per_worker: int = 1
    seed: int = 0  # 0: random

    def ccrs_per_session(self) -> float:
        """Expected CCRs per session under the mix (converts a CCR rate to a session rate)."""
        mix = self.mix
        total = mix.data + mix.voice + mix.sms + mix.sip
        if total <= 0:
            return 1.0
        data = self.data.updates + 2
        voice = 2.0  # I + T (more when a call outlasts its grant)
        return (mix.data * data + mix.voice * voice + mix.sms * 1 + mix.sip * 0) / total or 1.0

    def session_rate(self) -> float:
        if self.load.rate_unit == "ccr":
            return self.load.rate / self.ccrs_per_session()
        return self.load.rate


def _fail_on(errors: list[str], condition: bool, message: str) -> None:
    if condition:
        errors.append(message)


def validate(scenario: Scenario) -> Scenario:
    errors: list[str] = []
    load, mix, faults = scenario.load, scenario.mix, scenario.faults
    _fail_on(errors, load.rate <= 0 and load.concurrency <= 0, "load.rate or load.concurrency > 0")
    _fail_on(errors, load.concurrency < 0, "load.concurrency must be >= 0")
    _fail_on(
        errors, load.duration_s <= 0 and load.sessions <= 0, "load.duration_s or load.sessions > 0"
    )
    _fail_on(errors, load.ramp_s < 0 or load.drain_s < 0, "load.ramp_s and drain_s must be >= 0")
    _fail_on(
        errors, not 1 <= load.session_timer_slot_ms <= 100, "load.session_timer_slot_ms 1..100"
    )
    weights = (mix.data, mix.voice, mix.sms, mix.sip)
    _fail_on(errors, min(weights) < 0 or sum(weights) <= 0, "mix: weights >= 0, sum > 0")
    for name, share in (
        ("roaming_share", scenario.roaming_share),
        ("international_share", scenario.international_share),
        ("faults.duplicate_share", faults.duplicate_share),
        ("faults.retransmit_share", faults.retransmit_share),
        ("faults.abandon_share", faults.abandon_share),
        ("faults.malformed_share", faults.malformed_share),
    ):
        _fail_on(errors, not 0.0 <= share <= 1.0, f"{name} must be within 0..1")
    _fail_on(errors, scenario.data.updates < 0, "data.updates must be >= 0")
    _fail_on(errors, not scenario.data.rating_groups, "data.rating_groups must not be empty")
    _fail_on(errors, scenario.data.usage_bytes <= 0, "data.usage_bytes must be > 0")
    _fail_on(errors, scenario.voice.mean_duration_s <= 0, "voice.mean_duration_s must be > 0")
    _fail_on(errors, scenario.voice.time_scale <= 0, "voice.time_scale must be > 0")
    _fail_on(errors, not 1 <= scenario.workers <= 64, "workers must be 1..64")
    _fail_on(errors, not 1 <= scenario.connections_per_worker <= 64, "connections 1..64")
    _fail_on(errors, scenario.target.request_timeout_s <= 0, "target.request_timeout_s > 0")
    if errors:
        raise ScenarioError("; ".join(errors))
    return scenario


def load_scenario(path: str | Path | None, overrides: dict[str, Any] | None = None) -> Scenario:
    """The scenario of a YAML file (or the defaults), with ``overrides`` (section -> key ->
    value, or top-level key -> value) applied on top."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ScenarioError(f"cannot read scenario {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ScenarioError(f"scenario {path} is not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ScenarioError(f"scenario {path}: the top level must be a mapping")
        raw = loaded or {}
    for key, value in (overrides or {}).items():
        if isinstance(value, dict):
            section = raw.setdefault(key, {})
            if not isinstance(section, dict):
                raise ScenarioError(f"scenario: {key} must be a mapping")
            section.update(value)
        else:
            raw[key] = value
    try:
        scenario = msgspec.convert(raw, Scenario, strict=False)
    except msgspec.ValidationError as exc:
        raise ScenarioError(f"scenario: {exc}") from None
    return validate(scenario)
