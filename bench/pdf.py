"""Benchmark of the invoice PDF (issue 15, goal 1): ours against bare WeasyPrint, same process.

    .venv/bin/python bench/pdf.py                    # 50 renders of each, median / p95 / ratio
    .venv/bin/python bench/pdf.py --renders 200
    .venv/bin/python bench/pdf.py --memory           # RSS over 1,000 renders of ours
    .venv/bin/python bench/pdf.py --profile out.prof # cProfile our renders into out.prof

Creates a scratch database (retainers_bench_pdf), migrates it and writes one realistic open
invoice (billing profile with a logo, address, tax, bank details; three lines; a memo). A
fresh process then renders, alternately so that the machine's load falls on both alike:

- ours: `billing.pdf.render_invoice_pdf(invoice, pay_url=...)`, as the delivery task does,
  including its queries;
- bare: `weasyprint.HTML(string=MINIMAL).write_pdf()` on a minimal one-page invoice with the
  same words (no web font, a dozen CSS rules), the anchor of the goal.

It prints the first render of each (imports, font loading), the median and p95 of the rest and
the ratio ours / bare. `--memory` renders ours 1,000 times and prints the process's resident
memory at the start, after 100 and after 1,000 renders: a worker's memory must stay flat.
The database is dropped at the end unless --keep. See the README, section Benchmarks.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder is first on sys.path, and bench/billing.py would
# shadow the `billing` app: the project's root takes its place.
ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == ROOT / "bench":
    sys.path[0] = str(ROOT)

import argparse  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from bench.common import (  # noqa: E402
    BenchError,
    default_redis_url,
    django_env,
    find_server,
    load_average,
    run,
    run_main,
    run_stage,
    say,
    setup_django,
    table,
    write_result,
)

SCRIPT = Path(__file__).resolve()

# The anchor: what WeasyPrint costs for a one-page invoice with nothing of ours around it.
MINIMAL = """<!doctype html>
<html><head><meta charset="utf-8"><title>Invoice 2026-0042</title>
<style>
  @page { size: A4; margin: 18mm 16mm 20mm; }
  body { font-family: sans-serif; font-size: 9.5pt; }
  table { width: 100%; border-collapse: collapse; }
  th, td { text-align: left; padding: 2mm 0; border-bottom: 1px solid #ddd; }
  .num { text-align: right; }
</style></head>
<body>
<h1>Invoice</h1>
<p>Number 2026-0042<br>Issued 1 January 2026<br>Due 15 January 2026</p>
<p><strong>Northwind Advisory Ltd</strong><br>1 High Street<br>London EC1A 1AA<br>Tax ID: GB123456789</p>
<p><strong>Acme Corporation</strong><br>200 Market Street<br>Manchester M1 1AA<br>ap@acme.example</p>
<table>
<tr><th>Description</th><th class="num">Quantity</th><th class="num">Unit price</th><th class="num">Amount</th></tr>
<tr><td>Advisory retainer: 1 January 2026 to 31 January 2026</td><td class="num">1</td>
<td class="num">£1,500.00</td><td class="num">£1,500.00</td></tr>
<tr><td>Overage: 3.5 hours beyond the December allotment</td><td class="num">3.5</td>
<td class="num">£120.00</td><td class="num">£420.00</td></tr>
<tr><td>Extra deliverable: board pack review</td><td class="num">1</td>
<td class="num">£350.00</td><td class="num">£350.00</td></tr>
</table>
<p class="num">Subtotal £2,270.00<br>VAT (20%) £454.00<br><strong>Total GBP £2,724.00</strong></p>
<p>Pay online: https://retainers.example/pay/abc/<br>Sort code 00-00-00, account 12345678<br>
Please quote 2026-0042 with your payment.</p>
</body></html>
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/pdf.py",
        description=(
            "Render our invoice PDF and a minimal invoice with bare WeasyPrint in the same process; "
            "print median, p95 and the ratio, or (--memory) the process's memory over 1,000 renders."
        ),
    )
    parser.add_argument("--renders", type=int, default=50, metavar="N", help="timed renders of each (50)")
    parser.add_argument(
        "--memory", nargs="?", type=int, const=1000, metavar="COUNT",
        help="instead: render ours COUNT times (1,000) and print RSS at the start, after 100 and at the end",
    )  # fmt: skip
    parser.add_argument("--profile", metavar="FILE", help="cProfile our timed renders into FILE")
    parser.add_argument("--db", default="retainers_bench_pdf", help="scratch database (retainers_bench…)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database at the end")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="use the scratch database as an earlier --keep run left it (no migrate); it is kept",
    )
    parser.add_argument("--replace", action="store_true", help="drop the scratch database first if it exists")
    # Internal: the measuring process.
    parser.add_argument("--stage", choices=["render"], help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.renders < 1:
        parser.error("--renders must be at least 1")
    if args.memory is not None and args.memory < 100:
        parser.error("--memory needs at least 100 renders")
    return args


# --- The orchestrating process ---------------------------------------------------------------


def main() -> None:
    args = parse_args()
    if args.stage:
        stage_render(args)
        return
    server = find_server()
    scratch = Path(tempfile.mkdtemp(prefix="retainers_bench_"))
    # A Stripe key so that the invoice offers to pay by card, as a connected workspace's does;
    # nothing here calls Stripe.
    env = django_env(
        database_url=server.url_for(args.db),
        redis_url=default_redis_url(),
        scratch=scratch,
        STRIPE_SECRET_KEY="sk_test_bench_never_sent",
    )
    created = False
    try:
        say(f"Scratch database {args.db} on {server.url_for(args.db).split('@')[-1]}")
        if not (args.reuse and server.exists(args.db)):
            server.create(args.db, replace=args.replace)
            created = True
            run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], env=env, label="migrate")
        forwarded = ["--renders", str(args.renders)]
        forwarded += ["--memory", str(args.memory)] if args.memory else []
        forwarded += ["--profile", str(Path(args.profile).resolve())] if args.profile else []
        say("Rendering…")
        result = run_stage(SCRIPT, "render", forwarded, env=env, label="the renders")
        say()
        say(report(result))
    finally:
        if created and not args.keep:
            server.drop(args.db)
        elif server.exists(args.db):
            say(f"Kept {args.db}: --reuse uses it again; drop it with  dropdb {args.db}")
        shutil.rmtree(scratch, ignore_errors=True)


