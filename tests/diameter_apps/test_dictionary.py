"""Dictionary: the checklist AVPs of DESIGN §3 with their types and M-bit rules; commands."""

from __future__ import annotations

import pytest

from diameter_apps.codes import VENDOR_3GPP, CommandCode
from diameter_apps.dictionary import AvpType, MBitRule, default_dictionary

BASE_AND_CC = [
    263,
    264,
    296,
    293,
    283,
    258,
    260,
    266,
    265,
    269,
    257,
    278,
    268,
    297,
    279,
    281,
    273,
    282,
    284,
    55,
    295,
    285,
    416,
    415,
    461,
    443,
    450,
    444,
    455,
    456,
    432,
    439,
    437,
    431,
    446,
    420,
    421,
    412,
    414,
    417,
    413,
    445,
    447,
    429,
    425,
    448,
    430,
    449,
    434,
    436,
    422,
    423,
    418,
    427,
    428,
    452,
    458,
    30,
]
THREE_GPP = [873, 874, 876, 2000, 868, 869, 1226, 871, 872, 1264, 870, 21, 22, 18, 829, 831, 832]


@pytest.mark.parametrize("code", BASE_AND_CC)
def test_base_and_credit_control_avps_are_known(code: int) -> None:
    assert default_dictionary().avp(code) is not None


@pytest.mark.parametrize("code", THREE_GPP)
def test_3gpp_avps_are_known_with_vendor_10415(code: int) -> None:
    definition = default_dictionary().avp(code, VENDOR_3GPP)
    assert definition is not None and definition.vendor == VENDOR_3GPP


def test_derived_types_and_rules_python_diameter_lacks() -> None:
    d = default_dictionary()
    assert d.avp_named("Origin-Host").type is AvpType.DIAMETER_IDENTITY
    assert d.avp_named("Redirect-Host").type is AvpType.DIAMETER_URI
    assert d.avp_named("CC-Request-Type").type is AvpType.ENUMERATED
    assert d.avp_named("Result-Code").type is AvpType.UNSIGNED32
    assert d.avp_named("Multiple-Services-Credit-Control").type is AvpType.GROUPED
    assert d.avp_named("CC-Total-Octets").type is AvpType.UNSIGNED64
    assert d.avp_named("Event-Timestamp").type is AvpType.TIME
    assert d.avp_named("Host-IP-Address").type is AvpType.ADDRESS
    assert d.avp_named("Session-Id").m_bit is MBitRule.MUST
    assert d.avp_named("Error-Message").m_bit is MBitRule.MUST_NOT
    assert d.avp(872, VENDOR_3GPP).name == "Reporting-Reason"  # type: ignore[union-attr]


def test_commands_name_their_required_avps() -> None:
    d = default_dictionary()
    for code in (257, 280, 282, 272, 258, 274):
        assert d.command(code) is not None
    ccr = d.command(CommandCode.CREDIT_CONTROL)
    assert ccr is not None
    # The base requires the routing AVPs; the credit-control ones are parse_ccr's to require.
    assert {(263, 0), (264, 0), (296, 0), (283, 0)} == set(ccr.request_required)
    assert d.command(999) is None
