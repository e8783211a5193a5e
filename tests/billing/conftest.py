"""Stripe in tests, always over HTTP: localstripe (PyPI) for what it covers, our fake for the rest.

`localstripe` starts one localstripe process per test session on a free loopback port;
`fake_stripe` starts our recording fake (tests/billing/stripe_fake.py) per test. Either is
wired in with `use_stripe(server_url)`, which sets the settings and gives the workspace a
connected account id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests

from billing import services
from billing.models import Invoice, StripeAccount, StripeCustomer
from clients.models import Client
from tests import factories
from tests.billing.stripe_fake import FakeStripe

SECRET_KEY = "sk_test_retainers"
WEBHOOK_SECRET = "whsec_test_retainers"
ACCOUNT = "acct_1Northwind"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def localstripe(tmp_path_factory) -> Iterator[str]:
    """The URL of a localstripe server of this test session's own."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "localstripe", "--port", str(port), "--from-scratch"],
        cwd=tmp_path_factory.mktemp("localstripe"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(f"{url}/v1/customers", auth=(SECRET_KEY, ""), timeout=1).raise_for_status()
                break
            except requests.RequestException:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("localstripe did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def fake_stripe() -> Iterator[FakeStripe]:
    fake = FakeStripe().start()
    yield fake
    fake.stop()


@pytest.fixture
def use_stripe(settings, workspace) -> Callable[[str], None]:
    """Point the SDK at a Stripe-compatible server and connect `workspace`'s account."""

    def use(url: str, *, timeout: float = 1.0) -> None:
        settings.STRIPE_SECRET_KEY = SECRET_KEY
        settings.STRIPE_API_BASE = url
        settings.STRIPE_TIMEOUT_SECONDS = timeout
        StripeAccount.objects.update_or_create(
            workspace=workspace, defaults={"account_id": ACCOUNT, "charges_enabled": True, "details_submitted": True}
        )
        profile = services.profile_for(workspace)
        profile.payment_instructions = "Bank: Northwind Bank\nIBAN: GB00 NWBK 0000 0000 0000 00"
        profile.save()

    return use


@pytest.fixture(autouse=True)
def _no_stripe_by_default(settings) -> None:
    settings.STRIPE_SECRET_KEY = ""
    settings.STRIPE_API_BASE = ""
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET


@pytest.fixture
def acme(workspace) -> Client:
    return factories.ClientFactory(workspace=workspace, name="Acme Corp", billing_email="ap@acme.example")


def open_invoice(client: Client, *, amount_minor: int = 120000, auto_charge: bool = False, **fields: Any) -> Invoice:
    """An issued, open invoice made through the billing services (its delivery task not run)."""
    invoice = services.create_invoice(client=client, lines=[("Advisory, November", Decimal("1"), amount_minor)])
    invoice = services.issue_invoice(invoice=invoice, actor=None)
    Invoice.objects.filter(pk=invoice.pk).update(auto_charge=auto_charge, **fields)
    return Invoice.objects.select_related("workspace", "client").get(pk=invoice.pk)


def save_card(client: Client, *, customer_id: str, payment_method_id: str, last4: str = "4242") -> StripeCustomer:
    return StripeCustomer.objects.create(
        workspace_id=client.workspace_id,
        client=client,
        customer_id=customer_id,
        payment_method_id=payment_method_id,
        card_brand="visa",
        card_last4=last4,
        card_exp="12/2030",
    )


def localstripe_card(url: str, *, number: str = "4242424242424242") -> tuple[str, str]:
    """A customer and an attached card on localstripe, made as Stripe.js would: (customer id, pm id)."""
    auth = (SECRET_KEY, "")
    customer = requests.post(f"{url}/v1/customers", data={"name": "Acme Corp"}, auth=auth, timeout=5).json()
    pm = requests.post(
        f"{url}/v1/payment_methods",
        data={
            "type": "card",
            "card[number]": number,
            "card[exp_month]": "12",
            "card[exp_year]": "2030",
            "card[cvc]": "123",
        },
        auth=auth,
        timeout=5,
    ).json()
    requests.post(
        f"{url}/v1/payment_methods/{pm['id']}/attach", data={"customer": customer["id"]}, auth=auth, timeout=5
    ).raise_for_status()
    return customer["id"], pm["id"]


def event(kind: str, obj: dict[str, Any], *, account: str = ACCOUNT, event_id: str | None = None) -> dict[str, Any]:
    return {
        "id": event_id or f"evt_{secrets.token_hex(8)}",
        "object": "event",
        "type": kind,
        "account": account,
        "created": int(time.time()),
        "api_version": "2025-01-27.acacia",
        "data": {"object": obj},
    }


def sign(body: bytes, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """The Stripe-Signature header, made the way Stripe makes it: v1 = HMAC-SHA256 of "t.body"."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={signature}"


def post_event(browser, evt: dict[str, Any], **signing: Any):
    body = json.dumps(evt).encode()
    return browser.post(
        "/stripe/webhook/", data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(body, **signing)
    )
