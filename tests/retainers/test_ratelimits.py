"""Rate limits beyond sign-in: the counting (retainers.ratelimits) and each limited endpoint, which
answers our 429 page with Retry-After once over its rate and keeps serving everyone else."""

from __future__ import annotations

import socket

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client as Browser
from django.urls import reverse

from billing import paylinks
from billing.models import Invoice
from communication.models import Attachment, Message
from delivery.models import Period
from retainers import ratelimits
from retainers.ratelimits import Rate, consume, parse_rates
from tests.retainers.test_security import site  # noqa: F401  (the fixture: every kind of object)

NOW = 1_800_000_000.0  # on a minute and an hour boundary


def test_rates_are_written_as_allauth_writes_them():
    assert parse_rates("10/m/user, 30/5m/ip,3/h/key,1/d/ip") == [
        Rate(10, 60, "user"),
        Rate(30, 300, "ip"),
        Rate(3, 3600, "key"),
        Rate(1, 86400, "ip"),
    ]
    with pytest.raises(ValueError, match="not like"):
        parse_rates("10 per minute")


def test_each_subject_is_counted_on_its_own_and_the_window_passes(settings):
    settings.RATE_LIMITS = {"thing": "2/m/ip,3/m/key"}
    assert consume("thing", ip="1.1.1.1", key=7, now=NOW) is None
    assert consume("thing", ip="1.1.1.1", key=7, now=NOW + 1) is None
    assert consume("thing", ip="1.1.1.1", key=7, now=NOW + 20) == 40  # third from this IP: wait for the minute
    assert consume("thing", ip="2.2.2.2", key=7, now=NOW + 21) == 39  # a new address, but the object's fourth use
    assert consume("thing", ip="3.3.3.3", key=8, now=NOW + 22) is None  # another object, another address
    assert consume("thing", ip="1.1.1.1", key=7, now=NOW + 60) is None  # the next minute
    assert consume("thing", now=NOW) is None  # nothing named: nothing counted
    assert consume("unknown action", ip="1.1.1.1", now=NOW) is None


def test_limits_can_be_turned_off(settings):
    settings.RATE_LIMITS = {"thing": "1/m/ip"}
    settings.RATE_LIMITS_ENABLED = False
    assert [consume("thing", ip="1.1.1.1", now=NOW) for _ in range(3)] == [None, None, None]


def test_with_the_cache_down_the_limits_are_off_not_the_site(settings):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": f"redis://127.0.0.1:{port}/0"}
    }
    settings.RATE_LIMITS = {"thing": "1/m/ip"}
    assert [consume("thing", ip="1.1.1.1", now=NOW) for _ in range(2)] == [None, None]


def test_ipv6_clients_are_counted_by_their_64_network():
    from django.test import RequestFactory

    request = RequestFactory().get("/", REMOTE_ADDR="2001:db8:1:2:aaaa:bbbb:cccc:dddd")
    assert ratelimits.client_ip(request) == "2001:db8:1:2::"


# --- The endpoints ----------------------------------------------------------------------------


def assert_limited(response) -> None:
    assert response.status_code == 429, response.status_code
    html = response.content.decode()
    assert "<h1>Too many requests</h1>" in html and "Please wait 1 minute" in html
    assert 0 < int(response["Retry-After"]) <= 60


@pytest.mark.django_db
def test_the_public_pay_page_is_limited_per_address(site, settings):  # noqa: F811
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "pay": "2/m/ip"}
    invoice = Invoice.objects.for_workspace(site.workspace).exclude(number="").first()
    url = reverse("billing_public:pay", args=[paylinks.pay_token(invoice)])
    visitor = Browser()
    assert [visitor.get(url).status_code for _ in range(2)] == [200, 200]
    assert_limited(visitor.get(url))
    assert_limited(visitor.post(url + "checkout/"))  # the checkout button counts with the page
    assert Browser(REMOTE_ADDR="10.0.0.2").get(url).status_code == 200
    forged = Browser(REMOTE_ADDR="10.0.0.3")  # guessing tokens is counted too
    assert [forged.get(f"/pay/guess{n}/").status_code for n in range(3)] == [404, 404, 429]


@pytest.mark.django_db
def test_statement_pdfs_are_limited_per_contact(site, settings, login):  # noqa: F811
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "statement_pdf": "1/m/user"}
    period = Period.objects.for_workspace(site.workspace).first()
    url = reverse("portal:statement_pdf", args=[site.workspace.slug, period.retainer_id, period.pk])
    contact = login(site.visitors["contact"])
    assert contact.get(url).status_code == 200
    assert_limited(contact.get(url))


@pytest.mark.django_db
def test_messages_are_limited_per_person_on_both_sides(site, settings, login):  # noqa: F811
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "message_send": "1/m/user"}
    slug = site.workspace.slug
    contact, owner = login(site.visitors["contact"]), login(site.visitors["owner"])
    before = Message.objects.count()

    send = reverse("portal:message_send", args=[slug])
    assert contact.post(send, {"body": "One"}).status_code == 302
    assert_limited(contact.post(send, {"body": "Two", "attachments": SimpleUploadedFile("a.pdf", b"%PDF-1.4\n")}))

    thread = reverse("communication:message_thread", args=[slug, Attachment.objects.first().message.client_id])
    assert owner.post(thread, {"body": "One"}).status_code in {200, 302}
    assert_limited(owner.post(thread, {"body": "Two"}))
    assert owner.get(thread).status_code == 200  # reading the thread is not counted
    assert Message.objects.count() == before + 2


@pytest.mark.django_db
def test_attachment_downloads_are_limited_per_person(site, settings, login):  # noqa: F811
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "attachment_download": "1/m/user"}
    slug, attachment = site.workspace.slug, Attachment.objects.first()
    for person, url in [
        (login(site.visitors["owner"]), reverse("communication:attachment_download", args=[slug, attachment.pk])),
        (login(site.visitors["contact"]), reverse("portal:message_attachment", args=[slug, attachment.pk])),
    ]:
        assert person.get(url).status_code == 200
        assert_limited(person.get(url))
