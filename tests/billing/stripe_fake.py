"""A small fake Stripe API for what localstripe lacks (Checkout) and for failure paths.

A threaded HTTP server on a loopback port. It records every request (method, path, form
parameters, the Idempotency-Key and Stripe-Account headers), keeps the objects it created,
and replays a request sent again with the same idempotency key, as Stripe does: the same
answer, no second object; the same key with other parameters is an idempotency error.

`script(...)` makes the next matching request fail: time out (after doing the work, or
before), answer 5xx, or answer anything given. Cards listed in `declining` are declined,
those in `requiring_action` need the cardholder (3-D Secure).
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    params: dict[str, Any]
    idempotency_key: str | None
    account: str | None


@dataclass
class Scripted:
    method: str
    path: str  # a prefix of the request path
    action: str  # "timeout" (work done, answer late), "timeout_before" (no work), "status"
    status: int = 500
    body: dict[str, Any] | None = None
    delay: float = 2.0


@dataclass
class FakeStripe:
    declining: set[str] = field(default_factory=set)
    requiring_action: set[str] = field(default_factory=set)
    processing: set[str] = field(default_factory=set)  # cards whose payments stay "processing"
    refund_status: str = "succeeded"  # what a new refund says: "pending" is common for some cards
    refund_statuses: dict[str, str] = field(default_factory=dict)  # by PaymentIntent id, over refund_status

    def __post_init__(self) -> None:
        self.requests: list[Recorded] = []
        self.objects: dict[str, dict[str, Any]] = {}
        self._replays: dict[tuple[str | None, str], tuple[dict[str, Any], int, dict[str, Any]]] = {}
        self._scripts: list[Scripted] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._counter = itertools.count(1)

    # --- Life cycle ------------------------------------------------------------------------

    def start(self) -> FakeStripe:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._handle(self)

            def do_POST(self) -> None:
                fake._handle(self)

            def do_DELETE(self) -> None:
                fake._handle(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # --- Test helpers ----------------------------------------------------------------------

    def script(self, method: str, path: str, action: str = "status", **options: Any) -> None:
        with self._lock:
            self._scripts.append(Scripted(method, path, action, **options))

    def forget_idempotency_keys(self) -> None:
        """What Stripe does to keys at least 24 hours old: a request sent again with one is new."""
        with self._lock:
            self._replays.clear()

    def requests_to(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path)]

    def of_type(self, object_type: str) -> list[dict[str, Any]]:
        return [obj for obj in self.objects.values() if obj.get("object") == object_type]

    def add_card(self, *, brand: str = "visa", last4: str = "4242", exp_month: int = 12, exp_year: int = 2030) -> str:
        pm = self._new(
            "pm",
            "payment_method",
            type="card",
            customer=None,
            metadata={},
            card={"brand": brand, "last4": last4, "exp_month": exp_month, "exp_year": exp_year},
        )
        return pm["id"]

    def complete_setup_session(self, session_id: str, **card: Any) -> dict[str, Any]:
        """What the cardholder does on Stripe's page: a card saved through a SetupIntent."""
        session = self.objects[session_id]
        pm = self.objects[self.add_card(**card)]
        pm["customer"] = session["customer"]
        seti = self._new(
            "seti",
            "setup_intent",
            status="succeeded",
            customer=session["customer"],
            payment_method=pm["id"],
            metadata=session["metadata"],
        )
        session.update(status="complete", setup_intent=seti["id"])
        return session

    def complete_payment_session(self, session_id: str) -> dict[str, Any]:
        session = self.objects[session_id]
        pi = self._new(
            "pi",
            "payment_intent",
            status="succeeded",
            amount=session["amount_total"],
            amount_received=session["amount_total"],
            currency=session["currency"],
            metadata=session["metadata"],
            latest_charge=f"ch_{secrets.token_hex(6)}",
        )
        session.update(status="complete", payment_status="paid", payment_intent=pi["id"])
        return session

    def complete_onboarding(self, account_id: str, *, charges_enabled: bool = True) -> dict[str, Any]:
        """What the account holder does on Stripe's onboarding pages: details submitted, charges on."""
        account = self.objects[account_id]
        account.update(details_submitted=True, charges_enabled=charges_enabled, payouts_enabled=charges_enabled)
        return account

    # --- The API ---------------------------------------------------------------------------

    def _new(self, prefix: str, object_type: str, **fields: Any) -> dict[str, Any]:
        obj = {
            "id": f"{prefix}_{next(self._counter):04d}{secrets.token_hex(4)}",
            "object": object_type,
            "created": int(time.time()),
            "livemode": False,
            **fields,
        }
        self.objects[obj["id"]] = obj
        return obj

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length).decode() if length else ""
        pairs = parse_qsl(body if handler.command == "POST" else parts.query, keep_blank_values=True)
        params = unflatten(pairs)
        record = Recorded(
            handler.command,
            parts.path,
            params,
            handler.headers.get("Idempotency-Key"),
            handler.headers.get("Stripe-Account"),
        )
        with self._lock:
            self.requests.append(record)
            scripted = next(
                (s for s in self._scripts if s.method == handler.command and parts.path.startswith(s.path)), None
            )
            if scripted is not None:
                self._scripts.remove(scripted)
        if scripted is not None and scripted.action == "timeout_before":
            time.sleep(scripted.delay)
            return self._send(handler, 500, {"error": {"type": "api_error", "message": "too late"}})
        if scripted is not None and scripted.action == "status":
            return self._send(
                handler, scripted.status, scripted.body or {"error": {"type": "api_error", "message": "Internal error"}}
            )
        status, answer = self._answer(record)
        if scripted is not None and scripted.action == "timeout":
            time.sleep(scripted.delay)  # the work is done; the client has given up by now
        self._send(handler, status, answer)

    def _answer(self, record: Recorded) -> tuple[int, dict[str, Any]]:
        with self._lock:
            key = (record.account, record.idempotency_key) if record.idempotency_key else None
            if key is not None and key in self._replays:
                params, status, answer = self._replays[key]
                if params != record.params:
                    return 400, {
                        "error": {
                            "type": "idempotency_error",
                            "message": "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                        }
                    }
                return status, answer
            status, answer = self._route(record)
            if key is not None and record.method == "POST" and status < 500:
                self._replays[key] = (record.params, status, answer)
            return status, answer

    def _route(self, r: Recorded) -> tuple[int, dict[str, Any]]:
        p = r.params
        if r.method == "POST" and r.path == "/v1/customers":
            return 200, self._new(
                "cus", "customer", name=p.get("name"), email=p.get("email"), metadata=p.get("metadata", {})
            )
        if r.method == "POST" and r.path == "/v1/payment_intents":
            return self._payment_intent(p)
        if r.method == "POST" and r.path == "/v1/accounts" and not r.account:  # Connect: platform calls only
            return 200, self._new(
                "acct",
                "account",
                type=p.get("type"),
                email=p.get("email"),
                metadata=p.get("metadata", {}),
                capabilities={name: "inactive" for name in p.get("capabilities", {})},
                charges_enabled=False,
                payouts_enabled=False,
                details_submitted=False,
            )
        if r.method == "GET" and (m := re.fullmatch(r"/v1/accounts/(acct_[^/]+)", r.path)) and not r.account:
            obj = self.objects.get(m.group(1))
            return (200, obj) if obj else _missing(m.group(1))
        if r.method == "POST" and r.path == "/v1/account_links" and not r.account:
            if p.get("account") not in self.objects or p.get("type") != "account_onboarding":
                return 400, {"error": {"type": "invalid_request_error", "message": "No such account."}}
            if not p.get("return_url") or not p.get("refresh_url"):
                return 400, {
                    "error": {"type": "invalid_request_error", "message": "Missing return_url or refresh_url."}
                }
            created = int(time.time())
            return 200, {
                "object": "account_link",
                "created": created,
                "expires_at": created + 300,
                "url": f"{self.url}/setup/e/{p['account']}/{secrets.token_hex(8)}",
            }
        if r.method == "GET" and r.path == "/v1/payment_intents":
            since = int((p.get("created") or {}).get("gte") or 0)
            data = [
                o
                for o in reversed(self.of_type("payment_intent"))
                if o.get("customer") == p.get("customer") and o["created"] >= since
            ]
            return 200, {"object": "list", "data": data[: int(p.get("limit") or 10)], "has_more": False}
        if r.method == "POST" and r.path == "/v1/refunds":
            return self._refund(p)
        if r.method == "GET" and r.path == "/v1/refunds":
            data = [o for o in self.of_type("refund") if o["payment_intent"] == p.get("payment_intent")]
            return 200, {"object": "list", "data": data, "has_more": False, "url": "/v1/refunds"}
        if r.method == "POST" and r.path == "/v1/checkout/sessions":
            return self._checkout_session(p)
        if m := re.fullmatch(r"/v1/payment_methods/([^/]+)/detach", r.path):
            pm = self.objects.get(m.group(1))
            if pm is None:
                return _missing(m.group(1))
            pm["customer"] = None
            return 200, pm
        if r.method == "GET" and (m := re.fullmatch(r"/v1/checkout/sessions/([^/]+)", r.path)):
            session = self.objects.get(m.group(1))
            if session is None:
                return _missing(m.group(1))
            session = dict(session)
            if session.get("setup_intent"):  # as if expand[]=setup_intent.payment_method
                seti = dict(self.objects[session["setup_intent"]])
                seti["payment_method"] = self.objects[seti["payment_method"]]
                session["setup_intent"] = seti
            return 200, session
        if r.method == "GET" and (m := re.fullmatch(r"/v1/setup_intents/([^/]+)", r.path)):
            seti = self.objects.get(m.group(1))
            if seti is None:
                return _missing(m.group(1))
            return 200, {**seti, "payment_method": self.objects[seti["payment_method"]]}
        if r.method == "GET" and (m := re.fullmatch(r"/v1/(payment_methods|payment_intents)/([^/]+)", r.path)):
            obj = self.objects.get(m.group(2))
            return (200, obj) if obj else _missing(m.group(2))
        return 404, {
            "error": {"type": "invalid_request_error", "message": f"Unrecognized request URL ({r.method}: {r.path})."}
        }

    def _payment_intent(self, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        method = p.get("payment_method")
        fields = {
            "amount": int(p["amount"]),
            "currency": p["currency"],
            "customer": p.get("customer"),
            "payment_method": method,
            "metadata": p.get("metadata", {}),
            "off_session": p.get("off_session"),
        }
        if method in self.declining:
            charge = f"ch_{secrets.token_hex(6)}"
            pi = self._new(
                "pi",
                "payment_intent",
                status="requires_payment_method",
                amount_received=0,
                latest_charge=charge,
                last_payment_error={
                    "code": "card_declined",
                    "charge": charge,
                    "message": "Your card has insufficient funds.",
                },
                **fields,
            )
            return 402, {
                "error": {
                    "type": "card_error",
                    "code": "card_declined",
                    "decline_code": "insufficient_funds",
                    "message": "Your card has insufficient funds.",
                    "charge": charge,
                    "payment_intent": pi,
                }
            }
        if method in self.processing:
            pi = self._new("pi", "payment_intent", status="processing", amount_received=0, latest_charge=None, **fields)
            return 200, pi
        if method in self.requiring_action:
            pi = self._new(
                "pi",
                "payment_intent",
                status="requires_action",
                amount_received=0,
                latest_charge=None,
                next_action={"type": "use_stripe_sdk"},
                **fields,
            )
            return 200, pi
        pi = self._new(
            "pi",
            "payment_intent",
            status="succeeded",
            amount_received=fields["amount"],
            latest_charge=f"ch_{secrets.token_hex(6)}",
            **fields,
        )
        return 200, pi

    def _refund(self, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        pi = self.objects.get(p.get("payment_intent", ""))
        if pi is None or pi.get("status") != "succeeded":
            return 400, {
                "error": {"type": "invalid_request_error", "message": "This PaymentIntent cannot be refunded."}
            }
        refunded = sum(
            o["amount"]
            for o in self.of_type("refund")
            if o["payment_intent"] == pi["id"] and o["status"] not in {"failed", "canceled"}
        )
        amount = int(p.get("amount") or pi["amount_received"] - refunded)
        if amount > pi["amount_received"] - refunded:
            return 400, {
                "error": {
                    "type": "invalid_request_error",
                    "code": "amount_too_large",
                    "message": "Refund amount is greater than the unrefunded amount.",
                }
            }
        return 200, self._new(
            "re",
            "refund",
            amount=amount,
            currency=pi["currency"],
            payment_intent=pi["id"],
            charge=pi["latest_charge"],
            status=self.refund_statuses.get(pi["id"], self.refund_status),
            metadata=p.get("metadata", {}),
        )

    def _checkout_session(self, p: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        mode = p.get("mode")
        amount = None
        currency = p.get("currency")
        if mode == "payment":
            item = p["line_items"]["0"]
            amount = int(item["price_data"]["unit_amount"]) * int(item.get("quantity") or 1)
            currency = item["price_data"]["currency"]
        session = self._new(
            "cs_test",
            "checkout.session",
            mode=mode,
            status="open",
            payment_status="unpaid",
            customer=p.get("customer"),
            customer_email=p.get("customer_email"),
            amount_total=amount,
            currency=currency,
            metadata=p.get("metadata", {}),
            success_url=p.get("success_url"),
            cancel_url=p.get("cancel_url"),
            setup_intent=None,
            payment_intent=None,
        )
        session["url"] = f"{self.url}/checkout/{session['id']}"
        return 200, session

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.send_header("Request-Id", f"req_{secrets.token_hex(6)}")
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and left


def _missing(object_id: str) -> tuple[int, dict[str, Any]]:
    return 404, {
        "error": {
            "type": "invalid_request_error",
            "code": "resource_missing",
            "message": f"No such object: '{object_id}'",
        }
    }


def unflatten(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding back to nested dicts: `metadata[invoice_id]=7` → {"metadata": {"invoice_id": "7"}}.
    List items keep their index as a string key (`line_items[0][quantity]` → {"line_items": {"0": ...}})."""
    result: dict[str, Any] = {}
    for name, value in pairs:
        keys = re.findall(r"[^\[\]]+", name)
        node = result
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return result
