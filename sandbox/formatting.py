"""Telegram text formatting: parse_mode to plain text + entities, and reply markup checks.

Real Telegram rejects malformed HTML/MarkdownV2 with "can't parse entities"; the sandbox does
the same so formatting bugs show up in tests instead of in a pupil's chat.
"""

from __future__ import annotations

import html
import re
from typing import Any

from sandbox.errors import ApiError

JSON = dict[str, Any]

MAX_INLINE_BUTTONS = 100
MAX_CALLBACK_DATA_BYTES = 64

# One action per inline button (Bot API InlineKeyboardButton): exactly one of these fields.
INLINE_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units: Telegram entity offsets and lengths count these."""
    return len(text.encode("utf-16-le")) // 2


def _bad_entities(detail: str) -> ApiError:
    return ApiError(400, f"Bad Request: can't parse entities: {detail}")


# ------------------------------------------------------------------ HTML

_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "code": "code",
    "pre": "pre",
    "a": "text_link",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_TAG = re.compile(
    r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[a-zA-Z-]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|"
    r"[^\s>\"']+))?)*)\s*>"
)
_ATTR = re.compile(r"([a-zA-Z-]+)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>\"']+)))?")
_CHARREF = re.compile(r"&(lt|gt|amp|quot|#[0-9]{1,7}|#x[0-9a-fA-F]{1,6});")


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


def parse_html(source: str) -> tuple[str, list[JSON]]:
    """HTML parse_mode → (text, entities), with Telegram's error messages."""
    out: list[str] = []
    out_len = 0  # UTF-16 length of the text so far
    stack: list[tuple[str, str, int, JSON]] = []
    extra: JSON  # (tag, entity type, offset, extra fields)
    entities: list[JSON] = []
    i = 0
    while i < len(source):
        ch = source[i]
        if ch == "<":
            match = _TAG.match(source, i)
            if match is None:
                raise _bad_entities(
                    f"Unexpected end of name token at byte offset {_byte_offset(source, i)}"
                )
            closing, name, attrs = match.group(1), match.group(2).lower(), match.group(3)
            if name not in _HTML_TAGS:
                kind = "end" if closing else "start"
                raise _bad_entities(
                    f'Unsupported {kind} tag "{name}" at byte offset {_byte_offset(source, i)}'
                )
            if closing:
                if not stack or stack[-1][0] != name:
                    expected = f'"</{stack[-1][0]}>"' if stack else "none"
                    raise _bad_entities(
                        f"Unmatched end tag at byte offset {_byte_offset(source, i)}, "
                        f'expected {expected}, found "</{name}>"'
                    )
                _tag, etype, offset, extra = stack.pop()
                if out_len > offset:
                    entities.append(
                        {"type": etype, "offset": offset, "length": out_len - offset, **extra}
                    )
            else:
                fields = {
                    m.group(1).lower(): html.unescape(m.group(2) or m.group(3) or m.group(4) or "")
                    for m in _ATTR.finditer(attrs)
                }
                etype = _HTML_TAGS[name]
                extra = {}
                if name == "a":
                    if "href" not in fields:
                        raise _bad_entities(
                            f'Tag "a" must have attribute "href" at byte offset '
                            f"{_byte_offset(source, i)}"
                        )
                    extra = {"url": fields["href"]}
                elif name == "span" and fields.get("class") != "tg-spoiler":
                    raise _bad_entities(
                        f'Tag "span" must have class "tg-spoiler" at byte '
                        f"offset {_byte_offset(source, i)}"
                    )
                elif name == "blockquote" and "expandable" in fields:
                    etype = "expandable_blockquote"
                elif name == "tg-emoji":
                    extra = {"custom_emoji_id": fields.get("emoji-id", "")}
                elif name == "code" and stack and stack[-1][0] == "pre":
                    # <pre><code class="language-x"> is one pre entity with a language.
                    lang = fields.get("class", "")
                    if lang.startswith("language-"):
                        stack[-1][3]["language"] = lang.removeprefix("language-")
                    stack.append((name, "", out_len, {}))
                    i = match.end()
                    continue
                stack.append((name, etype, out_len, extra))
            i = match.end()
            continue
        if ch == "&":
            ref = _CHARREF.match(source, i)
            if ref is not None:
                piece = html.unescape(ref.group(0))
                out.append(piece)
                out_len += utf16_len(piece)
                i = ref.end()
                continue
        out.append(ch)
        out_len += 2 if ord(ch) > 0xFFFF else 1
        i += 1
    if stack:
        raise _bad_entities(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    # Drop the helper entries of <pre><code>, which carry no type of their own.
    entities = [e for e in entities if e["type"]]
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


# ------------------------------------------------------------------ MarkdownV2

_MDV2_RESERVED = set("_*[]()~`>#+-=|{}.!")
_MDV2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "text_link": "TextUrl",
}


