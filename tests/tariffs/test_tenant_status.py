"""The tenant ``status`` field: ``active`` (default) or ``suspended``, checked like the rest."""

from __future__ import annotations

import pytest

from tariffs.errors import CatalogError
from tariffs.loader import load_texts
from tariffs.model import ACTIVE, SUSPENDED
from tests.tariffs.catalogs import MINIMAL


def problems_of(text: str) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        load_texts([("t0.yaml", text)])
    return [str(p) for p in caught.value.problems]


def test_status_defaults_to_active() -> None:
    (tenant,) = load_texts([("t0.yaml", MINIMAL)]).tenants
    assert tenant.status is ACTIVE


@pytest.mark.parametrize(("written", "expected"), [("active", ACTIVE), ("suspended", SUSPENDED)])
def test_status_is_read_as_the_model_constant(written: str, expected: str) -> None:
    (tenant,) = load_texts([("t0.yaml", MINIMAL + f"status: {written}\n")]).tenants
    assert tenant.status is expected  # identity: the charging hot path compares with ``is``


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("paused", "t0.yaml:16: status: 'paused' is not active or suspended"),
        ("Suspended", "t0.yaml:16: status: 'Suspended' is not active or suspended"),
        ('""', "t0.yaml:16: status: must not be empty"),
    ],
)
def test_wrong_status_is_refused_with_its_line(value: str, problem: str) -> None:
    assert problems_of(MINIMAL + f"status: {value}\n") == [problem]


def test_status_that_is_not_a_string_is_refused() -> None:
    [problem] = problems_of(MINIMAL + "status: [suspended]\n")
    assert problem.startswith("t0.yaml:16: status: ")
