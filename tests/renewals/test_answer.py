"""Sending the proposal, and the client's answer: in the portal or from the signed emailed links."""

from __future__ import annotations

import re
import threading
from datetime import date
from decimal import Decimal as D

import pytest
import time_machine
from django.core.mail import EmailMessage
from django.db import close_old_connections
from django.test import Client as Browser

from clients.models import Retainer
from clients.services import add_contact
from communication.models import Task
from renewals import services
from renewals.models import Renewal
from retainers import outbox, tenancy
from retainers.models import Email
from tests import factories
from tests.renewals.conftest import run
from tests.sent import sent_message


@pytest.fixture
def june():
    """2 June 2026, 10:00 in London: the renewal of a term ending 1 July is open."""
    with time_machine.travel("2026-06-02T09:00:00+00:00", tick=True) as traveller:
        yield traveller


@pytest.fixture
def renewal(workspace, six_month_retainer, june, alice) -> Renewal:
    run(workspace, date(2026, 6, 1))
    renewal = Renewal.objects.get(retainer=six_month_retainer)
    services.save_proposal(
        renewal=renewal,
        terms={"units_per_period": D("12"), "price_minor": 240000},
        proposal_text="Thank you for a great half year.",
        actor=alice,
    )
    return services.send_proposal(renewal=renewal, actor=alice)


def proposal_email(renewal: Renewal, to: str = "carol@acme.example") -> Email:
    return Email.objects.get(key__startswith=f"renewal-{renewal.pk}-proposal-", to=to)


def link(email: Email | EmailMessage, action: str) -> str:
    """The path of the emailed accept or decline link, from an outbox row or a message as sent."""
    body = email.body_text if isinstance(email, Email) else email.body
    return re.search(rf"https?://[^/\s]+(/renewal/[^/\s]+/{action}/)", body).group(1)


def next_retainers(renewal: Renewal):
    return Retainer.objects.filter(client=renewal.retainer.client).exclude(pk=renewal.retainer_id)


# --- Sending ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_proposal_goes_to_the_portal_contacts_with_a_portal_link_and_signed_links(renewal, acme, carol):
    add_contact(client=acme, name="No Portal", email="np@acme.example")  # not a portal contact: not sent to
    email = proposal_email(renewal)
    assert renewal.status == "proposal_sent" and renewal.sent_at is not None
    assert email.from_name == "Northwind Advisory"
    assert email.subject == "Your next term of Advisory retainer with Northwind Advisory"
    body = email.body_text
    assert "Thank you for a great half year." in body
    assert "12 hours / month" in body and "£2,400.00" in body
    assert f"/portal/w/{renewal.workspace.slug}/renewals/{renewal.pk}/" in body
    assert link(email, "accept") and link(email, "decline")
    assert "If you do not answer by 30 June 2026, your retainer ends." in body
    assert not Email.objects.filter(to="np@acme.example").exists()


@pytest.mark.django_db
def test_the_proposal_is_sent_with_its_signed_links_then_redacted(renewal):
    """Accepting signs the next term without signing in: once sent, the outbox row no longer holds the links."""
    email = proposal_email(renewal)
    token = link(email, "accept").split("/")[2]
    assert outbox.send_email(email.pk) is True
    assert link(sent_message(email), "accept").split("/")[2] == token  # the client got the working links
    email.refresh_from_db()
    assert email.status == Email.Status.SENT and email.secret
    assert token not in email.body_text and token not in email.body_html and "/renewal/" not in email.body_text
    assert services.check_response_token(token).ok


@pytest.mark.django_db
def test_without_portal_contacts_the_proposal_goes_to_every_contact(workspace, acme, june, alice):
    retainer = factories.make_retainer(client=acme, term_periods=6)
    add_contact(client=acme, name="Dan", email="dan@acme.example")
    run(workspace, date(2026, 6, 1))
    services.send_proposal(renewal=Renewal.objects.get(retainer=retainer), actor=alice)
    assert Email.objects.filter(key__contains="-proposal-", to="dan@acme.example").exists()


