"""One lock order everywhere (billing/services.py): the invoice sequence row, then invoices. A
credit note and an issue at once, in real concurrent transactions, both finish: no deadlock."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections, transaction

from billing import services
from billing.models import Invoice
from retainers import tenancy
from tests.billing.conftest import open_invoice

pytestmark = pytest.mark.django_db(transaction=True)


def waiting_on_a_lock() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        return cursor.fetchone()[0]


def test_a_credit_note_and_an_issue_at_once_both_finish(acme):
    invoice = open_invoice(acme, amount_minor=120000)
    errors: list[BaseException] = []
    numbered = threading.Event()

    def in_thread(work) -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SET lock_timeout = '20s'")  # a bug here fails the test, never hangs it
            with tenancy.use_workspace(acme.workspace_id):  # as a request or the run would: a new connection is walled
                work()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    def issue() -> None:
        # The issuing side holds the sequence row (as a billing run does while it numbers a batch),
        # then locks an invoice: here a second "Issue" click on the invoice being credited.
        with transaction.atomic():
            services._take_numbers(acme.workspace_id, acme.workspace.today().year, 1)
            numbered.set()
            deadline = time.monotonic() + 10
            while not waiting_on_a_lock() and time.monotonic() < deadline:
                time.sleep(0.05)  # until the credit note waits on us
            services.issue_invoice(invoice=invoice, actor=None)

    def credit() -> None:
        numbered.wait(10)
        services.create_credit_note(invoice=invoice, amount_minor=20000, reason="Two hours billed twice", actor=None)

    threads = [threading.Thread(target=in_thread, args=(work,)) for work in (issue, credit)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    invoice.refresh_from_db()
    assert invoice.credited_minor == 20000
    [note] = Invoice.objects.filter(kind=Invoice.Kind.CREDIT_NOTE)
    assert note.number and note.credit_for == invoice
