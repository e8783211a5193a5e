"""The Markdown subset of notes: what it renders, and that nothing unsafe gets through."""

from __future__ import annotations

import pytest

from communication.markdown import render_markdown
from tests.communication.conftest import XSS, assert_neutralised


@pytest.mark.parametrize(
    ("text", "html"),
    [
        ("Hello", "<p>Hello</p>"),
        ("one\ntwo", "<p>one<br>\ntwo</p>"),
        ("one\n\ntwo", "<p>one</p>\n<p>two</p>"),
        ("**bold** and *italic*", "<p><strong>bold</strong> and <em>italic</em></p>"),
        ("`a < b`", "<p><code>a &lt; b</code></p>"),
        ("`**not bold**`", "<p><code>**not bold**</code></p>"),
        ("# Title", "<h4>Title</h4>"),
        ("## Sub", "<h5>Sub</h5>"),
        ("### Third", "<h6>Third</h6>"),
        ("#### Four", "<p>#### Four</p>"),
        ("#nospace", "<p>#nospace</p>"),
        ("- a\n- b", "<ul><li>a</li><li>b</li></ul>"),
        ("* a\n+ b", "<ul><li>a</li><li>b</li></ul>"),
        ("1. a\n2. b", "<ol><li>a</li><li>b</li></ol>"),
        ("3. c\n4. d", '<ol start="3"><li>c</li><li>d</li></ol>'),
        ("- a\n  more", "<ul><li>a<br>\nmore</li></ul>"),
        ("intro\n- a", "<p>intro</p>\n<ul><li>a</li></ul>"),
        ("2 * 3 * 4", "<p>2 * 3 * 4</p>"),
        ("snake_case *x*y", "<p>snake_case *x*y</p>"),
        ("Tom & Jerry", "<p>Tom &amp; Jerry</p>"),
        ("", ""),
    ],
)
def test_markdown_subset(text, html):
    assert render_markdown(text) == html


def test_links_are_kept_safe_with_rel():
    html = render_markdown("See [the plan](https://example.com/plan?a=1&b=2).")
    assert html == (
        '<p>See <a href="https://example.com/plan?a=1&amp;b=2" rel="noopener noreferrer nofollow">the plan</a>.</p>'
    )
    assert render_markdown("[mail](mailto:a@example.com)").count('href="mailto:a@example.com"') == 1
    assert "<strong>b</strong>" in render_markdown("[**b**](https://example.com)")
    assert 'href="https://en.wikipedia.org/wiki/Foo_(bar)"' in render_markdown(
        "[w](https://en.wikipedia.org/wiki/Foo_(bar))"
    )


@pytest.mark.parametrize(
    "text",
    [
        "[x](javascript:alert(1))",
        "[x](JavaScript:alert(1))",
        "[x](java&#x09;script:alert(1))",
        "[x](data:text/html;base64,PHNjcmlwdD4=)",
        "[x](vbscript:msgbox)",
        "[x](/relative/path)",
        "[x](//evil.example)",
    ],
)
def test_unsafe_link_targets_lose_their_link_but_keep_the_words(text):
    html = render_markdown(text)
    assert "<a" not in html
    assert "x" in html


@pytest.mark.parametrize("payload", XSS)
def test_html_in_notes_is_shown_as_text(payload):
    html = render_markdown(payload)
    assert_neutralised(html)
    assert "<script" not in html and "<img" not in html and "<a " not in html.replace('<a href="', "")


def test_quotes_cannot_break_out_of_a_link():
    html = render_markdown('[x](https://example.com/"onmouseover="alert(1))')
    assert_neutralised(html)
    assert "onmouseover=" not in html.replace("&quot;onmouseover=&quot;", "")


def test_plain_text_keeps_the_words_and_drops_the_markup():
    from communication.markdown import plain_text

    note = "## Plan\n\n**What we covered**\n\n- one *item*\n- a [link](https://example.com) & <b>raw</b>\n"
    assert plain_text(note) == "Plan What we covered one item a link & <b>raw</b>"  # raw HTML stays text
