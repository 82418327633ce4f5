"""3GPP-User-Location-Info (TS 29.061 §16.4.7.2) for each geographic location type."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diameter_apps.credit_control.codes import GeographicLocationType as T
from diameter_apps.credit_control.location import (
    LocationError,
    UserLocation,
    check_mcc_mnc,
    decode_plmn,
    decode_user_location,
    encode_plmn,
)

# MCC 262 MNC 01 (Germany) and MCC 310 MNC 410 (USA, three-digit MNC), hand-encoded.
DE = bytes.fromhex("62f210")
US = bytes.fromhex("130014")


def test_plmn_bcd_by_hand() -> None:
    assert decode_plmn(DE) == "26201"
    assert decode_plmn(US) == "310410"
    assert encode_plmn("26201") == DE
    assert encode_plmn("310410") == US


@pytest.mark.parametrize(
    ("octets", "expected"),
    [
        (
            bytes([0]) + DE + bytes.fromhex("1234 5678"),
            UserLocation(kind=T.CGI, mcc_mnc="26201", area_code=0x1234, cell_id=0x5678),
        ),
        (
            bytes([1]) + US + bytes.fromhex("0001 00ff"),
            UserLocation(kind=T.SAI, mcc_mnc="310410", area_code=1, cell_id=0xFF),
        ),
        (
            bytes([2]) + DE + bytes.fromhex("abcd 07"),
            UserLocation(kind=T.RAI, mcc_mnc="26201", area_code=0xABCD),
        ),
        (
            bytes([2]) + DE + bytes.fromhex("abcd 07ff"),
            UserLocation(kind=T.RAI, mcc_mnc="26201", area_code=0xABCD),
        ),
        (
            bytes([128]) + DE + bytes.fromhex("0102"),
            UserLocation(kind=T.TAI, mcc_mnc="26201", area_code=0x0102),
        ),
        (
            bytes([129]) + US + bytes.fromhex("f1234567"),
            UserLocation(kind=T.ECGI, mcc_mnc="310410", cell_id=0x1234567),
        ),
        (
            bytes([130]) + DE + bytes.fromhex("0102") + US + bytes.fromhex("01234567"),
            UserLocation(kind=T.TAI_ECGI, mcc_mnc="26201", area_code=0x0102, cell_id=0x1234567),
        ),
        (
            bytes([135]) + DE + bytes.fromhex("f123456789"),
            UserLocation(kind=T.NCGI, mcc_mnc="26201", cell_id=0x123456789),
        ),
        (
            bytes([136]) + US + bytes.fromhex("000102"),
            UserLocation(kind=T.TAI_5GS, mcc_mnc="310410", area_code=0x102),
        ),
        (
            bytes([137]) + DE + bytes.fromhex("000102") + DE + bytes.fromhex("0123456789"),
            UserLocation(
                kind=T.TAI_5GS_NCGI, mcc_mnc="26201", area_code=0x102, cell_id=0x123456789
            ),
        ),
    ],
    ids=lambda value: value.kind.name if isinstance(value, UserLocation) else None,
)
def test_each_geographic_location_type(octets: bytes, expected: UserLocation) -> None:
    assert decode_user_location(octets) == expected


@pytest.mark.parametrize(
    ("octets", "message"),
    [
        (b"", "empty"),
        (bytes([3]) + DE + b"\x00" * 4, "unknown geographic location type 3"),
        (bytes([130]) + DE + b"\x00\x01", "TAI_ECGI location needs 12 octets"),
        (bytes([128]) + bytes.fromhex("a2f210") + b"\x00\x01", "not BCD"),
        (bytes([128]) + bytes.fromhex("62e210") + b"\x00\x01", "not BCD"),
        (bytes([0]) + DE, "CGI location needs 7 octets"),
    ],
)
def test_malformed_locations_are_refused(octets: bytes, message: str) -> None:
    with pytest.raises(LocationError, match=message):
        decode_user_location(octets)


@pytest.mark.parametrize("value", ["2620", "2620100", "26a01", "２６２０１", ""])
def test_sgsn_mcc_mnc_must_be_five_or_six_ascii_digits(value: str) -> None:
    with pytest.raises(LocationError):
        check_mcc_mnc(value)


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"\A[0-9]{5,6}\Z"))
def test_plmn_round_trip(mcc_mnc: str) -> None:
    assert decode_plmn(encode_plmn(mcc_mnc)) == mcc_mnc


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=20))
def test_any_octets_decode_or_raise_location_error(octets: bytes) -> None:
    try:
        location = decode_user_location(octets)
    except LocationError:
        return
    assert len(location.mcc_mnc) in (5, 6) and location.mcc_mnc.isdigit()
