"""What a reply email says: its new text, without the quoted history or the signature.

Mail clients quote the email they answer in a few well-known ways, and these functions cut them:

- Gmail and Apple Mail: an attribution line, "On 3 Mar 2026, at 10:00, Alice <alice@…> wrote:"
  (Gmail wraps it over two lines when it is long), then the old text with "> " before each line;
- Outlook: a "From: … / Sent: … / To: … / Subject: …" block, often after a line of underscores,
  then the old text unquoted; older clients: "-----Original Message-----";
- a signature after the "-- " line, and "Sent from my iPhone" and its kin at the end.

Quoted lines are removed wherever they are, so an answer written between quoted lines is kept.
A forwarded email ("---------- Forwarded message ---------", "Begin forwarded message:") is kept
whole: it is what the writer means to send.
HTML-only emails are turned into text first (`html_to_text`), dropping the quoted parts the HTML
marks (`<blockquote>`, Gmail's and Outlook's quote containers) and never keeping any markup.

Pure functions over strings: no Django, no database.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

# "On <date>, <someone> wrote:" and its translations in the languages clients most often use.
ATTRIBUTION_START = re.compile(r"^(on|le|am|el|il|op|em)\s", re.IGNORECASE)
ATTRIBUTION_END = re.compile(
    r"(wrote|a écrit|escribió|ha scritto|schreef|escreveu|skrev)\s*:\s*$|\bschrieb\b.*:\s*$", re.IGNORECASE
)
ATTRIBUTION_MAX_LINES = 3  # Gmail breaks a long attribution once, inside the address
ORIGINAL_MESSAGE = re.compile(r"^-{2,}\s*original message\s*-{2,}$", re.IGNORECASE)
HEADER_FROM = re.compile(r"^\*?(from|von|de|da|van)\s?:\*?\s+\S", re.IGNORECASE)
HEADER_SENT = re.compile(r"^\*?(sent|date|gesendet|datum|envoyé|enviado|inviato|verzonden)\s?:\*?\s+\S", re.IGNORECASE)
HEADER_BLOCK_LINES = 4  # Outlook puts Sent: right after From:, at most a line or two later
FORWARD = re.compile(r"^(-+\s*forwarded message\s*-+|begin forwarded message:)$", re.IGNORECASE)
SEPARATOR = re.compile(r"^\s*[_\-=]{10,}\s*$")
MOBILE_SIGNATURE = re.compile(
    r"^(sent from my \w+.*|sent from (outlook|mail|yahoo mail|gmail).*|get outlook for \w+.*|"
    r"envoyé de mon \w+.*|von meinem \w+ gesendet.*)$",
    re.IGNORECASE,
)
# Control characters a person never types; PostgreSQL refuses NUL in text outright.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f]")


def clean(text: str) -> str:
    """Newlines as \\n, no control characters but tab and newline, no trailing spaces, at most one blank line."""
    text = CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n")


def unflow(text: str, *, delsp: bool = False) -> str:
    """Join the soft line breaks of a format=flowed text part (RFC 3676) back into paragraphs.

    A line ending in a space continues on the next line at the same quote depth; the
    signature separator "-- " is the exception. With DelSp=yes that space is not part of the text.
    """
    lines: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for raw in text.split("\n"):
        depth = len(raw) - len(raw.lstrip(">"))
        content = raw[depth:]
        if content.startswith(" "):  # space-stuffing
            content = content[1:]
        if pending is not None and pending[0] == depth:
            content = pending[1] + content
        elif pending is not None:
            lines.append(pending)
        pending = None
        if content.endswith(" ") and content != "-- ":
            pending = (depth, content[:-1] if delsp else content)
        else:
            lines.append((depth, content))
    if pending is not None:
        lines.append(pending)
    return "\n".join((">" * depth + " " if depth else "") + content for depth, content in lines)


def _attribution_end(lines: list[str], start: int) -> int | None:
    """The index of the line that ends an "On … wrote:" attribution starting at `start`, if one does."""
    if not ATTRIBUTION_START.match(lines[start].strip()):
        return None
    for end in range(start, min(start + ATTRIBUTION_MAX_LINES, len(lines))):
        if end > start and not lines[end].strip():
            return None
        if ATTRIBUTION_END.search(lines[end]):
            # A real attribution names a date or an address; "On reflection, this is what I wrote:" does not.
            said = " ".join(lines[start : end + 1])
            return end if re.search(r"\d|@", said) else None
    return None


def _is_header_block(lines: list[str], start: int) -> bool:
    """Outlook's "From: … Sent: …" block of the email being answered starts at `start`."""
    if not HEADER_FROM.match(lines[start].strip()):
        return False
    following = lines[start + 1 : start + 1 + HEADER_BLOCK_LINES]
    return any(HEADER_SENT.match(line.strip()) for line in following)


