"""Workflows for clients, their contacts and plans."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from allauth.account.models import EmailAddress
from django.db import IntegrityError, models, transaction
from django.urls import reverse
from django.utils import timezone

from clients import csv_import
from clients.models import Client, Contact, Plan, Retainer, RetainerTerms
from retainers.choices import timezone_choices
from retainers.models import User, Workspace
from retainers.outbox import queue_email


class ClientError(Exception):
    """A change to clients, contacts or plans that is not allowed. `field` names the form field it belongs to."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _violated(exc: IntegrityError) -> str | None:
    """The name of the constraint an IntegrityError broke (psycopg reports it)."""
    diag = getattr(exc.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None)


def client_name_taken(*, workspace: Workspace | int, name: str, exclude: Client | None = None) -> bool:
    clients = Client.objects.for_workspace(workspace).filter(name__iexact=name.strip())
    if exclude is not None:
        clients = clients.exclude(pk=exclude.pk)
    return clients.exists()


def _name_taken_error(name: str) -> ClientError:
    return ClientError(f"There is already a client called “{name}”.", field="name")


def _check_client_name(workspace_id: int, name: str, *, exclude: Client | None = None) -> str:
    name = name.strip()
    if not name:
        raise ClientError("Enter the client's name.", field="name")
    if client_name_taken(workspace=workspace_id, name=name, exclude=exclude):
        raise _name_taken_error(name)
    return name


def _check_tax(client: Client) -> None:
    """What the `client_tax_*` constraints hold, as field errors before the database refuses."""
    own_rate = client.tax_treatment == Client.TaxTreatment.OWN_RATE
    if own_rate and (client.tax_rate_bp is None or not 0 <= client.tax_rate_bp <= 10000):
        raise ClientError("Enter their rate, from 0 to 100%.", field="tax_rate")
    if not own_rate:
        client.tax_rate_bp = None
    if client.tax_treatment == Client.TaxTreatment.REVERSE_CHARGE and not client.tax_id:
        raise ClientError(
            "The reverse charge needs the client's VAT number: it is printed on each invoice.", field="tax_id"
        )


def _save_client(client: Client, update_fields: list[str] | None = None) -> Client:
    """Save, turning the `client_name_unique` constraint into the name field's error: the check
    before it is only the friendly path, two people adding "Acme" at once meet here."""
    try:
        with transaction.atomic():
            client.save(update_fields=update_fields)
    except IntegrityError as exc:
        if _violated(exc) == "client_name_unique":
            raise _name_taken_error(client.name) from exc
        raise
    return client


@transaction.atomic
def create_client(
    *,
    workspace: Workspace,
    name: str,
    billing_email: str = "",
    address: str = "",
    tax_id: str = "",
    tax_treatment: str = Client.TaxTreatment.WORKSPACE,
    tax_rate_bp: int | None = None,
) -> Client:
    """Create an active client. Names are unique per workspace, ignoring case (the `client_name_unique` constraint)."""
    client = Client(
        workspace=workspace,
        name=_check_client_name(workspace.pk, name),
        billing_email=billing_email.strip(),
        address=address.strip(),
        tax_id=tax_id.strip(),
        tax_treatment=tax_treatment,
        tax_rate_bp=tax_rate_bp,
    )
    _check_tax(client)
    return _save_client(client)


@transaction.atomic
def update_client(
    *,
    client: Client,
    name: str,
    billing_email: str,
    address: str,
    tax_id: str,
    tax_treatment: str = Client.TaxTreatment.WORKSPACE,
    tax_rate_bp: int | None = None,
) -> Client:
    """Change a client's details. Their tax treatment applies to invoices issued from now on."""
    client.name = _check_client_name(client.workspace_id, name, exclude=client)
    client.billing_email, client.address, client.tax_id = billing_email.strip(), address.strip(), tax_id.strip()
    client.tax_treatment, client.tax_rate_bp = tax_treatment, tax_rate_bp
    _check_tax(client)
    return _save_client(client, ["name", "billing_email", "address", "tax_id", "tax_treatment", "tax_rate_bp"])


@transaction.atomic
def archive_client(*, client: Client) -> Client:
    """Archive a client: hidden from the default list, and its contacts can no longer use the portal.

    Refused while a retainer is active or paused: archiving would hide a relationship that
    still bills and delivers. End the retainers first.
    """
    client = Client.objects.select_for_update().get(pk=client.pk)
    if Retainer.objects.filter(workspace_id=client.workspace_id, client=client).live().exists():
        raise ClientError(f"{client.name} has a live retainer. End it before archiving the client.")
    if client.status != Client.Status.ARCHIVED:
        client.status = Client.Status.ARCHIVED
        client.save(update_fields=["status"])
    return client