class _Builder:
    """Accumulates plain text and tracks its UTF-16 length for entity offsets."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0

    def add(self, piece: str) -> None:
        self.parts.append(piece)
        self.length += utf16_len(piece)

    def text(self) -> str:
        return "".join(self.parts)


def parse_markdown_v2(source: str) -> tuple[str, list[JSON]]:
    """MarkdownV2 parse_mode → (text, entities); unescaped reserved characters are errors."""
    out = _Builder()
    entities: list[JSON] = []
    open_: dict[str, tuple[int, int]] = {}  # entity type → (text offset, source index)
    link_start: tuple[int, int] | None = None
    i, n = 0, len(source)
    line_start = True
    quote_start: int | None = None
    while i < n:
        ch = source[i]
        if line_start and ch == ">":
            if quote_start is None:
                quote_start = out.length
            i += 1
            line_start = False
            continue
        if line_start and quote_start is not None:
            _close_quote(entities, quote_start, out.length)
            quote_start = None
        line_start = False
        if ch == "\\":
            if i + 1 >= n:
                raise _bad_entities(
                    "Character '\\' is reserved and must be escaped with the preceding '\\'"
                )
            out.add(source[i + 1])
            i += 2
            continue
        if ch == "`":
            if source.startswith("```", i):
                end = source.find("```", i + 3)
                if end < 0:
                    raise _bad_entities(
                        f"Can't find end of Pre entity at byte offset {_byte_offset(source, i)}"
                    )
                body = source[i + 3 : end]
                language = ""
                if "\n" in body:
                    first, rest = body.split("\n", 1)
                    if first and " " not in first:
                        language, body = first, rest
                body = re.sub(r"\\([`\\])", r"\1", body)
                start = out.length
                out.add(body)
                entity: JSON = {"type": "pre", "offset": start, "length": out.length - start}
                if language:
                    entity["language"] = language
                if out.length > start:
                    entities.append(entity)
                i = end + 3
                continue
            end = i + 1
            while end < n and source[end] != "`":
                end += 2 if source[end] == "\\" else 1
            if end >= n:
                raise _bad_entities(
                    f"Can't find end of Code entity at byte offset {_byte_offset(source, i)}"
                )
            body = re.sub(r"\\([`\\])", r"\1", source[i + 1 : end])
            start = out.length
            out.add(body)
            if out.length > start:
                entities.append({"type": "code", "offset": start, "length": out.length - start})
            i = end + 1
            continue
        marker: str | None = None
        width = 1
        if ch == "*":
            marker = "bold"
        elif ch == "_":
            if source.startswith("__", i):
                marker, width = "underline", 2
            else:
                marker = "italic"
        elif ch == "~":
            marker = "strikethrough"
        elif ch == "|" and source.startswith("||", i):
            marker, width = "spoiler", 2
        if marker is not None:
            if marker in open_:
                start, _ = open_.pop(marker)
                if out.length > start:
                    entities.append(
                        {"type": marker, "offset": start, "length": out.length - start}
                    )
            else:
                open_[marker] = (out.length, i)
            i += width
            continue
        if ch == "[" and link_start is None:
            link_start = (out.length, i)
            i += 1
            continue
        if ch == "]" and link_start is not None:
            if not source.startswith("(", i + 1):
                raise _bad_entities(
                    "Character ']' is reserved and must be escaped with the preceding '\\'"
                )
            end = i + 2
            url_chars: list[str] = []
            while end < n and source[end] != ")":
                if source[end] == "\\" and end + 1 < n:
                    url_chars.append(source[end + 1])
                    end += 2
                else:
                    url_chars.append(source[end])
                    end += 1
            if end >= n:
                raise _bad_entities(
                    f"Can't find end of a URL at byte offset {_byte_offset(source, i)}"
                )
            start = link_start[0]
            if out.length > start:
                entities.append(
                    {
                        "type": "text_link",
                        "offset": start,
                        "length": out.length - start,
                        "url": "".join(url_chars),
                    }
                )
            link_start = None
            i = end + 1
            continue
        if ch in _MDV2_RESERVED:
            raise _bad_entities(
                f"Character '{ch}' is reserved and must be escaped with the preceding '\\'"
            )
        out.add(ch)
        if ch == "\n":
            line_start = True
        i += 1
    if quote_start is not None:
        _close_quote(entities, quote_start, out.length)
    if link_start is not None:
        raise _bad_entities(
            f"Can't find end of TextUrl entity at byte offset "
            f"{_byte_offset(source, link_start[1])}"
        )
    if open_:
        kind, (_, index) = min(open_.items(), key=lambda item: item[1][1])
        raise _bad_entities(
            f"Can't find end of {_MDV2_NAMES[kind]} entity at byte offset "
            f"{_byte_offset(source, index)}"
        )
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return out.text(), entities


def _close_quote(entities: list[JSON], start: int, end: int) -> None:
    # The newline that ends the quoted block is not part of the quote.
    length = end - start - 1
    if length > 0:
        entities.append({"type": "blockquote", "offset": start, "length": length})


# ------------------------------------------------------------------ legacy Markdown

_MD_MARKERS = {"*": "bold", "_": "italic"}


def parse_markdown(source: str) -> tuple[str, list[JSON]]:
    """Legacy Markdown parse_mode (*bold*, _italic_, `code`, ```pre```, [text](url))."""
    out = _Builder()
    entities: list[JSON] = []
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        if ch == "\\" and i + 1 < n and source[i + 1] in "_*`[":
            out.add(source[i + 1])
            i += 2
            continue
        if ch in _MD_MARKERS or ch == "`" or ch == "[":
            if ch == "[":
                close = source.find("](", i)
                end = source.find(")", close + 2) if close >= 0 else -1
                if close < 0 or end < 0:
                    raise _bad_entities(
                        f"Can't find end of the entity starting at byte offset "
                        f"{_byte_offset(source, i)}"
                    )
                start = out.length
                out.add(source[i + 1 : close])
                entities.append(
                    {
                        "type": "text_link",
                        "offset": start,
                        "length": out.length - start,
                        "url": source[close + 2 : end],
                    }
                )
                i = end + 1
                continue
            fence = "```" if source.startswith("```", i) else ch
            end = source.find(fence, i + len(fence))
            if end < 0:
                raise _bad_entities(
                    f"Can't find end of the entity starting at byte offset "
                    f"{_byte_offset(source, i)}"
                )
            body = source[i + len(fence) : end]
            etype = "pre" if fence == "```" else "code" if fence == "`" else _MD_MARKERS[ch]
            start = out.length
            out.add(body)
            if out.length > start:
                entities.append({"type": etype, "offset": start, "length": out.length - start})
            i = end + len(fence)
            continue
        out.add(ch)
        i += 1
    return out.text(), entities


def render_text(
    text: str, parse_mode: str | None, entities: list[JSON] | None = None
) -> tuple[str, list[JSON]]:
    """The text and entities Telegram would store for this text and parse_mode."""
    if entities:
        return text, list(entities)
    if not parse_mode:
        return text, []
    mode = parse_mode.lower()
    if mode == "html":
        return parse_html(text)
    if mode == "markdownv2":
        return parse_markdown_v2(text)
    if mode == "markdown":
        return parse_markdown(text)
    raise ApiError(400, f"Bad Request: unsupported parse_mode {parse_mode!r}")


def command_entities(text: str) -> list[JSON]:
    """The bot_command entity Telegram adds when a user's text starts with a command."""
    match = re.match(r"/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,64})?", text)
    if match is None:
        return []
    return [{"type": "bot_command", "offset": 0, "length": utf16_len(match.group(0))}]


