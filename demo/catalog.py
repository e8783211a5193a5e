"""The words of the demo: plan templates, work descriptions and the names of made-up clients.

Plain data, shared by the hand-written demo workspace and the generated bench workspaces.
"""

from __future__ import annotations

from decimal import Decimal as D
from typing import TYPE_CHECKING, Any, cast

from clients.models import Plan, RetainerTerms

if TYPE_CHECKING:
    from django.db.models import Field

# Plan templates, keyed by a short name. Prices are in minor units of the workspace's currency.
PLANS: dict[str, dict[str, Any]] = {
    "advisory": {
        "name": "Advisory retainer (20 h, rollover)",
        "description": "Twenty hours a month of operations advice. Unused hours roll over for two months, up to ten.",
        "model": "rollover",
        "unit": "hours",
        "units_per_period": D("20"),
        "price_minor": 300000,
        "overage_policy": "bill",
        "overage_rate_minor": 15000,
        "rollover_cap": D("10"),
        "rollover_expiry_periods": 2,
        "term_periods": 12,
        "auto_renew": True,
    },
    "fractional": {
        "name": "Fractional ops (10 h)",
        "description": "Ten hours a month, six-month engagement. Unused hours lapse; extra hours are billed.",
        "model": "fixed",
        "unit": "hours",
        "units_per_period": D("10"),
        "price_minor": 150000,
        "billing_timing": "arrears",
        "overage_policy": "bill",
        "overage_rate_minor": 16000,
        "term_periods": 6,
        "auto_renew": False,
    },
    "coaching": {
        "name": "Leadership coaching (4 sessions)",
        "description": "Four coaching sessions a month. Sessions do not roll over.",
        "model": "fixed",
        "unit": "sessions",
        "units_per_period": D("4"),
        "price_minor": 120000,
        "overage_policy": "refuse",
        "term_periods": 12,
        "auto_renew": True,
    },
    "content": {
        "name": "Content studio",
        "description": "A report, two articles and a newsletter each month; unfinished pieces carry over.",
        "model": "deliverables",
        "unit": "hours",
        "units_per_period": D("0"),
        "price_minor": 240000,
        "deliverables": ["Monthly performance report", "Two blog articles", "Newsletter issue"],
        "deliverables_carry": True,
        "extra_deliverable_price_minor": 45000,
        "term_periods": 12,
        "auto_renew": True,
    },
    "board": {
        "name": "Board pack review",
        "description": "Review of the monthly board pack and the investor update. What is not done lapses.",
        "model": "deliverables",
        "unit": "hours",
        "units_per_period": D("0"),
        "price_minor": 90000,
        "deliverables": ["Board pack review", "Investor update"],
        "deliverables_carry": False,
        "extra_deliverable_price_minor": 30000,
        "term_periods": 12,
        "auto_renew": True,
    },
    "support": {
        "name": "Support desk (30 h a quarter)",
        "description": "Thirty hours a quarter; up to fifteen roll into the next quarter, for one quarter.",
        "model": "rollover",
        "unit": "hours",
        "units_per_period": D("30"),
        "price_minor": 390000,
        "cadence": "quarterly",
        "overage_policy": "carry",
        "overage_rate_minor": 13000,
        "rollover_cap": D("15"),
        "rollover_expiry_periods": 1,
        "term_periods": 4,
        "auto_renew": True,
    },
}

# How often each plan is picked for a generated client.
PLAN_WEIGHTS = {"advisory": 30, "fractional": 20, "coaching": 15, "content": 12, "board": 8, "support": 15}

