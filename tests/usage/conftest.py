"""Fixtures of the usage tests: the charging harness (real handler, ledger, demo catalog) for
the exporter tests that charge CCRs before exporting them."""

from tests.charging.conftest import charging

__all__ = ["charging"]