# ------------------------------------------------------------------ reply markup


def _markup_error() -> ApiError:
    return ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")


def check_reply_markup(markup: Any) -> JSON:
    """Validate reply_markup like Telegram; returns it with keyboard buttons normalised."""
    if not isinstance(markup, dict):
        raise _markup_error()
    if "inline_keyboard" in markup:
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise _markup_error()
        if sum(len(r) for r in rows) > MAX_INLINE_BUTTONS:
            raise ApiError(400, "Bad Request: reply markup is too long")
        for row in rows:
            for button in row:
                _check_inline_button(button)
        return {"inline_keyboard": rows}
    if "keyboard" in markup:
        rows = markup["keyboard"]
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise _markup_error()
        normal: list[list[JSON]] = []
        for row in rows:
            out_row: list[JSON] = []
            for button in row:
                if isinstance(button, str):
                    button = {"text": button}
                if not isinstance(button, dict) or not str(button.get("text", "")).strip():
                    raise ApiError(
                        400, "Bad Request: can't parse keyboard button: Text must be non-empty"
                    )
                out_row.append(button)
            normal.append(out_row)
        return {**markup, "keyboard": normal}
    if markup.get("remove_keyboard") is True or markup.get("force_reply") is True:
        return markup
    raise _markup_error()


def _check_inline_button(button: Any) -> None:
    if not isinstance(button, dict):
        raise ApiError(
            400,
            "Bad Request: can't parse inline keyboard button: "
            "InlineKeyboardButton must be an Object",
        )
    if not isinstance(button.get("text"), str) or not button["text"]:
        raise ApiError(
            400, "Bad Request: can't parse inline keyboard button: Text must be non-empty"
        )
    actions = [a for a in INLINE_ACTIONS if button.get(a) is not None]
    if len(actions) != 1:
        raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
    if "callback_data" in actions:
        data = button["callback_data"]
        if (
            not isinstance(data, str)
            or not data
            or len(data.encode("utf-8")) > MAX_CALLBACK_DATA_BYTES
        ):
            raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
    if "url" in actions:
        url = button["url"]
        if not isinstance(url, str) or not re.match(r"(https?|tg)://\S+$", url):
            raise ApiError(400, "Bad Request: BUTTON_URL_INVALID")