def _is_signature_separator(line: str) -> bool:
    return line in ("-- ", "--")


def new_text(text: str) -> str:
    """The part of a reply's plain text its writer typed: quoted history and signature removed."""
    lines = clean(text).split("\n")
    kept: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if FORWARD.match(line.strip()):
            kept += lines[index:]  # a forwarded email is what the writer is sending: all of it stays
            break
        if _is_signature_separator(line) or ORIGINAL_MESSAGE.match(line.strip()):
            break
        if _is_header_block(lines, index):
            while kept and (not kept[-1].strip() or SEPARATOR.match(kept[-1])):
                kept.pop()  # the underscores Outlook draws above the block
            break
        end = _attribution_end(lines, index)
        if end is not None:
            after = next((later for later in lines[end + 1 :] if later.strip()), None)
            if after is not None and not after.startswith(">"):
                break  # the old text follows unquoted (an HTML email turned into text): it is all history
            index = end + 1  # the quoted lines that follow are dropped below; text after them is an answer
            continue
        if not line.startswith(">"):
            kept.append(line)
        index += 1
    while kept and (not kept[-1].strip() or MOBILE_SIGNATURE.match(kept[-1].strip())):
        kept.pop()
    return clean("\n".join(kept))


# --- HTML ---------------------------------------------------------------------------------------

BLOCKS = {
    "address", "article", "aside", "blockquote", "div", "dl", "dt", "dd", "fieldset", "figure", "footer", "form",
    "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table",
    "tr", "ul",
}  # fmt: skip
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"}
HIDDEN = {"head", "script", "style", "title", "template", "noscript", "object", "svg", "math"}
# Containers in which mail clients put the quoted email or their signature.
QUOTE_CLASSES = {"gmail_quote", "gmail_extra", "gmail_signature", "yahoo_quoted", "moz-cite-prefix", "moz-signature"}
QUOTE_IDS = {"divrplyfwdmsg", "appendonsend", "mail-editor-reference-message-container"}


class _TextExtractor(HTMLParser):
    """Text of an HTML email: blocks become lines, links keep their address, quoted parts are skipped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping: list[str] = []  # the open elements inside a skipped one, outermost first
        self.preformatted = 0
        self.links: list[str | None] = []
        self.history = False  # Outlook's "appendonsend" marker: all that follows is the old email

    def _skip(self, tag: str, attrs: dict[str, str | None]) -> bool:
        classes = set((attrs.get("class") or "").lower().split())
        return (
            tag in HIDDEN
            or tag == "blockquote"
            or bool(classes & QUOTE_CLASSES)
            or (attrs.get("id") or "").lower() in QUOTE_IDS
        )

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.history:
            return
        values = dict(attrs)
        if self.skipping:
            if tag not in VOID:
                self.skipping.append(tag)
            return
        if (values.get("id") or "").lower() == "appendonsend":
            self.history = True
            return
        if self._skip(tag, values):
            if tag not in VOID:
                self.skipping.append(tag)
            return
        if tag == "br":
            self.parts.append("\n")
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag in ("td", "th"):
            self.parts.append(" ")
        elif tag in BLOCKS:
            self.parts.append("\n\n" if tag in ("p", "table", "ul", "ol", "h1", "h2", "h3", "pre") else "\n")
        if tag == "pre":
            self.preformatted += 1
        if tag == "a":
            href = (values.get("href") or "").strip()
            self.links.append(href if re.match(r"^(https?|mailto):", href, re.IGNORECASE) else None)
            self.parts.append("\x00a")  # where the link text starts, to compare it with the address

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if self.history:
            return
        if self.skipping:
            if tag in self.skipping:
                while self.skipping.pop() != tag:
                    pass
            return
        if tag == "pre" and self.preformatted:
            self.preformatted -= 1
        if tag == "a" and self.links:
            self._close_link(self.links.pop())
        elif tag in BLOCKS and tag != "li":  # the next item starts its own line
            self.parts.append("\n")

    def _close_link(self, href: str | None) -> None:
        start = max(i for i, part in enumerate(self.parts) if part == "\x00a")
        label = "".join(self.parts[start + 1 :]).strip()
        del self.parts[start]
        address = (href or "").removeprefix("mailto:")
        if href and address and address not in label:
            self.parts.append(f" <{address}>")

    def handle_data(self, data: str) -> None:
        if self.skipping or self.history:
            return
        self.parts.append(data if self.preformatted else re.sub(r"\s+", " ", data))

    def text(self) -> str:
        text = "".join(part for part in self.parts if part != "\x00a")
        return "\n".join(line.strip() for line in text.split("\n"))


def html_to_text(html: str) -> str:
    """Plain text of an HTML email: no tags, no scripts or styles, no quoted parts; links as "text <url>"."""
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    return clean(extractor.text())
