"""Hostile values, and the check that none of them reached a page, an email or a PDF as markup.

Every hostile value starts with a marker (`HX012.`) that names the field it was written to, so a
failure says where the value came from, and the walk can prove each value was shown somewhere
(as text). The markup in it carries `data-h`, an event handler or a `javascript:` URL: a page that
has an element with one of those (or a `<meta http-equiv>`, a `<base>`) let a value through
unescaped. Values may only appear escaped, or as sanitised Markdown (which drops all of it).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

# From the longest to the shortest; each is complete markup, so a short column gets a whole tag.
PAYLOADS = [
    '<script data-h>alert(1)</script><meta data-h http-equiv="refresh" content="0;url=https://evil.example/">'
    '"><img data-h src=x onerror=alert(1)>{{ 7|add:7 }}{% now "Y" %}[x](javascript:alert(1))',
    '<meta data-h http-equiv="refresh" content="0;url=https://evil.example/">"><img data-h src=x onerror=alert(1)>',
    '"><img data-h src=x onerror=alert(1)>{{ 7|add:7 }}',
    '"><img data-h src=x onerror=alert(1)>',
    "<b data-h>x</b>",
    "<b data-h>",
]
# For text without a length limit: more ways in, Markdown ones included.
LONG_PAYLOAD = (
    PAYLOADS[0] + '\n\n<iframe data-h srcdoc=x></iframe><a data-h href="javascript:alert(1)">a</a>'
    "\n\n[click](javascript:alert(1)) [also](JaVaScRiPt:alert(1)) ![img](javascript:alert(1))"
    "\n\n<base data-h href=https://evil.example/><svg data-h onload=alert(1)></svg>{% debug %}"
)
MARKER = re.compile(r"HX(\d{3})\.")


def marker(index: int) -> str:
    return f"HX{index:03d}."


def hostile_value(index: int, row: object, max_length: int | None) -> str:
    """The longest payload that fits, after the field's marker and the row's id (so names stay
    unique); in a short column (a tax label) without the row's id."""
    head = f"{marker(index)}{row} "
    if max_length is None:
        return head + LONG_PAYLOAD
    for start in (head, f"{marker(index)} "):
        for payload in PAYLOADS:
            if len(start) + len(payload) <= max_length:
                return start + payload
    raise ValueError(f"no payload fits in {max_length} characters after {head!r}")


URL_ATTRIBUTES = {"href", "src", "action", "formaction", "srcdoc", "data", "xlink:href", "poster"}


class MarkupAudit(HTMLParser):
    """What a document (page, email, the HTML of a PDF) shows of the hostile values: as markup (a
    problem) and as text (which fields reached it)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.seen: set[int] = set()  # markers found in text or attribute values: shown, escaped
        self.last_marker = ""  # the value a problem comes from is the one whose marker came just before

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._check(tag, attrs)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._check(tag, attrs)

    def _check(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        shown = f"<{tag} {' '.join(name for name, _ in attrs)}> after {self.last_marker or 'no marker'}"
        if "data-h" in names:
            self.problems.append(f"hostile markup {shown}")
        if tag == "meta" and "http-equiv" in names:
            self.problems.append(f"a <meta http-equiv> {shown}")
        if tag == "base":
            self.problems.append(f"a <base> {shown}")
        for name, value in attrs:
            if re.fullmatch(r"on[a-z]+", name):
                self.problems.append(f"event handler {name}= on <{tag}>")
            if (
                name in URL_ATTRIBUTES
                and value
                and re.sub(r"[\s\x00-\x1f]", "", value)
                .lower()
                .startswith(("javascript:", "vbscript:", "data:text/html"))
            ):
                self.problems.append(f"script URL {name}={value!r} on <{tag}>")
            if value:
                self._saw(value)

    def handle_data(self, data: str) -> None:
        self._saw(data)

    def _saw(self, text: str) -> None:
        found = MARKER.findall(text)
        self.seen.update(int(number) for number in found)
        if found:
            self.last_marker = marker(int(found[-1]))


def audit_markup(html: str) -> MarkupAudit:
    audit = MarkupAudit()
    audit.feed(html)
    audit.close()
    return audit
