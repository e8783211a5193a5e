"""A small, safe Markdown subset for notes.

Supported: paragraphs, line breaks, **bold**, *italic*, `code`, [links](https://…),
bullet lists (`-`, `*`, `+`), numbered lists (`1.`), and headings `#` to `###`.

Safety comes in two layers. First the whole text is HTML-escaped, so nothing a person
types can become markup; only this module adds tags. Then the produced HTML always goes
through nh3 with an allow-list (tags, `href` and `start` only, http/https/mailto URLs,
`rel="noopener noreferrer nofollow"` on links), so a bug in the parser cannot let a
script, an event handler or a `javascript:` URL through.

Headings start at <h4>: notes are shown inside page sections whose own headings go down
to <h3>, so `#` becomes <h4>, `##` <h5> and `###` <h6>, keeping the page outline sound.
"""

from __future__ import annotations

import html
import re

import nh3
from django.utils.safestring import SafeString, mark_safe

ALLOWED_TAGS = {"p", "br", "strong", "em", "code", "a", "ul", "ol", "li", "h4", "h5", "h6"}
ALLOWED_SCHEMES = {"http", "https", "mailto"}
LINK_REL = "noopener noreferrer nofollow"

# Configuration only (no tenant data), so one shared cleaner is fine.
_cleaner = nh3.Cleaner(
    tags=ALLOWED_TAGS,
    clean_content_tags={"script", "style"},
    attributes={"a": {"href"}, "ol": {"start"}},
    url_schemes=ALLOWED_SCHEMES,
    url_relative="deny",
    link_rel=LINK_REL,
    strip_comments=True,
)

# Control characters other than tab and newline: never meaningful in a note, and \x00 is
# our placeholder marker below.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_HEADING = re.compile(r"^(#{1,3})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_BULLET = re.compile(r"^[ \t]{0,3}[-*+][ \t]+(.*)$")
_NUMBERED = re.compile(r"^[ \t]{0,3}(\d{1,9})[.)][ \t]+(.*)$")
_CODE = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"\[([^\]\n]+)\]\(((?:[^()\s]|\([^()\s]*\))+)\)")  # one level of (parens) in a URL
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_ITALIC = re.compile(r"(?<![*\w])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![*\w])")
_PLACEHOLDER = re.compile(r"\x00(\d+)\x00")
_SAFE_URL = re.compile(r"^(?:https?://[^/\s]|mailto:[^\s])", re.IGNORECASE)


_BLOCK_END = re.compile(r"</(?:p|li|h[1-6]|blockquote|pre|td|th|tr)>|<br\s*/?>", re.IGNORECASE)


def sanitize_html(fragment: str) -> str:
    """Clean an HTML fragment to the allow-list above (used on everything this module produces)."""
    return _cleaner.clean(fragment)


def render_markdown(text: str) -> SafeString:
    """The note's Markdown as safe HTML: escaped first, then parsed, then sanitised with nh3."""
    return mark_safe(sanitize_html(_to_html(text or "")))


def plain_text(text: str) -> str:
    """The words of a note without its Markdown (no `**`, `#` or list marks), on one line: for
    excerpts, which templates escape like any other text."""
    blocks_apart = _BLOCK_END.sub(r"\g<0> ", _to_html(text or ""))  # "</li><li>" must not glue words
    words = html.unescape(nh3.clean(blocks_apart, tags=set()))
    return " ".join(words.split())


def is_safe_url(escaped_url: str) -> bool:
    """Whether a link target (as it appears in the escaped text) is http(s) or mailto.

    Browsers ignore whitespace and control characters inside a scheme ("java\\tscript:"),
    so they are removed before looking at it.
    """
    url = re.sub(r"[\s\x00-\x1f]+", "", html.unescape(escaped_url))
    return bool(_SAFE_URL.match(url))


def _to_html(text: str) -> str:
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    lines = html.escape(text, quote=True).split("\n")
    out: list[str] = []
    paragraph: list[str] = []
    list_tag: str | None = None
    items: list[list[str]] = []

    def close_paragraph() -> None:
        if paragraph:
            out.append("<p>" + "<br>\n".join(_inline(line) for line in paragraph) + "</p>")
            paragraph.clear()

    def close_list() -> None:
        nonlocal list_tag
        if list_tag:
            body = "".join("<li>" + "<br>\n".join(_inline(line) for line in item) + "</li>" for item in items)
            out.append(f"{list_open}{body}</{list_tag}>")
            items.clear()
            list_tag = None

    list_open = ""
    for raw in lines:
        line = raw.rstrip()
        if not line.strip():
            close_paragraph()
            close_list()
            continue
        if heading := _HEADING.match(line):
            close_paragraph()
            close_list()
            level = len(heading.group(1)) + 3
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
            continue
        bullet, numbered = _BULLET.match(line), _NUMBERED.match(line)
        if bullet or numbered:
            close_paragraph()
            tag = "ul" if bullet else "ol"
            if list_tag != tag:
                close_list()
                list_tag = tag
                start = int(numbered.group(1)) if numbered else 1
                list_open = f'<ol start="{start}">' if tag == "ol" and start != 1 else f"<{tag}>"
            match = bullet or numbered
            assert match is not None  # one of the two matched
            items.append([match.group(1 if bullet else 2).strip()])
            continue
        if list_tag and raw[:1] in {" ", "\t"}:
            items[-1].append(line.strip())  # an indented line continues the list item
            continue
        close_list()
        paragraph.append(line.strip())
    close_paragraph()
    close_list()
    return "\n".join(out)


def _inline(escaped: str) -> str:
    """Inline markup of one escaped line: code spans, links, bold and italic."""
    saved: list[str] = []

    def keep(fragment: str) -> str:
        saved.append(fragment)
        return f"\x00{len(saved) - 1}\x00"

    # Code first: nothing inside a code span is markup.
    text = _CODE.sub(lambda m: keep(f"<code>{m.group(1)}</code>"), escaped)

    def link(match: re.Match[str]) -> str:
        label, url = _emphasis(match.group(1)), match.group(2)
        if not is_safe_url(url):
            return keep(label)  # an unsafe target loses its link; the words stay
        return keep(f'<a href="{url}">{label}</a>')

    text = _LINK.sub(link, text)
    text = _emphasis(text)
    while _PLACEHOLDER.search(text):  # links may hold code spans: restore until none are left
        text = _PLACEHOLDER.sub(lambda m: saved[int(m.group(1))], text)
    return text


def _emphasis(text: str) -> str:
    text = _BOLD.sub(r"<strong>\1</strong>", text)
    return _ITALIC.sub(r"<em>\1</em>", text)
