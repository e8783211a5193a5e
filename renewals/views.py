"""Renewals for the consultant: the pipeline and forecast, one renewal with its evidence and
proposal, the client page's section; and the public page of the emailed accept/decline links.

Every action calls one service (renewals.services); a refusal (RenewalError) is shown as a
message, or next to its field when it names one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.contrib import messages
from django.db.models import BigIntegerField, Case, Count, Exists, F, OuterRef, Q, Sum, Value, When
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from clients.models import Retainer
from clients.terms import describe_terms
from renewals import evidence as proposal
from renewals import services
from renewals.forms import DeclineForm, ProposalForm, RecordAnswerForm, RenewalSettingsForm
from renewals.models import Renewal
from renewals.services import OPEN, RenewalError, Status
from retainers import outbox
from retainers.http import WorkspaceRequest, workspace_view
from retainers.models import Email, Workspace

PIPELINE_DAYS = 90  # answered and settled renewals stay on the pipeline this long after their term end
FORECAST_DAYS = 90
PIPELINE_ROWS = 200


def annual_value(prefix: str = "") -> Case:
    """SQL: a price per period as a year's worth, by cadence (renewals.evidence.annual_value_minor)."""
    price = F(f"{prefix}price_minor")
    return Case(
        When(**{f"{prefix}cadence": "monthly"}, then=price * Value(12)),
        When(**{f"{prefix}cadence": "quarterly"}, then=price * Value(4)),
        default=price,
        output_field=BigIntegerField(),
    )


# --- The pipeline --------------------------------------------------------------------------


@dataclass
class Stage:
    status: str
    label: str
    count: int = 0
    values: list[tuple[str, int]] = field(default_factory=list)  # (currency, annual minor units)
    renewals: list[Renewal] = field(default_factory=list)


PIPELINE = [Status.UPCOMING, Status.PROPOSAL_SENT, Status.ACCEPTED, Status.DECLINED, Status.RENEWED, Status.LAPSED]


def pipeline_renewals(workspace: Workspace, today: date):
    """Open renewals, and the others whose term ended at most PIPELINE_DAYS ago (or ends later)."""
    recent = Q(term_ends_on__gte=today - timedelta(days=PIPELINE_DAYS))
    return Renewal.objects.for_workspace(workspace).filter(Q(status__in=OPEN) | recent)


def pipeline(workspace: Workspace, today: date) -> list[Stage]:
    """Each status with its renewals and the revenue at stake: the annualised value of the
    retainers up for renewal, per currency (never added across currencies). Two queries."""
    renewals = pipeline_renewals(workspace, today)
    stages = {status: Stage(status, Status(status).label) for status in PIPELINE}
    for row in (
        renewals.values("status", "retainer__currency")
        .annotate(count=Count("pk"), value=Sum(annual_value("retainer__")))
        .order_by("status", "retainer__currency")
    ):
        stage = stages[row["status"]]
        stage.count += row["count"]
        stage.values.append((row["retainer__currency"], row["value"]))
    for renewal in renewals.select_related("retainer", "retainer__client").order_by("term_ends_on", "pk")[
        :PIPELINE_ROWS
    ]:
        renewal.annual_minor = proposal.annual_value_minor(renewal.retainer.price_minor, renewal.retainer.cadence)
        stages[renewal.status].renewals.append(renewal)
    return list(stages.values())


@dataclass
class ForecastRow:
    month: date
    currency: str
    likely_count: int = 0
    likely_minor: int = 0
    at_risk_count: int = 0
    at_risk_minor: int = 0
    lost_count: int = 0
    lost_minor: int = 0


