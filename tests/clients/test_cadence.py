"""Cadence facts live on the cadence (RetainerTerms.Cadence), once."""

import pytest

from clients.models import Plan, RetainerTerms

Cadence = RetainerTerms.Cadence


@pytest.mark.parametrize(
    ("cadence", "months", "per_year", "noun", "two"),
    [
        (Cadence.MONTHLY, 1, 12, "month", "2 months"),
        (Cadence.QUARTERLY, 3, 4, "quarter", "2 quarters"),
        (Cadence.YEARLY, 12, 1, "year", "2 years"),
    ],
)
def test_each_cadence_knows_its_facts(cadence, months, per_year, noun, two):
    assert (cadence.months, cadence.per_year, cadence.noun, cadence.counted(2)) == (months, per_year, noun, two)
    assert cadence.counted(1) == f"1 {noun}"
    assert Plan(cadence=cadence.value).cadence_facts is cadence