def report(result: dict) -> str:
    out = []
    if "memory" in result:
        mem = result["memory"]
        rows = [(f"after {n:,} renders" if n else "at the start (after one render)", f"{kib / 1024:.0f} MiB")
                for n, kib in mem]  # fmt: skip
        rows.append(("growth from 100 to the end", f"{(mem[-1][1] - mem[1][1]) / 1024:+.1f} MiB"))
        rows.append(("renders per second", f"{result['rate']:.1f}"))
        out.append(table(f"Resident memory of one process rendering our invoice (load {result['load']})", rows))
        return "\n\n".join(out)
    ours, bare = result["ours"], result["bare"]
    ratio = statistics.median(ours) / statistics.median(bare)
    out.append(
        table(
            f"Invoice PDF, {len(ours)} renders each, alternating (load before {result['load']})",
            [
                ("", "first", "median", "p95", "KiB"),
                ("ours: billing.pdf.render_invoice_pdf", *_figures(result["first_ours"], ours), result["kib_ours"]),
                ("bare WeasyPrint, minimal invoice", *_figures(result["first_bare"], bare), result["kib_bare"]),
                ("ratio ours / bare (median; goal ≤ 1.2)", "", f"{ratio:.2f}", "", ""),
                ("queries per render of ours (in its time)", "", str(result["queries"]), "", ""),
            ],
        )
    )
    return "\n\n".join(out)


def _figures(first: float, times: list[float]) -> tuple[str, str, str]:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"{first * 1000:.0f} ms", f"{statistics.median(ordered) * 1000:.0f} ms", f"{p95 * 1000:.0f} ms"


# --- Stage: the measuring process ---------------------------------------------------------


