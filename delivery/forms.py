"""Forms of delivery: the quantity people type, recording work, retainer terms, adjustments.

Quantities are typed the way people think of time ("1:30", "90m", "1h30") and become
Decimal hours rounded half-up to 0.01; sessions are whole numbers. Money is typed in
the currency's major unit and stored in its minor unit (JPY 0 decimals, KWD 3, else 2),
through retainers.money.
"""

from __future__ import annotations

import html
import re
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, cast

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.db.models.functions import Lower
from django.forms.utils import flatatt
from django.http import QueryDict
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe

from clients.forms import TermsForm, terms_initial
from clients.models import Client, Plan, Retainer, RetainerTerms
from delivery import services
from delivery.models import Deliverable
from retainers.fields import DateField
from retainers.models import Workspace
from retainers.pagecache import PageCache

CENT = Decimal("0.01")
MAX_QUANTITY = Decimal("10000")  # exclusive; the ledger's columns hold less than a million
MAX_INPUT_LENGTH = 40

_NUMBER = r"(?:\d+(?:[.,]\d*)?|[.,]\d+)"
_HOURS_WORD = r"(?:h|hr|hrs|hour|hours)"
_MINUTES_WORD = r"(?:m|min|mins|minute|minutes)"
_CLOCK = re.compile(r"(?P<h>\d+):(?P<m>\d{1,2})")
_HOURS = re.compile(rf"(?P<n>{_NUMBER})\s*{_HOURS_WORD}?")
_MINUTES = re.compile(rf"(?P<n>{_NUMBER})\s*{_MINUTES_WORD}")
_HOURS_AND_MINUTES = re.compile(rf"(?P<h>\d+)\s*{_HOURS_WORD}\s*(?P<m>\d+)\s*{_MINUTES_WORD}?")
_WHOLE = re.compile(r"\d+")

HOURS_HINT = "Enter hours like 1.5, 1:30, 90m or 1h30."
SESSIONS_HINT = "Enter a whole number of sessions, like 1 or 2."


