"""The ISO 4217 currencies a tenant may bill in, from pycountry's maintained ISO 4217 table.

The catalog loader checks a tenant's ``currency`` against this table and the credit-control
answer builder (``diameter_apps.credit_control.currency_code``) takes the numeric code for the
Currency-Code AVP from the same table, so every currency a catalog accepts can be put on the
wire. Upgrading pycountry follows ISO 4217 amendments (a new or withdrawn currency).
"""

from __future__ import annotations

import re

import pycountry

# ISO 4217 reserves these codes for "no currency" and for testing: not money a tenant bills in.
NOT_MONEY = frozenset({"XXX", "XTS"})
ISO_4217_ALPHA: frozenset[str] = frozenset(
    c.alpha_3 for c in pycountry.currencies if c.alpha_3 not in NOT_MONEY
)
# As a pattern, for the YAML reader's ``string(node, field, pattern)`` check.
ISO_4217: re.Pattern[str] = re.compile("|".join(sorted(ISO_4217_ALPHA)))