@pytest.mark.django_db
def test_sending_needs_someone_to_send_to(workspace, june, alice):
    lonely = factories.ClientFactory(workspace=workspace, name="Lonely Ltd")
    retainer = factories.make_retainer(client=lonely, term_periods=6)
    run(workspace, date(2026, 6, 1))
    with pytest.raises(services.RenewalError, match="no contact or billing email"):
        services.send_proposal(renewal=Renewal.objects.get(retainer=retainer), actor=alice)
    assert Renewal.objects.get(retainer=retainer).status == "upcoming"


# --- Accepting from the emailed link ------------------------------------------------------------


@pytest.mark.django_db
def test_accepting_from_the_link_signs_the_next_term_from_the_current_terms_end(renewal, carol, client, alice):
    url = link(proposal_email(renewal), "accept")
    page = client.get(url)
    assert page.status_code == 200
    assert b"Accept the proposal" in page.content and b"12 hours / month" in page.content
    assert not next_retainers(renewal).exists()  # a GET changes nothing

    done = client.post(url)
    assert done.status_code == 200 and b"your next term is confirmed" in done.content
    renewal.refresh_from_db()
    [following] = next_retainers(renewal)
    assert (renewal.status, renewal.next_retainer, renewal.responded_by) == ("accepted", following, carol)
    assert (following.starts_on, following.term_ends_on, following.status) == (
        date(2026, 7, 1),
        date(2027, 1, 1),
        "active",
    )
    assert (following.units_per_period, following.price_minor, following.currency) == (D("12.00"), 240000, "GBP")
    assert following.periods.get().start_on == date(2026, 7, 1)
    current = Retainer.objects.get(pk=renewal.retainer_id)
    assert current.auto_renew is False and current.status == "active"
    assert Email.objects.filter(key=f"renewal-{renewal.pk}-accepted-{alice.pk}", to=alice.email).exists()
    assert Email.objects.filter(key=f"renewal-{renewal.pk}-accepted-client-c{carol.pk}", to=carol.email).exists()


