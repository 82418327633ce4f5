"""Service units ⇄ Diameter unit AVPs: bytes are octets, seconds CC-Time, events
CC-Service-Specific-Units (the one mapping, used by requests and answers alike)."""

from __future__ import annotations

from diameter_apps.credit_control import GrantedUnits, ServiceUnits

BYTE, SECOND, EVENT = "byte", "second", "event"


def requested_amount(units: ServiceUnits | None, unit: str) -> int | None:
    """The amount an RSU asks for in ``unit``; None for an empty RSU (the server picks)."""
    if units is None:
        return None
    if unit == BYTE:
        return units.octets
    if unit == SECOND:
        return units.time_s
    return units.service_specific_units


def used_amount(units: ServiceUnits, unit: str) -> int:
    """The amount a USU reports in ``unit`` (0 when it reports another unit only)."""
    if unit == BYTE:
        return units.octets or 0
    if unit == SECOND:
        return units.time_s or 0
    return units.service_specific_units or 0


def granted(amount: int, unit: str) -> GrantedUnits:
    if unit == BYTE:
        return GrantedUnits(total_octets=amount)
    if unit == SECOND:
        return GrantedUnits(time_s=amount)
    return GrantedUnits(service_specific_units=amount)
