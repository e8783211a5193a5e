"""The errors after which a task tries again later rather than recording a failure.

Every task is idempotent (docs/conventions.md), so running one again after any of these is safe.
"""

from django.db import InterfaceError, OperationalError

# The database away for a moment: a restart, a failover, a connection cut by a proxy or a full
# pool. Django raises OperationalError on connecting and InterfaceError on a connection already
# closed; neither is an OSError, so a task that retries only on OSError loses its work to them.
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (OperationalError, InterfaceError)

# ...and a network service away for a moment: SMTP, Stripe's HTTP, object storage (OSError).
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (OSError, *DATABASE_UNAVAILABLE)
