"""Helpers of the browser tests: what a page did wrong, axe-core, screenshots, the outbox.

Kept out of conftest.py so the tests import them by name.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from playwright.sync_api import BrowserContext, ConsoleMessage, Page

from retainers.models import Email

E2E_DIR = Path(__file__).resolve().parent
ROOT = E2E_DIR.parent.parent
ARTIFACTS = ROOT / "artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
AXE_REPORTS = ARTIFACTS / "axe"
AXE_SOURCE = E2E_DIR / "node_modules" / "axe-core" / "axe.min.js"

T = TypeVar("T")

# Added to every page before its own scripts. A page's CSP does not apply to Playwright's init
# scripts and exposed bindings, so this listener never causes a violation of its own.
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.__e2eCspViolation({
    page: location.href,
    directive: event.effectiveDirective || event.violatedDirective,
    blocked: event.blockedURI,
    source: event.sourceFile,
    line: event.lineNumber,
    sample: event.sample,
  });
}, true);
"""


@dataclass
class BrowserWatch:
    """Everything that went wrong in the pages of one browser context: console errors,
    uncaught exceptions and Content-Security-Policy violations, each with the page it was on."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    csp_violations: list[dict] = field(default_factory=list)

    def attach(self, context: BrowserContext) -> None:
        context.expose_function("__e2eCspViolation", self._csp_violation)
        context.add_init_script(CSP_LISTENER)
        context.on("page", self._watch_page)

    def _csp_violation(self, violation: dict) -> None:
        self.csp_violations.append(violation)

    def _watch_page(self, page: Page) -> None:
        page.on("console", lambda message: self._console(page, message))
        page.on("pageerror", lambda error: self.page_errors.append(f"{page.url}: {error}"))

    def _console(self, page: Page, message: ConsoleMessage) -> None:
        if message.type == "error":
            where = message.location.get("url") or page.url
            self.console_errors.append(f"{page.url}: {message.text} (at {where})")

    def problems(self) -> list[str]:
        found = [f"console error on {e}" for e in self.console_errors]
        found += [f"uncaught exception on {e}" for e in self.page_errors]
        found += [
            f"CSP violation on {v['page']}: {v['directive']} blocked {v['blocked'] or '(inline)'}"
            f" at {v['source'] or '?'}:{v['line']} {v['sample']!r}"
            for v in self.csp_violations
        ]
        return found

    def assert_clean(self) -> None:
        problems = self.problems()
        assert not problems, "the pages reported errors:\n  " + "\n  ".join(problems)


def screenshot(page: Page, name: str) -> Path:
    """A full-page PNG of what the page shows now, under artifacts/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    # From the top: scrolled (by focus, say), the sticky header would be drawn mid-page.
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=path, full_page=True, animations="disabled")
    return path


# --- axe-core ------------------------------------------------------------------------------

AXE_RUN = """async () => {
  const results = await axe.run(document, {resultTypes: ["violations"]});
  return results.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map((n) => ({target: n.target.join(" "), html: n.html, summary: n.failureSummary})),
  }));
}"""

BLOCKING_IMPACTS = ("serious", "critical")


def axe_violations(page: Page, name: str) -> list[dict]:
    """Run axe-core on the page as it is now; writes artifacts/axe/<name>.json and returns
    every violation (all impacts)."""
    if not AXE_SOURCE.exists():
        raise AssertionError(
            f"axe-core is not installed ({AXE_SOURCE} is missing): run `npm ci` in tests/e2e "
            "(scripts/bootstrap.sh test does it when npm is on PATH)"
        )
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        # Evaluated through the DevTools protocol, so the page's CSP does not block it the way it
        # blocks an inline <script> (page.add_script_tag) without the nonce.
        page.evaluate(AXE_SOURCE.read_text())
    violations = page.evaluate(AXE_RUN)
    AXE_REPORTS.mkdir(parents=True, exist_ok=True)
    (AXE_REPORTS / f"{name}.json").write_text(json.dumps({"url": page.url, "violations": violations}, indent=2))
    return violations


def describe_violations(violations: list[dict]) -> str:
    lines = []
    for v in violations:
        lines.append(f"{v['impact']}: {v['id']} ({v['help']})")
        for node in v["nodes"][:8]:
            lines.append(f"    {node['target']}: {node['html'][:160]}")
        if len(v["nodes"]) > 8:
            lines.append(f"    … and {len(v['nodes']) - 8} more")
    return "\n".join(lines)


def assert_accessible(page: Page, name: str) -> None:
    """No serious or critical axe-core violation on the page as it is now."""
    violations = axe_violations(page, name)
    blocking = [v for v in violations if v["impact"] in BLOCKING_IMPACTS]
    assert not blocking, f"axe-core on {name} ({page.url}):\n{describe_violations(blocking)}"


# --- Waiting -------------------------------------------------------------------------------


def wait_until[T](
    what: str, probe: Callable[[], T | None], *, timeout: float = 30, check: Callable[[], None] | None = None
) -> T:
    """Poll `probe` until it returns something truthy; `check` may raise early (a dead worker)."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if check is not None:
            check()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


LINK = re.compile(r"https?://[^\s<>\"']+")


def links_in(text: str) -> list[str]:
    return LINK.findall(text)


def same_origin(url: str, base: str) -> str:
    """An emailed link moved onto the live server (emails carry SITE_URL, the server a free port)."""
    from urllib.parse import urlsplit, urlunsplit

    parts, server = urlsplit(url), urlsplit(base)
    return urlunsplit(parts._replace(scheme=server.scheme, netloc=server.netloc))


def latest_email(*, to: str, subject: str = "", sent: bool = True) -> Email | None:
    emails = Email.objects.filter(to=to, subject__icontains=subject).order_by("-created_at", "-pk")
    if sent:
        emails = emails.filter(status=Email.Status.SENT)
    return emails.first()