def rss_kib() -> int:
    """Resident memory now (not the peak): a leak shows as growth between two readings."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchError("no VmRSS in /proc/self/status (Linux only)")


def make_invoice():
    """One open invoice as a retainer's month looks: logo, addresses, tax, three lines, a memo."""
    import io
    from datetime import date
    from decimal import Decimal

    from django.core.files.base import ContentFile
    from PIL import Image, ImageDraw

    from billing import connect, services
    from billing.models import Invoice
    from clients.models import Client
    from retainers.models import Workspace

    workspace = Workspace.objects.filter(slug="bench-pdf").first()
    if workspace is None:
        workspace = Workspace.objects.create(
            name="Northwind Advisory", slug="bench-pdf", currency="GBP", locale="en_GB"
        )
    profile = services.profile_for(workspace)
    if not profile.logo.name or not profile.logo.storage.exists(profile.logo.name):  # media is per run
        logo = Image.new("RGB", (600, 200), "white")  # what an upload is stored as: at most 600 × 200
        draw = ImageDraw.Draw(logo)
        draw.rectangle((20, 40, 140, 160), fill="#1d4ed8")
        draw.text((170, 80), "NORTHWIND ADVISORY", fill="#111827")
        buffer = io.BytesIO()
        logo.save(buffer, "PNG")
        profile.logo.save("northwind.png", ContentFile(buffer.getvalue()), save=False)
        profile.save()
    invoice = Invoice.objects.filter(workspace=workspace, number="2026-0042").first()
    if invoice is not None:
        return invoice
    profile.legal_name, profile.tax_id = "Northwind Advisory Ltd", "GB123456789"
    profile.address = "1 High Street\nLondon EC1A 1AA\nUnited Kingdom"
    profile.tax_label, profile.tax_rate_bp = "VAT", 2000
    profile.payment_instructions = "Bank transfer: Northwind Advisory Ltd\nSort code 00-00-00, account 12345678"
    profile.save()
    connect.use_test_account(workspace=workspace, account_id=f"acct_bench{workspace.pk}")  # the card pay link
    client = Client.objects.create(
        workspace=workspace,
        name="Acme Corporation",
        address="200 Market Street\nManchester M1 1AA",
        billing_email="ap@acme.example",
    )
    invoice = services.create_invoice(
        client=client,
        lines=[
            ("Advisory retainer: 1 January 2026 to 31 January 2026", Decimal("1"), 150000),
            ("Overage: 3.5 hours beyond the December allotment", Decimal("3.5"), 12000),
            ("Extra deliverable: board pack review", Decimal("1"), 35000),
        ],
        memo="Thank you for your business.",
    )
    # Issued by hand: issue_invoice would queue the delivery task, and this run has no worker.
    invoice.number, invoice.status = "2026-0042", Invoice.Status.OPEN
    invoice.issued_on, invoice.due_on = date(2026, 1, 1), date(2026, 1, 15)
    invoice.save(update_fields=["number", "status", "issued_on", "due_on"])
    return invoice


def stage_render(args: argparse.Namespace) -> None:
    setup_django()
    from billing.models import Invoice
    from billing.paylinks import pay_url

    invoice_id = make_invoice().pk
    load = load_average()

    def ours() -> bytes:
        from billing.pdf import render_invoice_pdf

        # Fetched as the delivery task fetches it, so the renders' queries are counted.
        invoice = Invoice.objects.select_related("workspace", "client").get(pk=invoice_id)
        return render_invoice_pdf(invoice, pay_url=pay_url(invoice))

    def bare() -> bytes:
        from weasyprint import HTML

        return HTML(string=MINIMAL).write_pdf()

    if args.memory:
        started = time.perf_counter()
        ours()
        readings = [(0, rss_kib())]
        for n in range(1, args.memory + 1):
            ours()
            if n in (100, args.memory):
                readings.append((n, rss_kib()))
        rate = (args.memory + 1) / (time.perf_counter() - started)
        write_result(args.result, {"memory": readings, "rate": rate, "load": load})
        return

    first = {}
    sizes = {}
    for name, render in (("bare", bare), ("ours", ours)):
        started = time.perf_counter()
        sizes[name] = len(render())
        first[name] = time.perf_counter() - started
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        ours()
    times: dict[str, list[float]] = {"ours": [], "bare": []}
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
    for _ in range(args.renders):
        for name, render in (("ours", ours), ("bare", bare)):
            if profiler and name == "ours":
                profiler.enable()
            started = time.perf_counter()
            render()
            times[name].append(time.perf_counter() - started)
            if profiler and name == "ours":
                profiler.disable()
    if profiler:
        profiler.dump_stats(args.profile)
    write_result(
        args.result,
        {
            "ours": times["ours"],
            "bare": times["bare"],
            "first_ours": first["ours"],
            "first_bare": first["bare"],
            "kib_ours": f"{sizes['ours'] / 1024:.0f}",
            "kib_bare": f"{sizes['bare'] / 1024:.0f}",
            "queries": len(queries),
            "load": load,
        },
    )


if __name__ == "__main__":
    os.chdir(ROOT)
    run_main(main)
