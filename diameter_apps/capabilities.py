"""The settings a peer connection runs with, and the capabilities exchange (RFC 6733 §5.3):
what a CER is answered with, and which of its applications are served here. Pure functions of
the settings, the served applications and the CER; :class:`~diameter_apps.peer.PeerConnection`
decides when they run."""

from __future__ import annotations

from collections.abc import Collection

import msgspec

from diameter_apps.answers import answer_to
from diameter_apps.codec import Avp, Message
from diameter_apps.codes import VENDOR_3GPP, ApplicationId, AvpCode, DisconnectCause
from diameter_apps.errors import DiameterError, NoCommonApplication, UnknownPeer
from diameter_apps.limits import DEFAULT_LIMITS, CodecLimits
from diameter_apps.validation import Profile

_WATCHDOG_INTERVAL_MIN_S = 6.0
"""RFC 3539 §3.4.1: Tw MUST NOT be set lower than 6 seconds."""


class PeerSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Who we are and how patient we are; one per listener, shared by its connections."""

    origin_host: str
    origin_realm: str
    host_ip_addresses: tuple[str, ...] = ("127.0.0.1",)
    vendor_id: int = 0
    product_name: str = "mvna-ocs"
    firmware_revision: int | None = None
    origin_state_id: int = 1
    allowed_peer_hosts: frozenset[str] | None = None
    """Origin-Hosts allowed to connect (compared case-insensitively); None allows any."""
    watchdog_interval_s: float = 30.0
    watchdog_jitter_s: float = 2.0
    cer_timeout_s: float = 10.0
    dpa_timeout_s: float = 5.0
    drain_timeout_s: float = 10.0
    inflight_requests_max: int = 1_000
    profile: Profile = Profile.LENIENT
    limits: CodecLimits = DEFAULT_LIMITS
    disconnect_cause: DisconnectCause = DisconnectCause.REBOOTING

    def __post_init__(self) -> None:
        if self.watchdog_interval_s < _WATCHDOG_INTERVAL_MIN_S:
            raise ValueError("watchdog_interval_s must be at least 6 (RFC 3539)")
        if (
            not 0
            <= self.watchdog_jitter_s
            < self.watchdog_interval_s - _WATCHDOG_INTERVAL_MIN_S + 2
        ):
            raise ValueError("watchdog_jitter_s must be small next to watchdog_interval_s")
        if min(self.cer_timeout_s, self.dpa_timeout_s, self.drain_timeout_s) <= 0:
            raise ValueError("timeouts must be positive")
        if self.inflight_requests_max < 1:
            raise ValueError("inflight_requests_max must be positive")


class Capabilities(msgspec.Struct, frozen=True):
    """The outcome of a CER we accept: common applications and the AVPs mirroring their form."""

    application_ids: tuple[int, ...]
    mirrored: tuple[Avp, ...]


def evaluate_cer(
    cer: Message, settings: PeerSettings, ours: Collection[int]
) -> DiameterError | Capabilities:
    """The verdict on a CER: the capabilities to answer it with, or the error refusing it."""
    try:
        host = cer.origin_host or ""
        allowed = settings.allowed_peer_hosts
        if allowed is not None and host.lower() not in {h.lower() for h in allowed}:
            raise UnknownPeer(f"peer {host!r} is not in the allowed peer list", request=cer)
        return common_applications(cer, ours)
    except DiameterError as error:
        error.request = cer
        return error


def common_applications(cer: Message, ours: Collection[int]) -> Capabilities:
    """The applications of ``cer`` served here (Relay in the CER stands for all of ours), each
    mirrored in the form the peer advertised it; 5010 when there is none."""
    relay = int(ApplicationId.RELAY)
    common: list[int] = []
    mirrored: list[Avp] = []
    for avp in cer.find_all(AvpCode.AUTH_APPLICATION_ID):
        app = avp.as_u32()
        for served in sorted(ours) if app == relay else [app]:
            if served in ours and served not in common:
                common.append(served)
                mirrored.append(Avp.u32(AvpCode.AUTH_APPLICATION_ID, served))
    for vsai in cer.find_all(AvpCode.VENDOR_SPECIFIC_APPLICATION_ID):
        vendor_avp = vsai.find(AvpCode.VENDOR_ID)
        auth_avp = vsai.find(AvpCode.AUTH_APPLICATION_ID)
        if vendor_avp is None or auth_avp is None:
            continue
        app = auth_avp.as_u32()
        if app in ours:
            if app not in common:
                common.append(app)
            mirrored.append(
                Avp.grouped(
                    AvpCode.VENDOR_SPECIFIC_APPLICATION_ID,
                    [
                        Avp.u32(AvpCode.VENDOR_ID, vendor_avp.as_u32()),
                        Avp.u32(AvpCode.AUTH_APPLICATION_ID, app),
                    ],
                )
            )
    if not common:
        raise NoCommonApplication(
            f"none of the peer's applications is served here (we serve {sorted(ours)})",
            request=cer,
        )
    return Capabilities(tuple(common), tuple(mirrored))


def capability_avps(settings: PeerSettings) -> list[Avp]:
    """The AVPs describing us in every CEA, accepting or not."""
    avps = [Avp.address(AvpCode.HOST_IP_ADDRESS, ip) for ip in settings.host_ip_addresses]
    avps.append(Avp.u32(AvpCode.VENDOR_ID, settings.vendor_id))
    avps.append(Avp.utf8(AvpCode.PRODUCT_NAME, settings.product_name, m=False))
    avps.append(Avp.u32(AvpCode.ORIGIN_STATE_ID, settings.origin_state_id))
    avps.append(Avp.u32(AvpCode.SUPPORTED_VENDOR_ID, VENDOR_3GPP))
    return avps


def accepting_avps(settings: PeerSettings, capabilities: Capabilities) -> list[Avp]:
    """The AVPs of a CEA accepting a CER (Result-Code 2001 aside)."""
    avps = capability_avps(settings)
    avps.extend(capabilities.mirrored)
    if settings.firmware_revision is not None:
        avps.append(Avp.u32(AvpCode.FIRMWARE_REVISION, settings.firmware_revision, m=False))
    return avps


def rejecting_cea(cer: Message, settings: PeerSettings, error: DiameterError) -> Message:
    """The CEA refusing ``cer`` with ``error``: its Result-Code, our capabilities, Failed-AVP."""
    return answer_to(
        cer,
        origin_host=settings.origin_host,
        origin_realm=settings.origin_realm,
        result_code=int(error.result_code),
        avps=capability_avps(settings),
        error_bit=error.e_bit,
        error_message=error.error_message,
        failed_avps=error.failed_avps,
    )