@transaction.atomic
def unarchive_client(*, client: Client) -> Client:
    client = Client.objects.select_for_update().get(pk=client.pk)
    if client.status != Client.Status.ACTIVE:
        client.status = Client.Status.ACTIVE
        client.save(update_fields=["status"])
    return client


# --- Contacts -------------------------------------------------------------------------


def _email_taken_error(email: str) -> ClientError:
    return ClientError(f"Another contact in this workspace already uses {email}.", field="email")


@transaction.atomic
def add_contact(*, client: Client, name: str, email: str, role: str = "", portal_access: bool = False) -> Contact:
    """Add a person at the client. Emails are unique per workspace (the `contact_email_unique` constraint)."""
    email = email.strip().lower()
    try:
        with transaction.atomic():
            contact = Contact.objects.create(
                workspace_id=client.workspace_id, client=client, name=name.strip(), email=email, role=role.strip()
            )
    except IntegrityError as exc:
        if _violated(exc) == "contact_email_unique":
            raise _email_taken_error(email) from exc
        raise
    if portal_access:
        set_portal_access(contact=contact, enabled=True)
    return contact


@transaction.atomic
def update_contact(*, contact: Contact, name: str, email: str, role: str) -> Contact:
    """Change a contact's details.

    The email of a contact with portal access cannot change here: it is their login, linked to
    a user by that address and proven by the invitation sent to it. Re-linking silently would
    hand the portal to an address that never received an invitation (or leave the old address
    signed in), so we refuse and ask for access to be turned off first; turning it back on
    then links the new address and emails it a fresh invitation.
    """
    contact = Contact.objects.select_for_update().get(pk=contact.pk)
    email = email.strip().lower()
    if email != contact.email.lower() and contact.portal_access:
        raise ClientError(
            "This contact has portal access, and the email is their login. "
            "Turn portal access off first, change the email, then turn it on again to invite the new address.",
            field="email",
        )
    contact.name, contact.email, contact.role = name.strip(), email, role.strip()
    try:
        with transaction.atomic():
            contact.save(update_fields=["name", "email", "role"])
    except IntegrityError as exc:
        if _violated(exc) == "contact_email_unique":
            raise _email_taken_error(email) from exc
        raise
    return contact


def set_contact_timezone(*, contact: Contact, timezone_name: str) -> Contact:
    """The zone a contact reads booking times in ("": the workspace's). Unknown names are refused."""
    name = timezone_name.strip()
    if name and name not in dict(timezone_choices()):
        raise ClientError(f"“{name[:64]}” is not a time zone: choose one from the list.", field="timezone")
    Contact.objects.filter(pk=contact.pk).update(timezone=name)
    contact.timezone = name
    return contact


@transaction.atomic
def remove_contact(*, contact: Contact) -> None:
    """Delete a contact; with them goes their portal access to this workspace (their login stays)."""
    try:
        with transaction.atomic():
            Contact.objects.filter(pk=contact.pk).delete()
    except models.ProtectedError as exc:
        message = f"{contact.name} is referenced by other records; turn their portal access off instead."
        raise ClientError(message) from exc


def portal_user_for(email: str) -> User:
    """The login behind a contact: the existing user with that email, or a new one without a password."""
    user = User.objects.filter(email__iexact=email).first()
    if user is None:
        user = User.objects.create_user(email=email)
    # allauth's login by code needs the address on record; the code itself proves it.
    EmailAddress.objects.get_or_create(user=user, email__iexact=email, defaults={"email": email, "primary": True})
    return user


@transaction.atomic
def set_portal_access(*, contact: Contact, enabled: bool) -> Contact:
    """Turn a contact's portal access on (and email them the invitation) or off.

    Turning it on twice sends one invitation: the flip is a conditional UPDATE.
    """
    flipped = Contact.objects.filter(pk=contact.pk, portal_access=not enabled).update(portal_access=enabled) == 1
    contact.refresh_from_db()
    if not (enabled and flipped):
        return contact
    contact.user = portal_user_for(contact.email)
    contact.portal_invited_at = timezone.now()
    contact.save(update_fields=["user", "portal_invited_at"])
    workspace = Workspace.objects.get(pk=contact.workspace_id)
    queue_email(
        to=contact.email,
        template="portal_invitation",
        client_id=contact.client_id,
        context={
            "contact": contact,
            "workspace": workspace,
            "client_name": contact.client.name,
            "path": reverse("portal:login") + "?" + urlencode({"email": contact.email}),
        },
        workspace=workspace,
    )
    return contact