@pytest.mark.django_db
def test_accepting_twice_creates_one_retainer_and_the_used_link_gets_a_clear_page(renewal, client):
    url = link(proposal_email(renewal), "accept")
    assert client.post(url).status_code == 200
    again = client.post(url)
    assert again.status_code == 410 and b"already answered" in again.content
    assert client.get(url).status_code == 410
    services.accept_renewal(renewal=renewal)  # and the service itself: a no-op
    assert next_retainers(renewal).count() == 1
    assert Email.objects.filter(key__contains="-accepted-client-").count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_accepts_at_the_same_moment_create_one_retainer(june):
    workspace = factories.WorkspaceFactory(timezone="Europe/London", currency="GBP")
    acme = factories.ClientFactory(workspace=workspace)
    add_contact(client=acme, name="Carol", email="carol@acme.example", portal_access=True)
    retainer = factories.make_retainer(client=acme, term_periods=6)
    run(workspace, date(2026, 6, 1))
    renewal = services.send_proposal(renewal=Renewal.objects.get(retainer=retainer), actor=None)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def accept() -> None:
        try:
            barrier.wait(timeout=10)
            # Each thread is a request of its own (a new connection): it opens the workspace as one does.
            with tenancy.use_workspace(renewal.workspace_id):
                outcomes.append(services.accept_renewal(renewal=renewal).status)
        except Exception as exc:
            outcomes.append(repr(exc))
        finally:
            close_old_connections()

    threads = [threading.Thread(target=accept) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert outcomes == ["accepted", "accepted"]
    assert Retainer.objects.filter(client=acme).count() == 2  # the current one and one next term
    assert Renewal.objects.get(pk=renewal.pk).next_retainer is not None


@pytest.mark.django_db
def test_an_expired_link_gets_a_clear_page_and_creates_nothing(renewal, client, june):
    url = link(proposal_email(renewal), "accept")
    june.shift(60 * 60 * 24 * 31)  # 31 days on (and past the term end)
    for response in (client.get(url), client.post(url)):
        assert response.status_code == 410 and b"This link has expired" in response.content
    assert not next_retainers(renewal).exists()
    assert Renewal.objects.get(pk=renewal.pk).status == "proposal_sent"


@pytest.mark.django_db
def test_a_link_past_the_term_end_is_expired_even_if_young(workspace, acme, carol, alice, client):
    with time_machine.travel("2026-06-25T09:00:00+00:00", tick=True) as traveller:
        retainer = factories.make_retainer(client=acme, term_periods=6)
        run(workspace, date(2026, 6, 25))
        renewal = services.send_proposal(renewal=Renewal.objects.get(retainer=retainer), actor=alice)
        url = link(proposal_email(renewal), "accept")
        traveller.shift(60 * 60 * 24 * 7)  # 2 July: a week old, but the term ended on 1 July
        response = client.post(url)
    assert response.status_code == 410 and b"expired" in response.content
    assert not next_retainers(renewal).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("tamper", ["flip", "garbage", "other-salt"])
def test_a_tampered_link_gets_a_clear_400_page(renewal, client, tamper):
    from django.core import signing

    good = link(proposal_email(renewal), "accept").split("/")[2]
    token = {
        "flip": good[:-3] + ("A" if good[-3] != "A" else "B") + good[-2:],
        "garbage": "x",
        "other-salt": signing.dumps(
            {"r": renewal.pk, "c": 0, "n": services.response_nonce(renewal)}, salt="billing.pay"
        ),
    }[tamper]
    for response in (client.get(f"/renewal/{token}/accept/"), client.post(f"/renewal/{token}/accept/")):
        assert response.status_code == 400 and b"This link is not valid" in response.content
    assert not next_retainers(renewal).exists()


@pytest.mark.django_db
def test_a_resent_or_changed_proposal_retires_the_old_links(renewal, client, alice, june):
    old = link(proposal_email(renewal), "accept")
    june.shift(120)
    services.send_proposal(renewal=renewal, actor=alice)
    response = client.get(old)
    assert response.status_code == 410 and b"replaced" in response.content
    newest = (
        Email.objects.filter(key__startswith=f"renewal-{renewal.pk}-proposal-").order_by("-created_at", "-pk").first()
    )
    assert client.get(link(newest, "accept")).status_code == 200
    # Changing the terms withdraws the proposal: even the newest link stops working.
    services.save_proposal(renewal=renewal, terms={"price_minor": 250000}, proposal_text="Updated", actor=alice)
    assert Renewal.objects.get(pk=renewal.pk).status == "upcoming"
    assert client.post(link(newest, "accept")).status_code == 410
    assert not next_retainers(renewal).exists()


@pytest.mark.django_db
def test_the_link_page_posts_with_csrf(renewal):
    browser = Browser(enforce_csrf_checks=True)
    url = link(proposal_email(renewal), "accept")
    assert browser.post(url).status_code == 403
    page = browser.get(url)
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content).group(1).decode()
    assert browser.post(url, {"csrfmiddlewaretoken": token}).status_code == 200
    assert next_retainers(renewal).count() == 1


