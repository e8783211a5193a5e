"""A reply's new text: quoted history and signatures cut in the ways mail clients write them,
HTML turned into text, flowed lines joined (communication.mailtext)."""

from __future__ import annotations

import pytest

from communication.mailtext import clean, html_to_text, new_text, unflow


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "Yes, Tuesday.\n\nOn Tue, 3 Mar 2026 at 10:00, Alice Archer <alice@example.com> wrote:\n\n> Tuesday?\n>\n",
            "Yes, Tuesday.",
            id="gmail",
        ),
        pytest.param(
            "Yes.\n\nOn Tue, 3 Mar 2026 at 10:00, Alice Archer <\nalice@example.com> wrote:\n\n> Tuesday?\n",
            "Yes.",
            id="gmail-wrapped-attribution",
        ),
        pytest.param(
            "Yes.\n\n> On 3 Mar 2026, at 10:00, Alice <alice@example.com> wrote:\n>\n> Tuesday?\n",
            "Yes.",
            id="apple-mail",
        ),
        pytest.param(
            "Yes.\n\nSent from my iPhone\n\n> On 3 Mar 2026, at 10:00, Alice wrote:\n> Tuesday?",
            "Yes.",
            id="iphone",
        ),
        pytest.param(
            "Yes.\n\n________________________________\nFrom: Alice <alice@example.com>\nSent: 03 March 2026 10:00\n"
            "To: Carol\nSubject: Tuesday\n\nTuesday?\n",
            "Yes.",
            id="outlook",
        ),
        pytest.param(
            "Yes.\n\n*From:* Alice <alice@example.com>\n*Sent:* Tuesday, March 3, 2026 10:00 AM\n*To:* Carol\n\nTuesday?",
            "Yes.",
            id="outlook-bold-markers",
        ),
        pytest.param("Yes.\n\n-----Original Message-----\nFrom: Alice\nTuesday?", "Yes.", id="original-message"),
        pytest.param(
            "Ja.\n\nAm 03.03.2026 um 10:00 schrieb Alice Archer <alice@example.com>:\n\n> Dienstag?", "Ja.", id="german"
        ),
        pytest.param(
            "Oui.\n\nLe mar. 3 mars 2026 à 10:00, Alice <alice@example.com> a écrit :\n\n> Mardi ?", "Oui.", id="french"
        ),
        pytest.param("Yes.\n-- \nCarol Chen\nHead of Operations\n+44 20 7946 0000", "Yes.", id="signature-separator"),
        pytest.param(
            "On 3 Mar 2026, Alice wrote:\n> Tuesday?\nYes.\n> And the report?\nAttached.",
            "Yes.\nAttached.",
            id="answers-between-quotes",
        ),
        pytest.param(
            "On 3 Mar 2026 at 10:00, Alice <alice@example.com> wrote:\nTuesday?\nBest, Alice",
            "",
            id="unquoted-history-after-an-attribution",
        ),
        pytest.param(
            "On reflection, here is what I wrote:\nthe plan stands.",
            "On reflection, here is what I wrote:\nthe plan stands.",
            id="a-sentence-that-looks-like-an-attribution",
        ),
        pytest.param(
            "From: the board's point of view, yes.\nWe agree.",
            "From: the board's point of view, yes.\nWe agree.",
            id="a-sentence-that-starts-with-from",
        ),
        pytest.param(
            "See below.\n\n---------- Forwarded message ---------\nFrom: Dana <dana@acme.example>\n"
            "Date: Mon, 2 Mar 2026\n\n> The notes.\n-- \nDana",
            "See below.\n\n---------- Forwarded message ---------\nFrom: Dana <dana@acme.example>\n"
            "Date: Mon, 2 Mar 2026\n\n> The notes.\n--\nDana",  # trailing spaces go, as on every line
            id="a-forwarded-email-is-kept-whole",
        ),
        pytest.param(
            "FYI\n\nBegin forwarded message:\n\nFrom: Dana\nDate: 2 March 2026\nThe notes.",
            "FYI\n\nBegin forwarded message:\n\nFrom: Dana\nDate: 2 March 2026\nThe notes.",
            id="apple-mail-forward",
        ),
        pytest.param(
            "Line one\r\nLine two\r\n\r\n\r\n\r\nLine three  \r\n", "Line one\nLine two\n\nLine three", id="crlf"
        ),
    ],
)
def test_new_text_keeps_what_the_writer_typed(text, expected):
    assert new_text(text) == expected


def test_clean_removes_control_characters_but_keeps_tabs_and_newlines():
    assert clean("a\x00b\x07c\td\r\ne\x1b[31m") == "abc\td\ne[31m"


def test_html_to_text_keeps_words_and_links_and_drops_markup_scripts_and_quotes():
    html = (
        "<html><head><title>t</title><style>p{color:red}</style></head><body>"
        "<p>Hello&nbsp;Alice,</p><p>See <a href='https://acme.example/x'>the plan</a> and "
        "<a href='https://acme.example/y'>https://acme.example/y</a> or <a href='javascript:alert(1)'>this</a>.</p>"
        "<ul><li>one</li><li>two</li></ul><script>alert(1)</script>"
        "<div class='gmail_signature'>Carol | Acme</div>"
        "<blockquote type='cite'>On 3 Mar, Alice wrote: old text</blockquote>"
        "<div class='gmail_quote'>older text</div><p>After &amp; more &lt;b&gt;</p></body></html>"
    )
    assert html_to_text(html) == (
        "Hello Alice,\n\nSee the plan <https://acme.example/x> and https://acme.example/y or this.\n\n"
        "- one\n- two\n\nAfter & more <b>"
    )


def test_html_to_text_stops_at_outlooks_reply_marker():
    html = "<div>New words.</div><div id='appendonsend'></div><hr><div>From: Alice<br>Sent: today</div><p>Old</p>"
    assert html_to_text(html) == "New words."


def test_html_to_text_survives_unclosed_and_stray_tags():
    assert html_to_text("<p>One<p>Two</b></i><blockquote>quoted<p>still quoted") == "One\n\nTwo"


def test_unflow_joins_soft_line_breaks_at_the_same_quote_depth():
    flowed = "A long line \nthat goes on.\n> quoted \n> more\nplain\n-- \nsig"
    assert unflow(flowed) == "A long line that goes on.\n> quoted more\nplain\n-- \nsig"
    assert unflow("one \ntwo", delsp=True) == "onetwo"
