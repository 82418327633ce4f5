"""The IMS subscriber's PLMN from P-Access-Network-Info and P-Visited-Network-ID values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from diameter_apps.credit_control.ims_location import (
    access_network_plmn,
    ims_visited_plmn,
    visited_network_plmn,
)

EUTRAN_HOME = "3GPP-E-UTRAN-FDD; utran-cell-id-3gpp=2620100A1B2C3D45; network-provided"
EUTRAN_US = '3GPP-E-UTRAN-TDD;utran-cell-id-3gpp="31026000A1B2C3D45";network-provided'


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (EUTRAN_HOME, ("26201", True)),
        (EUTRAN_US, ("310260", True)),  # three-digit MNC: one more digit before TAC + ECI
        ("3GPP-GERAN; cgi-3gpp=20810ABCD1234", ("20810", False)),  # LAC + CI: 4 + 4 hex
        ("3GPP-UTRAN-FDD; utran-cell-id-3gpp=23415ABCD1234567", ("23415", False)),
        ("3GPP-NR-FDD; utran-cell-id-3gpp=26203000001123456789", ("26203", False)),  # 6 + 9 hex
        ("IEEE-802.11; i-wlan-node-id=ffffffffffff", (None, False)),  # no PLMN on Wi-Fi
        ("3GPP-E-UTRAN-FDD; utran-cell-id-3gpp=262", (None, False)),  # too short
        ("3GPP-E-UTRAN-FDD; utran-cell-id-3gpp=26201XXXXXXXXXXX", (None, False)),  # not hex
        ("3GPP-E-UTRAN-FDD; network-provided", (None, True)),
    ],
)
def test_cell_identity_gives_the_plmn(header: str, expected: tuple[str | None, bool]) -> None:
    assert access_network_plmn(header) == expected


def test_visited_network_identifier_as_a_3gpp_domain() -> None:
    assert visited_network_plmn("ims.mnc001.mcc262.3gppnetwork.org") == "26201"  # padded MNC
    assert visited_network_plmn('"IMS.MNC260.MCC310.3GPPNETWORK.ORG"') == "310260"
    assert visited_network_plmn("Visited Network Number 1") is None


def test_the_network_provided_header_beats_the_visited_network_beats_the_ue() -> None:
    ue_says_home = "3GPP-E-UTRAN-FDD; utran-cell-id-3gpp=2620100A1B2C3D45"
    visited = "ims.mnc010.mcc208.3gppnetwork.org"
    assert ims_visited_plmn([ue_says_home, EUTRAN_US], visited) == "310260"
    assert ims_visited_plmn([ue_says_home], visited) == "20810"
    assert ims_visited_plmn([ue_says_home], None) == "26201"
    assert ims_visited_plmn([], None) is None


@given(st.text(max_size=600))
def test_any_text_gives_a_plmn_or_none_never_an_error(text: str) -> None:
    plmn = ims_visited_plmn([text], text)
    assert plmn is None or (plmn.isdigit() and len(plmn) in (5, 6))