def forecast(workspace: Workspace, today: date) -> list[ForecastRow]:
    """Terms ending in the next FORECAST_DAYS, by month and currency, with their annual value:

    - likely: accepted (valued at the accepted terms), or set to auto-renew with no downgrade suggested;
    - at risk: everything else still undecided, including terms whose renewal is not open yet;
    - lost: declined or lapsed.
    Two queries.
    """
    end = today + timedelta(days=FORECAST_DAYS)
    rows: dict[tuple[date, str], ForecastRow] = {}

    def add(ends_on: date, currency: str, bucket: str, value: int) -> None:
        month = ends_on.replace(day=1)
        row = rows.setdefault((month, currency), ForecastRow(month, currency))
        setattr(row, f"{bucket}_count", getattr(row, f"{bucket}_count") + 1)
        setattr(row, f"{bucket}_minor", getattr(row, f"{bucket}_minor") + value)

    renewals = (
        Renewal.objects.for_workspace(workspace)
        .filter(term_ends_on__gte=today, term_ends_on__lt=end)
        .values(
            "status",
            "suggestion",
            "term_ends_on",
            "price_minor",
            "cadence",
            "currency",
            "retainer__price_minor",
            "retainer__cadence",
            "retainer__currency",
            "retainer__auto_renew",
            "retainer__cancel_at_period_end",
        )
    )
    for r in renewals:
        current = proposal.annual_value_minor(r["retainer__price_minor"], r["retainer__cadence"])
        if r["status"] == Status.ACCEPTED:
            add(r["term_ends_on"], r["currency"], "likely", proposal.annual_value_minor(r["price_minor"], r["cadence"]))
        elif r["status"] == Status.RENEWED:
            add(r["term_ends_on"], r["retainer__currency"], "likely", current)
        elif r["status"] in (Status.DECLINED, Status.LAPSED):
            add(r["term_ends_on"], r["retainer__currency"], "lost", current)
        else:
            renews = r["retainer__auto_renew"] and not r["retainer__cancel_at_period_end"]
            likely = renews and r["suggestion"] != Renewal.Suggestion.DOWNGRADE
            add(r["term_ends_on"], r["retainer__currency"], "likely" if likely else "at_risk", current)

    opened = Renewal.objects.filter(retainer=OuterRef("pk"), term_ends_on=OuterRef("term_ends_on"))
    unopened = (
        Retainer.objects.for_workspace(workspace)
        .filter(status=Retainer.Status.ACTIVE, term_ends_on__gte=today, term_ends_on__lt=end)
        .exclude(Exists(opened))
        .values("term_ends_on", "price_minor", "cadence", "currency", "auto_renew", "cancel_at_period_end")
    )
    for row in unopened:
        likely = row["auto_renew"] and not row["cancel_at_period_end"]
        value = proposal.annual_value_minor(row["price_minor"], row["cadence"])
        add(row["term_ends_on"], row["currency"], "likely" if likely else "at_risk", value)
    return [rows[key] for key in sorted(rows)]


@require_GET
@workspace_view
def renewal_list(request: WorkspaceRequest) -> HttpResponse:
    workspace = request.workspace
    form = RenewalSettingsForm.for_settings(services.settings_for(workspace)) if request.membership.is_admin else None
    return _list(request, settings_form=form)


def _list(request: WorkspaceRequest, *, settings_form: RenewalSettingsForm | None) -> HttpResponse:
    workspace = request.workspace
    today = workspace.today()
    stages = pipeline(workspace, today)
    context = {
        "stages": stages,
        "has_renewals": any(stage.count for stage in stages),
        "forecast": forecast(workspace, today),
        "forecast_days": FORECAST_DAYS,
        "pipeline_days": PIPELINE_DAYS,
        "settings_form": settings_form,
    }
    return render(request, "renewals/renewal_list.html", context)


@require_POST
@workspace_view(admin=True)
def renewal_settings(request: WorkspaceRequest) -> HttpResponse:
    workspace = request.workspace
    form = RenewalSettingsForm.for_settings(services.settings_for(workspace), request.POST)
    if form.is_valid():
        services.update_settings(
            workspace=workspace,
            consultant_offsets=form.cleaned_data["consultant_offsets"],
            client_offsets=form.cleaned_data["client_offsets"],
        )
        messages.success(request, "Reminder days saved.")
        return redirect("renewals:renewal_list", workspace_slug=workspace.slug)
    return _list(request, settings_form=form)


# --- One renewal -------------------------------------------------------------------------------


def _renewal(request: WorkspaceRequest, renewal_id: int) -> Renewal:
    renewal = get_object_or_404(
        Renewal.objects.for_workspace(request.workspace).select_related(
            "retainer", "retainer__client", "next_retainer", "responded_by"
        ),
        pk=renewal_id,
    )
    renewal.workspace = request.workspace
    return renewal


def _to_detail(renewal: Renewal) -> HttpResponse:
    return redirect("renewals:renewal_detail", workspace_slug=renewal.workspace.slug, renewal_id=renewal.pk)


@dataclass(frozen=True)
class Event:
    at: datetime
    what: str
    detail: str = ""