# --- CSV import -----------------------------------------------------------------------


@dataclass(frozen=True)
class ImportResult:
    clients: int
    contacts: int
    skipped: int


class ImportRefused(ClientError):
    """The file has rows with errors and the caller did not ask to skip them. `rows` is the fresh check."""

    def __init__(self, rows: list[csv_import.ImportRow]) -> None:
        bad = sum(not row.ok for row in rows)
        super().__init__(f"{bad} row{'s' if bad != 1 else ''} of the file have errors; nothing was imported.")
        self.rows = rows


@transaction.atomic
def import_clients(*, workspace: Workspace, text: str, skip_invalid: bool) -> ImportResult:
    """Create a client (and its contact) for each valid row of a CSV: all of them or none.

    The file is checked again here, since the world may have changed since the preview; a client
    or contact added elsewhere after this check meets the database's unique constraints, and
    nothing is written. With errors and `skip_invalid` false, nothing is written (ImportRefused).
    Sends no email: imported contacts get no portal access.
    """
    rows = csv_import.preview(text, workspace=workspace)
    valid = [row for row in rows if row.ok]
    if len(valid) != len(rows) and not skip_invalid:
        raise ImportRefused(rows)
    now = timezone.now()
    try:
        with transaction.atomic():
            clients = Client.objects.bulk_create(
                Client(
                    workspace=workspace,
                    name=row.values["name"],
                    billing_email=row.values["billing_email"],
                    address=row.values["address"],
                    tax_id=row.values["tax_id"],
                    tax_treatment=row.values["tax_treatment"],
                    tax_rate_bp=row.tax_rate_bp,
                    created_at=now,
                )
                for row in valid
            )
            contacts = Contact.objects.bulk_create(
                Contact(
                    workspace=workspace,
                    client=client,
                    name=row.values["contact_name"],
                    email=row.values["contact_email"],
                    role=row.values["contact_role"],
                    created_at=now,
                )
                for row, client in zip(valid, clients, strict=True)
                if row.has_contact
            )
    except IntegrityError as exc:
        # A client or contact of the file was added elsewhere since the check: the fresh check
        # shows which rows, next to them, and nothing was written.
        if _violated(exc) not in {"client_name_unique", "contact_email_unique"}:
            raise
        fresh = csv_import.preview(text, workspace=workspace)
        if all(row.ok for row in fresh):  # taken, and gone again, since
            raise ClientError("A client name or contact email of the file was taken a moment ago; try again.") from exc
        raise ImportRefused(fresh) from exc
    return ImportResult(clients=len(clients), contacts=len(contacts), skipped=len(rows) - len(valid))


# --- Plans ----------------------------------------------------------------------------


def _check_terms(terms: dict[str, object]) -> None:
    unknown = set(terms) - set(RetainerTerms.TERM_FIELDS)
    if unknown:
        raise ValueError(f"unknown terms: {sorted(unknown)}")


def _save_plan(plan: Plan, update_fields: list[str] | None = None) -> Plan:
    try:
        with transaction.atomic():
            plan.save(update_fields=update_fields)
    except IntegrityError as exc:
        if _violated(exc) == "plan_name_unique":
            raise ClientError(f"There is already a plan called “{plan.name}”.", field="name") from exc
        raise
    return plan


@transaction.atomic
def create_plan(*, workspace: Workspace, name: str, description: str = "", terms: dict[str, object]) -> Plan:
    """Save a reusable template of terms. Names are unique per workspace, ignoring case."""
    _check_terms(terms)
    plan = Plan(workspace=workspace, name=name.strip(), description=description.strip(), **terms)
    return _save_plan(plan)


@transaction.atomic
def update_plan(*, plan: Plan, name: str, description: str = "", terms: dict[str, object]) -> Plan:
    """Change a plan. Signed retainers keep the terms they copied at signing."""
    _check_terms(terms)
    plan.name, plan.description = name.strip(), description.strip()
    for field, value in terms.items():
        setattr(plan, field, value)
    return _save_plan(plan, ["name", "description", *terms])


@transaction.atomic
def set_plan_archived(*, plan: Plan, archived: bool) -> Plan:
    """Archive (or restore) a plan: archived plans are not offered for new retainers."""
    Plan.objects.filter(pk=plan.pk).update(archived=archived)
    plan.archived = archived
    return plan
