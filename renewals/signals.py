"""What renewals tells the apps to its right, without importing them.

Renewals sits left of communication (retainers <- clients <- delivery <- billing <- renewals
<- communication), yet two of its workflows have a communication side:

- declining a renewal opens a follow-up task ("Ask why Acme declined") for the owner;
- a proposal's evidence shows the client's shared notes of the term as highlights.

Importing communication here would point the dependency right. Instead renewals sends these
signals and communication, which may import renewals, connects its receivers in
`CommunicationConfig.ready()` (communication/receivers.py). Both are sent synchronously
inside the caller's transaction, so a receiver's writes commit or roll back with the change
that caused them (declining and its task are one transaction, as before). With no receiver
connected nothing happens: the renewal is declined without a task, the evidence has no
highlights.

This is the one place the project uses its own signals (STYLE.md keeps them out of the core
flow otherwise); keep them few, and the receivers small.
"""

from django.dispatch import Signal

# Sent by renewals.services.decline_renewal once the renewal is marked declined, inside its
# transaction, with the row locks held. Arguments: renewal (Renewal, declined), retainer (its
# retainer, with `client`), actor (User who recorded the answer, or None when the client
# answered), declined_at (datetime: the answer's moment).
renewal_declined = Signal()

# Sent by renewals.evidence.build_evidence every time a term's evidence is built (a renewal
# opening, and every refresh), before the suggestion is made from it. Arguments: retainer
# (Retainer, with `workspace`), evidence (renewals.evidence.Evidence; receivers may fill its
# `highlights`, a list of {"date": "YYYY-MM-DD", "text": str}), term_starts_on (date).
evidence_built = Signal()