HOURS_WORK = [
    "Weekly operations check-in",
    "Supplier contract review",
    "Hiring plan workshop",
    "KPI dashboard review",
    "Pricing analysis",
    "Process mapping session",
    "Quarterly planning prep",
    "Cash-flow forecast review",
    "Warehouse layout walkthrough",
    "Vendor negotiation call",
    "Board deck feedback",
    "Onboarding call with the new ops manager",
    "Support ticket triage",
    "Incident post-mortem",
    "Policy and handbook edits",
    "Customer escalation call",
]
SESSION_WORK = [
    "Coaching session: delegation",
    "Coaching session: difficult conversations",
    "Coaching session: running the leadership offsite",
    "Coaching session: feedback culture",
    "Coaching session: priorities for the quarter",
    "Coaching session: managing up",
]
DELIVERABLE_WORK = ["Research and outline", "Drafting", "Edits after client review", "Final polish and handover"]
EXTRA_DELIVERABLES = ["Press release", "Case study", "Launch email", "Webinar slides"]
NOT_BILLED = "Internal prep (not billed)"
ADJUSTMENTS = [
    (D("1"), "Goodwill: call dropped twice"),
    (D("2"), "Goodwill: onboarding overran"),
    (D("-0.5"), "Correction: time logged on the wrong client"),
]
AMENDMENT_REASONS = [
    "Scope grew with the new warehouse",
    "Client asked for fewer hours over the summer",
    "Added a quarterly strategy memo",
    "Renegotiated after the annual review",
]

COMPANY_WORDS = [
    "Amber",
    "Aspen",
    "Atlas",
    "Beacon",
    "Birch",
    "Blue Harbor",
    "Bright",
    "Cedar",
    "Cobalt",
    "Copper",
    "Crescent",
    "Delta",
    "Ember",
    "Evergreen",
    "Falcon",
    "Fern",
    "Granite",
    "Harbor",
    "Heron",
    "Indigo",
    "Juniper",
    "Keystone",
    "Lantern",
    "Linden",
    "Maple",
    "Meridian",
    "Northgate",
    "Oak",
    "Orchid",
    "Pine",
    "Quarry",
    "Redwood",
    "Ridge",
    "Sable",
    "Sierra",
    "Silver",
    "Summit",
    "Tidewater",
    "Willow",
    "Zephyr",
]
COMPANY_KINDS = [
    "Logistics",
    "Dental",
    "Studios",
    "Analytics",
    "Foods",
    "Legal",
    "Architects",
    "Labs",
    "Outfitters",
    "Health",
    "Robotics",
    "Bakery",
    "Builders",
    "Media",
    "Realty",
    "Travel",
    "Energy",
    "Clinics",
    "Brewing",
    "Software",
    "Textiles",
    "Capital",
    "Farms",
    "Consulting",
    "Pharmacy",
]
FIRST_NAMES = [
    "Ada",
    "Ben",
    "Chloe",
    "Dev",
    "Elena",
    "Farid",
    "Grace",
    "Hugo",
    "Ines",
    "Jonas",
    "Kemi",
    "Liam",
    "Maya",
    "Nikhil",
    "Olga",
    "Pablo",
    "Quinn",
    "Rosa",
    "Sami",
    "Tara",
    "Umar",
    "Vera",
    "Wei",
    "Yara",
]
LAST_NAMES = [
    "Adams",
    "Baptiste",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Haddad",
    "Ito",
    "Jensen",
    "Kowalski",
    "Larsen",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Patel",
    "Quispe",
    "Rossi",
    "Silva",
    "Tanaka",
]
ROLES = ["CEO", "COO", "Head of Operations", "Finance Director", "Founder", "Office Manager", "CTO"]

# Bench workspaces cycle through these, so "today" and money differ between tenants.
ZONES_AND_CURRENCIES = [
    ("Europe/London", "GBP"),
    ("America/New_York", "USD"),
    ("Europe/Berlin", "EUR"),
    ("Australia/Sydney", "AUD"),
    ("America/Los_Angeles", "USD"),
    ("Asia/Tokyo", "JPY"),
]


def plan_terms(key: str, currency: str) -> dict[str, Any]:
    """A catalog plan's terms, with every term the template leaves out at the model's default."""
    # Terms are columns, never relations: get_field gives a Field.
    terms = {
        name: cast("Field[Any, Any]", Plan._meta.get_field(name)).get_default() for name in RetainerTerms.TERM_FIELDS
    }
    terms.update({name: value for name, value in PLANS[key].items() if name in terms})
    terms["currency"] = currency
    return terms