# --- Declining ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_declining_ends_the_retainer_at_term_end_and_asks_the_consultant_why(renewal, carol, client, alice):
    url = link(proposal_email(renewal), "decline")
    page = client.get(url)
    assert page.status_code == 200 and b"Would you tell us why?" in page.content
    response = client.post(url, {"reason": "Budget cut <script>alert(1)</script>"})
    assert response.status_code == 200 and b"Thank you for letting us know" in response.content
    renewal.refresh_from_db()
    assert (renewal.status, renewal.responded_by, renewal.decline_reason) == (
        "declined",
        carol,
        "Budget cut <script>alert(1)</script>",
    )
    assert Retainer.objects.get(pk=renewal.retainer_id).auto_renew is False
    assert not next_retainers(renewal).exists()
    task = Task.objects.get(renewal=renewal)
    assert (task.title, task.source, task.client_id, task.assignee) == (
        "Ask why Acme Corp declined",
        "renewal",
        renewal.retainer.client_id,
        alice,
    )
    told = Email.objects.get(key=f"renewal-{renewal.pk}-declined-{alice.pk}")
    assert "Budget cut <script>" in told.body_text and "<script>" not in told.body_html
    assert Email.objects.filter(key=f"renewal-{renewal.pk}-declined-client-c{carol.pk}").exists()
    assert client.post(url).status_code == 410  # used
    assert Task.objects.filter(renewal=renewal).count() == 1


@pytest.mark.django_db
def test_the_team_can_record_an_answer_given_by_phone(renewal, alice):
    services.decline_renewal(renewal=renewal, reason="Said so on a call", actor=alice)
    renewal.refresh_from_db()
    assert renewal.status == "declined" and renewal.responded_by is None
    with pytest.raises(services.RenewalError, match="already declined"):
        services.accept_renewal(renewal=renewal, actor=alice)
    assert not next_retainers(renewal).exists()


# --- The portal -----------------------------------------------------------------------------------


@pytest.fixture
def carol_browser(carol, login):
    return login(carol.user)


@pytest.mark.django_db
def test_the_contact_accepts_in_the_portal(renewal, carol, carol_browser, workspace):
    base = f"/portal/w/{workspace.slug}/renewals/"
    listing = carol_browser.get(base)
    assert listing.status_code == 200 and b"Waiting for your answer" in listing.content
    page = carol_browser.get(f"{base}{renewal.pk}/")
    assert page.status_code == 200 and b"Thank you for a great half year." in page.content
    assert carol_browser.post(f"{base}{renewal.pk}/accept/").status_code == 302
    assert carol_browser.post(f"{base}{renewal.pk}/accept/").status_code == 302  # twice: still one
    renewal.refresh_from_db()
    assert renewal.status == "accepted" and renewal.responded_by == carol
    assert next_retainers(renewal).count() == 1


@pytest.mark.django_db
def test_the_contact_declines_in_the_portal_with_a_reason(renewal, carol_browser, workspace):
    url = f"/portal/w/{workspace.slug}/renewals/{renewal.pk}/decline/"
    assert carol_browser.post(url, {"reason": "Moving in-house"}).status_code == 302
    renewal.refresh_from_db()
    assert (renewal.status, renewal.decline_reason) == ("declined", "Moving in-house")


@pytest.mark.django_db
def test_another_clients_contact_gets_404_for_the_renewal(renewal, workspace, login):
    beta = factories.ClientFactory(workspace=workspace, name="Beta")
    dave = add_contact(client=beta, name="Dave", email="dave@beta.example", portal_access=True)
    browser = login(dave.user)
    base = f"/portal/w/{workspace.slug}/renewals/{renewal.pk}/"
    assert browser.get(base).status_code == 404
    assert browser.post(base + "accept/").status_code == 404
    assert browser.post(base + "decline/", {"reason": "x"}).status_code == 404
    assert b"Advisory retainer" not in browser.get(f"/portal/w/{workspace.slug}/renewals/").content
    assert Renewal.objects.get(pk=renewal.pk).status == "proposal_sent"


@pytest.mark.django_db
def test_an_unsent_renewal_is_not_in_the_portal(workspace, six_month_retainer, carol, login, june):
    run(workspace, date(2026, 6, 1))
    renewal = Renewal.objects.get()
    assert login(carol.user).get(f"/portal/w/{workspace.slug}/renewals/{renewal.pk}/").status_code == 404