def history(renewal: Renewal) -> list[Event]:
    """What happened to the renewal, newest first: its own dates and its emails. (Its follow-up tasks
    are communication's: the client's timeline shows them.)"""
    events = [Event(renewal.created_at, "Opened", f"due to open on {renewal.opened_on:%d %b %Y}")]
    if renewal.sent_at:
        events.append(Event(renewal.sent_at, "Proposal sent"))
    if renewal.responded_at:
        who = renewal.responded_by.name if renewal.responded_by else "recorded by the team"
        events.append(Event(renewal.responded_at, renewal.get_status_display(), who))
    if renewal.settled_at:
        events.append(Event(renewal.settled_at, renewal.get_status_display(), "no answer by the term end"))
    for email in Email.objects.filter(key__startswith=f"renewal-{renewal.pk}-").order_by("created_at", "pk"):
        state = email.get_status_display().lower()
        events.append(Event(email.created_at, "Email", f"“{email.subject}” to {email.to} ({state})"))
    return sorted(events, key=lambda e: e.at, reverse=True)


def _detail(
    request: WorkspaceRequest,
    renewal: Renewal,
    *,
    form: ProposalForm | None = None,
    record_form: RecordAnswerForm | None = None,
) -> HttpResponse:
    workspace = request.workspace
    locale = workspace.locale or "en_US"
    editable = renewal.status in OPEN
    context = {
        "renewal": renewal,
        "retainer": renewal.retainer,
        "client": renewal.retainer.client,
        "evidence": proposal.for_display(renewal.evidence),
        "current_terms": describe_terms(renewal.retainer, locale=locale),
        "proposed_terms": describe_terms(renewal, locale=locale),
        "form": form or (ProposalForm(workspace=workspace, renewal=renewal) if editable else None),
        "record_form": record_form or (RecordAnswerForm() if editable else None),
        "editable": editable,
        "recipients": services.client_recipients(renewal.retainer.client) if editable else [],
        "renews_without_answer": services.continues_without_answer(renewal.retainer),
        "days_left": (renewal.term_ends_on - workspace.today()).days,
        "history": history(renewal),
    }
    return render(request, "renewals/renewal_detail.html", context)


@require_GET
@workspace_view
def renewal_detail(request: WorkspaceRequest, renewal_id: int) -> HttpResponse:
    return _detail(request, _renewal(request, renewal_id))


@require_POST
@workspace_view
def renewal_edit(request: WorkspaceRequest, renewal_id: int) -> HttpResponse:
    renewal = _renewal(request, renewal_id)
    form = ProposalForm(request.POST, workspace=request.workspace, renewal=renewal)
    if request.POST.get("refresh"):  # the model changed: show its fields (htmx swaps the group)
        if request.htmx:
            return render(request, "renewals/renewal_detail.html#model-fields", {"form": form})
        return _detail(request, renewal, form=form)
    if not form.is_valid():
        return _detail(request, renewal, form=form)
    was_sent = renewal.status == Status.PROPOSAL_SENT
    try:
        renewal = services.save_proposal(
            renewal=renewal, terms=form.terms(), proposal_text=form.cleaned_data["proposal_text"], actor=request.user
        )
    except RenewalError as exc:
        messages.error(request, str(exc))
    else:
        if was_sent and renewal.status == Status.UPCOMING:
            messages.warning(request, "Proposal saved and withdrawn: send it again so the client can answer it.")
        else:
            messages.success(request, "Proposal saved.")
    renewal.workspace = request.workspace
    if request.htmx:
        return HttpResponseClientRedirect(request.path.removesuffix("proposal/"))
    return _to_detail(renewal)


def render_proposal_email(renewal: Renewal) -> dict[str, str]:
    """The proposal email as the first recipient would get it (links included), without sending it."""
    recipients = services.client_recipients(renewal.retainer.client)
    recipient = recipients[0] if recipients else services.Recipient("preview", "client@example.com", None)
    context = {"site_url": "", **services.client_context(renewal, recipient)}
    context.update(accept_url="(accept link)", decline_url="(decline link)")
    # The text part, as plain (unmarked) text: the page escapes it, so the client's view of any
    # markup in the proposal text is what the preview shows, and nothing in it runs here.
    subject = " ".join(outbox.render_text("emails/renewal_proposal/subject.txt", context).split())
    body = outbox.render_text("emails/renewal_proposal/body.txt", context)
    return {"to": recipient.email, "subject": subject, "body": body}


