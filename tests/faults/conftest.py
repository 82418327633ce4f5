"""The fault tests reuse the in-process charging harness of tests/charging."""

from tests.charging.conftest import charging  # noqa: F401 (a fixture, used by name)
