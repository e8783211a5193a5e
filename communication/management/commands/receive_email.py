"""`manage.py receive_email`: one email on standard input into its client's thread, the way an MTA
pipes mail to a program (Postfix's pipe(8), Exim's pipe transport).

The exit status follows sysexits.h, which those MTAs read: 0 when the email was handled —
posted, or deliberately dropped or quarantined (communication.inbound) — so the MTA is done with
it; 75 (EX_TEMPFAIL) when it should be delivered again later: the database is down, or anything
else failed that a retry may fix, so a client's email waits in the MTA's queue instead of being
lost; 65 (EX_DATAERR) for input that is no email, or is larger than we take (the MTA bounces it).
"""

from __future__ import annotations

import logging
import sys
from typing import BinaryIO

from django.core.management.base import CommandError, CommandParser

from communication import inbound
from retainers.tenancy import TenantCommand

log = logging.getLogger(__name__)

EX_DATAERR = 65
EX_TEMPFAIL = 75


class Command(TenantCommand):
    help = (
        "Read one RFC 822 email on standard input and post it to the thread of the client whose reply "
        "address it was sent to, or drop or quarantine it with a logged reason."
    )
    # Tests pass the email as `stdin=`; an MTA pipes it.
    stealth_options = ("stdin",)
    # Run once per email: the system checks would add their time to every delivery.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "recipients",
            nargs="*",
            metavar="RECIPIENT",
            help="The envelope recipient, e.g. Postfix's ${recipient}; without it the headers "
            "(Delivered-To, To, Cc) name the reply address.",
        )
        parser.add_argument(
            "--sender",
            help="The envelope sender, e.g. --sender=${sender}; an empty one or MAILER-DAEMON marks a bounce.",
        )

    def handle(
        self,
        *args: object,
        recipients: list[str],
        sender: str | None = None,
        stdin: BinaryIO | None = None,
        **options: object,
    ) -> None:
        raw = (stdin or sys.stdin.buffer).read(inbound.MAX_EMAIL_BYTES + 1)
        if len(raw) > inbound.MAX_EMAIL_BYTES:
            raise CommandError(
                f"The email is larger than {inbound.MAX_EMAIL_BYTES // (1024 * 1024)} MB.", returncode=EX_DATAERR
            )
        try:
            receipt = inbound.receive_email(raw, envelope_sender=sender, envelope_recipients=recipients)
        except inbound.NotAnEmail as exc:
            raise CommandError(str(exc), returncode=EX_DATAERR) from exc
        except inbound.TryLater as exc:
            raise CommandError(str(exc), returncode=EX_TEMPFAIL) from exc
        except Exception as exc:
            # A bug or an outage we did not foresee: keep the email in the MTA's queue, and log
            # the traceback for the operator.
            log.exception("receive_email failed")
            raise CommandError(
                f"The email could not be processed ({type(exc).__name__}); deliver it again later.",
                returncode=EX_TEMPFAIL,
            ) from exc
        self.stdout.write(str(receipt))
