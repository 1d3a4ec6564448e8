"""parse_mode handling: escaped text round-trips, entities land on the right UTF-16 offsets."""

from __future__ import annotations

import html
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox.errors import ApiError
from sandbox.formatting import (
    check_reply_markup,
    command_entities,
    parse_html,
    parse_markdown,
    parse_markdown_v2,
    utf16_len,
)

MDV2_SPECIAL = "_*[]()~`>#+-=|{}.!\\"
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)


def escape_v2(text: str) -> str:
    return re.sub(f"([{re.escape(MDV2_SPECIAL)}])", r"\\\1", text)


@given(texts)
def test_escaped_html_comes_back_as_the_same_plain_text(text: str) -> None:
    assert parse_html(html.escape(text, quote=False)) == (text, [])


@given(texts)
def test_escaped_markdown_v2_comes_back_as_the_same_plain_text(text: str) -> None:
    assert parse_markdown_v2(escape_v2(text)) == (text, [])


@given(
    st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="<>&"),
        min_size=1,
        max_size=20,
    ),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="<>&"), max_size=20),
)
def test_bold_entity_covers_exactly_the_tagged_text_in_utf16_units(
    before: str, inside: str
) -> None:
    text, entities = parse_html(f"{html.escape(before)}<b>{html.escape(inside)}</b>")
    assert text == before + inside
    expected = [{"type": "bold", "offset": utf16_len(before), "length": utf16_len(inside)}]
    assert entities == (expected if inside else [])


def test_nested_links_pre_and_spoilers_in_html() -> None:
    text, entities = parse_html(
        '<b>a<i>b</i></b> <a href="https://x.be/?a=1&amp;b=2">c</a> '
        '<pre><code class="language-python">x = 1</code></pre> '
        '<span class="tg-spoiler">s</span>'
    )
    assert text == "ab c x = 1 s"
    assert entities == [
        {"type": "bold", "offset": 0, "length": 2},
        {"type": "italic", "offset": 1, "length": 1},
        {"type": "text_link", "offset": 3, "length": 1, "url": "https://x.be/?a=1&b=2"},
        {"type": "pre", "offset": 5, "length": 5, "language": "python"},
        {"type": "spoiler", "offset": 11, "length": 1},
    ]


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("<x>hoi</x>", 'Unsupported start tag "x" at byte offset 0'),
        ("ik <3 dit", "Unexpected end of name token at byte offset 3"),
        ("<b>a</i>", 'Unmatched end tag at byte offset 4, expected "</b>", found "</i>"'),
        ('<a title="x">y</a>', 'Tag "a" must have attribute "href"'),
    ],
)
def test_html_errors_use_telegrams_words(source: str, error: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_html(source)
    assert info.value.code == 400
    assert info.value.description.startswith(f"Bad Request: can't parse entities: {error}")


def test_markdown_v2_entities_links_and_quotes() -> None:
    text, entities = parse_markdown_v2(
        "*vet* __onder__ ~weg~ ||geheim|| [link](https://x.be/\\))\n>citaat\nklaar"
    )
    assert text == "vet onder weg geheim link\ncitaat\nklaar"
    assert [(e["type"], e["offset"], e["length"]) for e in entities] == [
        ("bold", 0, 3),
        ("underline", 4, 5),
        ("strikethrough", 10, 3),
        ("spoiler", 14, 6),
        ("text_link", 21, 4),
        ("blockquote", 26, 6),
    ]
    assert entities[4]["url"] == "https://x.be/)"
    with pytest.raises(ApiError, match="Can't find end of Bold entity at byte offset 0"):
        parse_markdown_v2("*open")


def test_legacy_markdown_and_bot_commands() -> None:
    assert parse_markdown("*a* _b_ `c` [d](https://e.be)") == (
        "a b c d",
        [
            {"type": "bold", "offset": 0, "length": 1},
            {"type": "italic", "offset": 2, "length": 1},
            {"type": "code", "offset": 4, "length": 1},
            {"type": "text_link", "offset": 6, "length": 1, "url": "https://e.be"},
        ],
    )
    assert command_entities("/start@leerbot_bot ABC") == [
        {"type": "bot_command", "offset": 0, "length": 18}
    ]
    assert command_entities("geen commando") == []


def test_reply_markup_is_checked_and_keyboard_strings_become_buttons() -> None:
    assert check_reply_markup({"keyboard": [["Ja", {"text": "Nee"}]]})["keyboard"] == [
        [{"text": "Ja"}, {"text": "Nee"}]
    ]
    for bad in (
        {"inline_keyboard": [[{"text": "x", "callback_data": ""}]]},
        {"inline_keyboard": [[{"text": "x", "callback_data": "a", "url": "https://a"}]]},
    ):
        with pytest.raises(ApiError, match="BUTTON_DATA_INVALID"):
            check_reply_markup(bad)
    with pytest.raises(ApiError, match="BUTTON_URL_INVALID"):
        check_reply_markup({"inline_keyboard": [[{"text": "x", "url": "javascript:alert(1)"}]]})
    with pytest.raises(ApiError, match="can't parse reply keyboard markup JSON object"):
        check_reply_markup({"keyboard": "Ja"})