def round_hours(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _number(text: str) -> Decimal:
    return Decimal(text.replace(",", "."))


def _hours_and_minutes(hours: str, minutes: str) -> Decimal:
    h, m = int(hours), int(minutes)
    if m >= 60:
        suggestion = f"{h + m // 60}:{m % 60:02d}"
        raise ValidationError(f"Minutes go up to 59: did you mean {suggestion}?", code="minutes")
    return Decimal(h) + Decimal(m) / 60


def _parse_hours(text: str) -> Decimal:
    if match := _CLOCK.fullmatch(text):
        return _hours_and_minutes(match["h"], match["m"])
    if match := _HOURS_AND_MINUTES.fullmatch(text):
        return _hours_and_minutes(match["h"], match["m"])
    if match := _MINUTES.fullmatch(text):
        return _number(match["n"]) / 60
    if match := _HOURS.fullmatch(text):
        return _number(match["n"])
    raise ValidationError(HOURS_HINT, code="invalid")


def parse_quantity(text: str, *, unit: str = RetainerTerms.Unit.HOURS, signed: bool = False) -> Decimal:
    """What someone typed, as Decimal units: hours rounded half-up to 0.01, or whole sessions.

    Hours: "1.5", "1,5", "1:30", "90m", "90 min", "2h", "1h30", "1h 30m". Sessions: "2".
    With `signed`, a leading minus makes it negative (adjustments take units away).
    Raises ValidationError with a message meant for the person typing.
    """
    raw = " ".join(str(text).split()).lower()
    if not raw:
        raise ValidationError("Enter a quantity.", code="required")
    if len(raw) > MAX_INPUT_LENGTH:
        raise ValidationError("That is too long to be a quantity.", code="invalid")
    negative = raw[0] in "-−"
    if raw[0] in "-−+":
        if raw[0] != "+" and not signed:
            raise ValidationError("Enter a positive quantity.", code="negative")
        raw = raw[1:].lstrip()
    sessions = unit == RetainerTerms.Unit.SESSIONS
    try:
        if sessions:
            if re.fullmatch(_NUMBER, raw) and not _WHOLE.fullmatch(raw):
                raise ValidationError("Sessions are counted in whole numbers.", code="whole")
            if not _WHOLE.fullmatch(raw):
                raise ValidationError(SESSIONS_HINT, code="invalid")
            value = Decimal(int(raw))
        else:
            value = _parse_hours(raw)
    except (InvalidOperation, ValueError) as exc:
        raise ValidationError(SESSIONS_HINT if sessions else HOURS_HINT, code="invalid") from exc
    if value >= MAX_QUANTITY:
        raise ValidationError("That is too large for one entry.", code="too_large")
    rounded = round_hours(value)
    if rounded == 0:
        if value > 0:
            raise ValidationError("That rounds to zero: enter at least 0.01 hours.", code="zero")
        raise ValidationError("Enter more than zero.", code="zero")
    return -rounded if negative else rounded


class QuantityField(forms.CharField):
    """A text input for hours (many notations) or sessions (whole numbers), cleaned to a Decimal."""

    def __init__(self, *, unit: str | None = None, signed: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", MAX_INPUT_LENGTH)
        super().__init__(**kwargs)
        self.unit = unit or RetainerTerms.Unit.HOURS
        self.signed = signed
        self.widget.attrs.setdefault("inputmode", "decimal")
        self.widget.attrs.setdefault("autocomplete", "off")

    def to_python(self, value: object) -> Decimal | None:  # type: ignore[override]
        text = super().to_python(value)
        if text is None or text in self.empty_values:
            return None
        return parse_quantity(text, unit=self.unit, signed=self.signed)

    def validate(self, value: Decimal | None) -> None:
        if value is None and self.required:
            raise ValidationError(self.error_messages["required"], code="required")

    def run_validators(self, value: Decimal | None) -> None:
        pass  # the CharField length validators would see a Decimal; parse_quantity bounds the text

    def prepare_value(self, value: object) -> object:
        return value


def format_quantity(value: Decimal, unit: str) -> str:
    """The inverse of `parse_quantity` for display in an input: "1.5", "2", "12.25"."""
    if unit == RetainerTerms.Unit.SESSIONS:
        return str(int(value))
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text or "0"


def unit_limit(unit: str) -> Decimal:
    return services.MAX_HOURS_UNCONFIRMED if unit == RetainerTerms.Unit.HOURS else services.MAX_SESSIONS_UNCONFIRMED


class FocusMixin:
    """Put `autofocus` on the first field with an error (or the named one), for keyboard users after a swap."""

    def set_focus(self, name: str | None = None) -> None:
        errored = [n for n in self.fields if n in self.errors] if self.is_bound else []  # type: ignore[attr-defined]
        target = errored[0] if errored else name
        for field_name, field in self.fields.items():  # type: ignore[attr-defined]
            field.widget.attrs.pop("autofocus", None)
            if field_name == target:
                field.widget.attrs["autofocus"] = True


def add_service_error(form: forms.Form, error: services.DeliveryError) -> None:
    """A DeliveryError next to its field, or above the form when the form has no such field."""
    field = error.field if error.field in form.fields else None
    form.add_error(field, str(error))


# --- Recording work ------------------------------------------------------------------


class WorkForm(FocusMixin, forms.Form):
    """The fields of one work item; the quick-add and the edit form both build on it."""

    quantity = QuantityField(label="Quantity", help_text="1.5, 1:30, 90m or 1h30")
    description = forms.CharField(label="What was done", max_length=500)
    delivered_on = DateField(label="Date", widget=forms.DateInput(attrs={"type": "date"}))
    billable = forms.BooleanField(label="Billable", required=False, initial=True)
    deliverable = forms.ModelChoiceField(
        label="Deliverable", queryset=Deliverable.objects.none(), required=False, empty_label="None"
    )
    confirm = forms.BooleanField(label="Yes, this long entry is right", required=False)

    def __init__(
        self,
        *args: Any,
        retainer: Retainer | None = None,
        deliverables: QuerySet[Deliverable] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fixed_retainer = retainer
        self.needs_confirm = False
        if retainer is not None:
            self._use_unit(retainer.unit)
        if deliverables is None:
            del self.fields["deliverable"]
        else:
            cast("forms.ModelChoiceField[Deliverable]", self.fields["deliverable"]).queryset = deliverables

    def _use_unit(self, unit: str) -> None:
        field = cast(QuantityField, self.fields["quantity"])
        field.unit = unit
        if unit == RetainerTerms.Unit.SESSIONS:
            field.help_text = "Whole sessions"
            field.widget.attrs["inputmode"] = "numeric"

    def chosen_retainer(self) -> Retainer | None:
        return self.fixed_retainer

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        assert data is not None  # Form.clean() returns cleaned_data
        retainer = self.chosen_retainer()
        if retainer is not None and retainer.model == RetainerTerms.Model.DELIVERABLES:
            data["billable"] = False  # billed per deliverable: time logged on it is tracked, never drawn
        quantity = data.get("quantity")
        if retainer is None or quantity is None:
            return data
        if retainer.unit != cast(QuantityField, self.fields["quantity"]).unit:
            # The unit was not known when the field cleaned itself (a retainer chosen in the form).
            try:
                raw = self.data.get(self.add_prefix("quantity"), "")
                quantity = data["quantity"] = parse_quantity(raw, unit=retainer.unit)
            except ValidationError as exc:
                self.add_error("quantity", exc)
                return data
        limit = unit_limit(retainer.unit)
        if quantity > limit and not data.get("confirm"):
            self.needs_confirm = True
            unit = retainer.get_unit_display().lower()
            self.add_error("quantity", f"More than {limit:.0f} {unit} in one entry: tick “confirm” if that is right.")
        return data

    @property
    def show_confirm(self) -> bool:
        return self.needs_confirm or bool(self.is_bound and self.data.get(self.add_prefix("confirm")))


def _retainer_label(retainer: Retainer) -> str:
    if retainer.status == Retainer.Status.ACTIVE:
        return retainer.name
    return f"{retainer.name} ({retainer.get_status_display().lower()})"


class QuickAddForm(WorkForm):
    """Record work in a few keystrokes: on the retainer page (retainer fixed) or a client page (chosen)."""

    retainer = forms.ModelChoiceField(
        label="Retainer", queryset=Retainer.objects.none(), empty_label="Choose a retainer"
    )

    field_order = ["retainer", "quantity", "description", "delivered_on", "billable", "deliverable", "confirm"]

    def __init__(
        self,
        *args: Any,
        retainers: QuerySet[Retainer],
        retainer: Retainer | None = None,
        deliverables: QuerySet[Deliverable] | None = None,
        today: date,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, retainer=retainer, deliverables=deliverables, **kwargs)
        field = cast("forms.ModelChoiceField[Retainer]", self.fields["retainer"])
        field.queryset = retainers
        field.label_from_instance = _retainer_label  # type: ignore[method-assign, assignment]  # Django idiom: a per-instance label function, which the stubs see as a method
        if retainer is not None:
            field.widget = forms.HiddenInput()
            field.initial = retainer.pk
            if retainer.model == RetainerTerms.Model.DELIVERABLES:
                self.fields["billable"].initial = False
        self.fields["delivered_on"].initial = today

    def chosen_retainer(self) -> Retainer | None:
        return self.cleaned_data.get("retainer") or self.fixed_retainer


class PlainSelect(forms.Select):
    """A <select> whose options are written in Python, not through one widget template each.

    The dashboard's quick-add lists every live retainer of the workspace: at 1,000 options the
    per-option templates take longer than the rest of the page. Attributes (id, required,
    aria-invalid, autofocus) are built exactly as the stock widget builds them.
    """

    def render(
        self, name: str, value: object, attrs: dict[str, Any] | None = None, renderer: object = None
    ) -> SafeString:
        selected = {str(v) for v in self.format_value(value)}
        options = []
        for option_value, label in self.choices:
            key = "" if option_value is None else str(option_value)
            chosen = " selected" if key in selected else ""
            # The standard library's escape: Django's (the same escaping, lazy-aware) costs 10 ms per 1,000 options.
            options.append(f'<option value="{html.escape(key)}"{chosen}>{html.escape(str(label))}</option>')
        final_attrs = flatatt(self.build_attrs(self.attrs, attrs))
        return mark_safe(f'<select name="{conditional_escape(name)}"{final_attrs}>{"".join(options)}</select>')


def workspace_quick_add_form(
    workspace: Workspace, data: QueryDict | None = None, *, parts: PageCache | None = None
) -> QuickAddForm:
    """The quick-add with a choice of every live retainer in the workspace (the dashboard's).

    The options come from one narrow query ("Client · Retainer", by client name), cached with the
    page's other parts when `parts` is given, and are written by PlainSelect: at 1,000 retainers,
    model instances and a template per option would cost more than the rest of the dashboard.
    Validation still goes through the field's queryset.
    """
    today = workspace.today()
    # One entry per agreement: an accepted renewal's next term is not a second retainer to log to.
    live = Retainer.objects.for_workspace(workspace).in_force(on=today)
    form = QuickAddForm(data, retainers=live.select_related("client"), today=today)
    field = cast("forms.ModelChoiceField[Retainer]", form.fields["retainer"])

    def labels() -> list[tuple[int, str]]:
        options = live.order_by(Lower("client__name"), Lower("name"), "pk").values_list(
            "pk", "client__name", "name", "status"
        )
        return [
            (pk, f"{client} · {name}" + (" (paused)" if status == Retainer.Status.PAUSED else ""))
            for pk, client, name, status in options
        ]

    choices = parts.get("quick-add-retainers", [], labels) if parts else labels()
    field.widget = PlainSelect(choices=[("", field.empty_label), *choices])
    return form


class WorkEditForm(WorkForm):
    """Change a recorded item: becomes a reversal and a new entry, shown as one row."""

    def __init__(self, *args: Any, item, **kwargs: Any) -> None:
        initial = {
            "quantity": format_quantity(item.quantity, item.retainer.unit),
            "description": item.description,
            "delivered_on": item.delivered_on,
            "billable": item.billable,
            "deliverable": item.deliverable_id,
        }
        super().__init__(*args, retainer=item.retainer, initial=initial, **kwargs)


# --- Deliverables ----------------------------------------------------------------------


class DeliverableStatusForm(forms.Form):
    status = forms.ChoiceField(
        label="Status", choices=[(s.value, s.label) for s in services.SETTABLE_DELIVERABLE_STATUSES]
    )


class DeliverableAddForm(forms.Form):
    name = forms.CharField(label="Extra deliverable", max_length=200)


# --- Adjustments and ending --------------------------------------------------------------


class AdjustForm(FocusMixin, forms.Form):
    quantity = QuantityField(
        label="Units to add", signed=True, help_text="Negative to take units away, e.g. -2 or -1:30."
    )
    reason = forms.CharField(label="Reason", max_length=255, help_text="Stays on the ledger for everyone to see.")

    def __init__(self, *args: Any, retainer: Retainer, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(QuantityField, self.fields["quantity"]).unit = retainer.unit
        if retainer.unit == RetainerTerms.Unit.SESSIONS:
            self.fields["quantity"].label = "Sessions to add"
        else:
            self.fields["quantity"].label = "Hours to add"

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise ValidationError("Say why: the reason stays on the ledger.")
        return reason


class CollectionForm(FocusMixin, forms.Form):
    """How a retainer's invoices are collected: by card when issued, and what happens when one goes unpaid."""

    auto_charge = forms.BooleanField(
        label="Charge the client's saved card when an invoice is issued",
        required=False,
        help_text="Without a saved card (the client saves one in the portal) the invoice is emailed to pay.",
    )
    pause_after_unpaid_days = forms.IntegerField(
        label="Pause delivery when an invoice is unpaid this many days past its due date",
        required=False,
        min_value=1,
        max_value=services.MAX_UNPAID_DAYS,
        help_text="Leave empty never to pause. The team gets an email when it happens.",
        error_messages={"invalid": "A whole number of days, e.g. 14, or leave it empty."},
    )

    overage_needs_approval = forms.BooleanField(
        label="Overage needs the client's approval",
        required=False,
        help_text="Work beyond the balance is refused until the client approves extra units, at the overage rate.",
    )
    overage_block = QuantityField(
        label="Units offered for approval at once",
        required=False,
        help_text="The client is offered up to this many extra units when the balance runs low, e.g. 5.",
    )

    def __init__(self, *args: Any, retainer: Retainer, **kwargs: Any) -> None:
        kwargs.setdefault(
            "initial",
            {
                "auto_charge": retainer.auto_charge,
                "pause_after_unpaid_days": retainer.pause_after_unpaid_days,
                "overage_needs_approval": retainer.overage_needs_approval,
                "overage_block": format_quantity(retainer.overage_block, retainer.unit),
            },
        )
        super().__init__(*args, **kwargs)
        cast(QuantityField, self.fields["overage_block"]).unit = retainer.unit
        if retainer.model == RetainerTerms.Model.DELIVERABLES:
            del self.fields["overage_needs_approval"], self.fields["overage_block"]


class EndNowForm(forms.Form):
    confirm = forms.BooleanField(
        label="Yes, end this retainer now",
        error_messages={"required": "Tick the box to confirm: ending cannot be undone."},
    )


# --- Terms: retainer creation, amendments (on clients.forms.TermsForm, the one terms form) ---------


def _date_bounds_error(day: date, today: date) -> str | None:
    if abs((day - today).days) > 3660:
        return "Pick a date within ten years of today."
    return None


class RetainerCreateForm(FocusMixin, TermsForm):
    """Sign a retainer for a client, with terms loaded from a plan (then editable) or typed from scratch.

    The plan is chosen in a separate step (the page's plan picker loads its terms into this
    form), so here it is a hidden field that records which plan the retainer came from.
    """

    client = forms.ModelChoiceField(label="Client", queryset=Client.objects.none(), empty_label="Choose a client")
    plan = forms.ModelChoiceField(queryset=Plan.objects.none(), required=False, widget=forms.HiddenInput())
    name = forms.CharField(label="Name", max_length=120, required=False, help_text="Defaults to the plan's name.")
    starts_on = DateField(label="Starts on", widget=forms.DateInput(attrs={"type": "date"}))

    field_order = ["client", "plan", "name", "starts_on"]

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, workspace=workspace, **kwargs)
        self.fields["price"].help_text = "What the client pays each period, in the currency below, e.g. 1,500.00."
        cast("forms.ModelChoiceField[Client]", self.fields["client"]).queryset = (
            Client.objects.for_workspace(workspace).filter(status=Client.Status.ACTIVE).order_by("name")
        )
        cast("forms.ModelChoiceField[Plan]", self.fields["plan"]).queryset = (
            Plan.objects.for_workspace(workspace).filter(archived=False).order_by("name")
        )
        self.fields["starts_on"].initial = workspace.today()

    def clean_starts_on(self) -> date:
        day = self.cleaned_data["starts_on"]
        if message := _date_bounds_error(day, self.workspace.today()):
            raise ValidationError(message)
        return day

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        plan = data.get("plan")
        name = (data.get("name") or "").strip()
        if not name and plan is not None:
            name = plan.name
        if not name:
            self.add_error("name", "Name the retainer.")
        data["name"] = name
        return data


AMENDABLE_FIELDS = (
    "units_per_period",
    "price",
    "billing_timing",
    "overage_policy",
    "overage_rate",
    "rollover_cap",
    "rollover_expiry_periods",
    "deliverables",
    "deliverables_carry",
    "extra_deliverable_price",
    "auto_renew",
    "renewal_notice_days",
)


class AmendForm(FocusMixin, TermsForm):
    """New terms from the next period. Model, unit, currency, cadence and term length stay as signed:
    changing them mid-agreement would break the ledger and the period arithmetic (a new retainer does that)."""

    reason = forms.CharField(label="Reason", max_length=255, required=False)

    def __init__(self, *args: Any, retainer: Retainer, workspace: Workspace, **kwargs: Any) -> None:
        self.retainer = retainer
        kwargs.setdefault("initial", terms_initial(retainer.terms()))
        super().__init__(*args, workspace=workspace, currency=retainer.currency, **kwargs)
        keep = {*AMENDABLE_FIELDS, "reason"}
        if retainer.model != RetainerTerms.Model.ROLLOVER:
            keep -= {"rollover_cap", "rollover_expiry_periods"}
        if retainer.model == RetainerTerms.Model.DELIVERABLES:
            keep -= {"units_per_period", "overage_policy", "overage_rate"}
        else:
            keep -= {"deliverables", "deliverables_carry", "extra_deliverable_price"}
        for name in list(self.fields):
            if name not in keep:
                del self.fields[name]

    def fixed_terms(self) -> dict[str, object]:
        return {name: getattr(self.retainer, name) for name in ("model", "unit", "currency", "cadence", "term_periods")}

    def terms(self) -> dict[str, object]:
        terms = super().terms()
        return {k: v for k, v in terms.items() if k not in self.fixed_terms()}


# --- Overage approval (delivery.approvals) ------------------------------------------------------


class OverageRequestForm(FocusMixin, forms.Form):
    """A consultant asks the client to approve extra units this period."""

    offered = QuantityField(label="Units to ask for", help_text="The client may approve up to this many.")
    message = forms.CharField(
        label="Message to the client",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Why more is needed, in a sentence or two. It is in the email and the portal.",
    )

    def __init__(self, *args: Any, retainer: Retainer, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {"offered": format_quantity(retainer.overage_block, retainer.unit)})
        super().__init__(*args, **kwargs)
        cast(QuantityField, self.fields["offered"]).unit = retainer.unit


class OverageAnswerForm(forms.Form):
    """The client approves up to the offered units, or declines: the button pressed says which."""

    quantity = QuantityField(label="Units you approve", required=False)
    reason = forms.CharField(
        label="Reason (if you decline)", required=False, max_length=500, widget=forms.Textarea(attrs={"rows": 2})
    )
    answer = forms.ChoiceField(choices=[("approve", "Approve"), ("decline", "Decline")], widget=forms.HiddenInput)

    def __init__(self, *args: Any, unit: str, offered: Decimal, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {"quantity": format_quantity(offered, unit)})
        super().__init__(*args, **kwargs)
        cast(QuantityField, self.fields["quantity"]).unit = unit
        self.fields["quantity"].label = (
            "Sessions you approve" if unit == RetainerTerms.Unit.SESSIONS else "Hours you approve"
        )
        self.offered = offered

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("answer") == "approve":
            quantity = data.get("quantity")
            if quantity is None:
                self.add_error("quantity", "Enter how many units you approve.")
            elif quantity <= 0:
                self.add_error("quantity", "Approve more than zero, or decline.")
            elif quantity > self.offered:
                self.add_error("quantity", f"You may approve up to {format_quantity(self.offered, '')}.")
        return data