@require_GET
@workspace_view
def renewal_preview(request: WorkspaceRequest, renewal_id: int) -> HttpResponse:
    renewal = _renewal(request, renewal_id)
    context = {
        "renewal": renewal,
        "retainer": renewal.retainer,
        "client": renewal.retainer.client,
        "email": render_proposal_email(renewal),
        "evidence": proposal.for_display(renewal.evidence),
        "current_terms": describe_terms(renewal.retainer, locale=request.workspace.locale or "en_US"),
        "proposed_terms": describe_terms(renewal, locale=request.workspace.locale or "en_US"),
        "renews_without_answer": services.continues_without_answer(renewal.retainer),
    }
    return render(request, "renewals/renewal_preview.html", context)


@require_POST
@workspace_view
def renewal_send(request: WorkspaceRequest, renewal_id: int) -> HttpResponse:
    renewal = _renewal(request, renewal_id)
    try:
        renewal = services.send_proposal(renewal=renewal, actor=request.user)
    except RenewalError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Proposal sent to {renewal.retainer.client.name}.")
    return _to_detail(renewal)


@require_POST
@workspace_view
def renewal_refresh(request: WorkspaceRequest, renewal_id: int) -> HttpResponse:
    renewal = _renewal(request, renewal_id)
    try:
        services.refresh_evidence(renewal=renewal)
    except RenewalError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Evidence recomputed from the ledger; the proposed terms are unchanged.")
    return _to_detail(renewal)


@require_POST
@workspace_view
def renewal_record(request: WorkspaceRequest, renewal_id: int) -> HttpResponse:
    renewal = _renewal(request, renewal_id)
    form = RecordAnswerForm(request.POST)
    if not form.is_valid():
        return _detail(request, renewal, record_form=form)
    try:
        if form.cleaned_data["outcome"] == "accept":
            renewal = services.accept_renewal(renewal=renewal, actor=request.user)
            messages.success(request, "Recorded as accepted: the next term's retainer is signed.")
        else:
            renewal = services.decline_renewal(renewal=renewal, reason=form.cleaned_data["reason"], actor=request.user)
            messages.success(request, "Recorded as declined: the retainer ends at its term end.")
    except RenewalError as exc:
        messages.error(request, str(exc))
    return _to_detail(renewal)


# --- The emailed links (no login: the signed token is the key) --------------------------------------

UNUSABLE_STATUS = {"invalid": 400, "expired": 410, "used": 410, "replaced": 410}


def _unusable(request: HttpRequest, check: services.LinkCheck, message: str = "") -> HttpResponse:
    return render(
        request,
        "renewals/public/unusable.html",
        {"state": check.state, "renewal": check.renewal, "message": message},
        status=UNUSABLE_STATUS.get(check.state, 400),
    )


def _respond(request: HttpRequest, token: str, action: str) -> HttpResponse:
    check = services.check_response_token(token)
    if not check.ok:
        return _unusable(request, check)
    renewal = check.renewal
    assert renewal is not None  # a link that checks ok names its renewal
    form = DeclineForm(request.POST or None)
    if request.method == "POST" and (action == "accept" or form.is_valid()):
        try:
            if action == "accept":
                renewal = services.accept_renewal(renewal=renewal, contact=check.contact)
            else:
                renewal = services.decline_renewal(
                    renewal=renewal, reason=form.cleaned_data["reason"], contact=check.contact
                )
        except RenewalError as exc:
            return _unusable(request, services.check_response_token(token), str(exc))
        return render(request, "renewals/public/done.html", {"renewal": renewal, "workspace": renewal.workspace})
    locale = renewal.workspace.locale or "en_US"
    context = {
        "renewal": renewal,
        "workspace": renewal.workspace,
        "retainer": renewal.retainer,
        "client": renewal.retainer.client,
        "action": action,
        "form": form,
        "evidence": proposal.for_display(renewal.evidence),
        "current_terms": describe_terms(renewal.retainer, locale=locale),
        "proposed_terms": describe_terms(renewal, locale=locale),
        "renews_without_answer": services.continues_without_answer(renewal.retainer),
    }
    return render(request, "renewals/public/respond.html", context)


@require_http_methods(["GET", "POST"])
def respond_accept(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows the proposal and a confirm button; POST (with CSRF) accepts it."""
    return _respond(request, token, "accept")


@require_http_methods(["GET", "POST"])
def respond_decline(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows the proposal and a decline form with an optional reason; POST declines it."""
    return _respond(request, token, "decline")
