"""The ledger scenarios against a standalone redis-server."""

from __future__ import annotations

import pytest

from balance.ledger import Ledger
from tests.balance import scenarios


@pytest.mark.parametrize("scenario", scenarios.ALL, ids=lambda s: s.__name__)
async def test_scenario(ledger: Ledger, scenario: scenarios.Scenario) -> None:
    await scenario(ledger)
