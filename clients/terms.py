"""Terms as a consultant reads them: one line per plan, retainer or proposal."""

from __future__ import annotations

from clients.models import RetainerTerms
from retainers.money import format_money
from retainers.units import format_units


def describe_terms(terms: RetainerTerms, *, locale: str = "en_US") -> str:
    """One line for lists, e.g. “10 hours / month · rollover, cap 5, expires after 2 months · £1,500.00”."""
    noun = terms.cadence_facts.noun
    unit = terms.get_unit_display().lower()
    if terms.model == RetainerTerms.Model.DELIVERABLES:
        count = len(terms.deliverables)
        parts = [f"{count} deliverable{'s' if count != 1 else ''} / {noun}"]
        if terms.deliverables_carry:
            parts.append("unfinished ones carry over")
    else:
        units = terms.units_per_period
        parts = [f"{format_units(units)} {unit.removesuffix('s') if units == 1 else unit} / {noun}"]
        if terms.model == RetainerTerms.Model.ROLLOVER:
            rollover = "rollover"
            if terms.rollover_cap is not None:
                rollover += f", cap {format_units(terms.rollover_cap)}"
            if terms.rollover_expiry_periods:
                n = terms.rollover_expiry_periods
                rollover += f", expires after {terms.cadence_facts.counted(n)}"
            parts.append(rollover)
        else:
            parts.append(f"unused {unit} lapse")
    parts.append(format_money(terms.price_minor, terms.currency, locale))
    return " · ".join(parts)
