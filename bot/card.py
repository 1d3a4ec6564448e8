"""The loopbaankaart: one portrait PNG with the pupil's own answers, for a warme overdracht.

The pupil owns the card (content-brief §2): it shows their own words from the modules, private
answers included, and nothing anyone else wrote. It is sent as a photo when a module with
`card: true` ends (the engine says `Outbound(kind="photo", attachment="card:<module>")`).
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw, ImageFont
from sqlalchemy.ext.asyncio import AsyncSession

from content.loader import Texts, load_texts
from store import repo
from store.models import Answer, Pupil

if TYPE_CHECKING:
    from bot.app import Runtime

WIDTH, HEIGHT = 1080, 1350  # Instagram-style portrait: fills a phone screen, still one image
MARGIN = 64
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
# High contrast on purpose (weak readers, bright playgrounds): near-black on white.
INK = (20, 24, 33)
PAPER = (255, 255, 255)
BAND = (23, 63, 120)
ACCENTS = ((0, 122, 94), (196, 84, 0), (122, 58, 160), (23, 63, 120), (160, 32, 64))
MUTED = (90, 90, 90)
MAX_LINES = 3  # per section: the card stays readable, the full text is in /mijnantwoorden
BODY_TOP, BODY_BOTTOM = 236, HEIGHT - 90  # between the title band and the footer
SECTION_TOP, LINE, SECTION_GAP = 60, 54, 28  # heading height, line height, space between

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@dataclass(frozen=True, slots=True)
class Section:
    """One block of the card: a heading and where its answer comes from."""

    heading: str  # key in content/texts (card.*)
    sources: tuple[tuple[str, str], ...]  # (module, step), best first
    join: bool = False  # show every source found, not only the first


SECTIONS = (
    Section(
        "card.qualities",
        (
            ("wie-ben-ik", "sterk"),
            ("mijn-talenten-in-actie", "talent"),
            ("jezelf-voorstellen", "sterk"),
        ),
    ),
    Section("card.motives", (("wat-vind-ik-belangrijk", "waarden"),)),
    Section(
        "card.interests",
        (("beroepen-ontdekken", "beroep"), ("beroepen-ontdekken", "beroep2")),
        join=True,
    ),
    Section("card.proud", (("terugblik", "trots"), ("mijn-stage", "trots"))),
    Section(
        "card.next_step",
        (("terugblik", "stap"), ("mijn-volgende-stap", "actie"), ("mijn-stage", "leren")),
    ),
)


@dataclass(frozen=True, slots=True)
class CardContent:
    """What goes on one card, already in words."""

    title: str
    name: str
    blocks: tuple[tuple[str, str | None], ...]  # heading, the pupil's words (None: not yet)
    empty: str
    footer: str


def card_content(answers: Sequence[Answer], *, texts: Texts, lang: str, name: str) -> CardContent:
    """Pick the newest real answer (not "weet ik niet") for each section."""
    newest: dict[tuple[str, str], Answer] = {}
    for answer in answers:
        if answer.value.get("v") in (None, "", []):
            continue
        key = (answer.module_id, answer.step_id)
        if key not in newest or answer.id > newest[key].id:
            newest[key] = answer
    blocks: list[tuple[str, str | None]] = []
    for section in SECTIONS:
        found = [newest[s].display for s in section.sources if s in newest]
        words = (", ".join(found) if section.join else found[0]) if found else None
        blocks.append((texts.get(section.heading, lang), words))
    latest = max((a.created_at for a in newest.values()), default=None)
    footer = texts.get("card.updated", lang, date=latest.strftime("%d/%m/%Y")) if latest else ""
    return CardContent(
        title=texts.get("card.title", lang),
        name=name,
        blocks=tuple(blocks),
        empty=texts.get("card.empty", lang),
        footer=footer,
    )


@cache
def _font(size: int, *, bold: bool = False) -> Font:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    path = FONT_DIR / name
    if path.exists():
        return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)  # scalable since Pillow 10.1


def _wrap(text: str, font: Font, width: int, max_lines: int) -> list[str]:
    """Break text into lines that fit `width`; the last line ends in "…" when cut."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        current = ""
        for word in paragraph.split():
            trial = f"{current} {word}".strip()
            if font.getlength(trial) <= width:
                current = trial
                continue
            if current:
                lines.append(current)
            while font.getlength(word) > width:  # one very long word: cut it
                cut = len(word)
                while cut > 1 and font.getlength(word[:cut]) > width:
                    cut -= 1
                lines.append(word[:cut])
                word = word[cut:]
            current = word
        lines.append(current)
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and font.getlength(f"{last}…") > width:
            last = last[:-1]
        lines = [*lines[: max_lines - 1], f"{last.rstrip()}…"]
    return lines


def _layout(content: CardContent, font: Font, width: int) -> list[list[str]]:
    """Wrapped lines per section; the longest give up lines until the card fits."""
    texts = [words or content.empty for _, words in content.blocks]
    limits = [MAX_LINES] * len(texts)
    while True:
        lines = [_wrap(t, font, width, limit) for t, limit in zip(texts, limits, strict=True)]
        used = sum(SECTION_TOP + LINE * len(ls) + SECTION_GAP for ls in lines)
        if used <= BODY_BOTTOM - BODY_TOP or max(limits) == 1:
            return lines
        longest = max(range(len(lines)), key=lambda i: len(lines[i]))
        limits[longest] = max(1, len(lines[longest]) - 1)


def draw_card(content: CardContent) -> bytes:
    """The card as PNG bytes (CPU work: call it off the event loop)."""
    image = Image.new("RGB", (WIDTH, HEIGHT), PAPER)
    draw = ImageDraw.Draw(image)
    title_font, name_font = _font(64, bold=True), _font(44)
    head_font, body_font, small_font = _font(40, bold=True), _font(44), _font(30)
    draw.rectangle((0, 0, WIDTH, 200), fill=BAND)
    draw.text((MARGIN, 40), content.title, font=title_font, fill=PAPER)
    if content.name:
        draw.text((MARGIN, 122), content.name, font=name_font, fill=PAPER)
    inner = WIDTH - 2 * MARGIN - 32
    y = BODY_TOP
    for index, ((heading, words), lines) in enumerate(
        zip(content.blocks, _layout(content, body_font, inner), strict=True)
    ):
        accent = ACCENTS[index % len(ACCENTS)]
        height = SECTION_TOP + LINE * len(lines)
        draw.rectangle((MARGIN, y, MARGIN + 12, y + height), fill=accent)
        draw.text((MARGIN + 32, y), heading, font=head_font, fill=accent)
        for n, line in enumerate(lines):
            draw.text(
                (MARGIN + 32, y + SECTION_TOP + LINE * n),
                line,
                font=body_font,
                fill=INK if words else MUTED,
            )
        y += height + SECTION_GAP
    if content.footer:
        draw.text((MARGIN, HEIGHT - 64), content.footer, font=small_font, fill=MUTED)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


async def render_card(
    session: AsyncSession, pupil: Pupil, attachment: str, *, texts: Texts | None = None
) -> bytes | None:
    """The pupil's loopbaankaart as PNG (`attachment` is "card:<module>"); None: nothing yet."""
    del attachment  # every card shows the whole path so far, whichever module ended
    answers = await repo.answers_for_pupil(session, pupil.id)
    if not answers:
        return None
    content = card_content(
        answers, texts=texts or _default_texts(), lang=pupil.lang, name=pupil.first_name
    )
    return await asyncio.to_thread(draw_card, content)


@cache
def _default_texts() -> Texts:
    return load_texts()


def install_card(runtime: Runtime) -> None:
    """Let the conversation turn "card:<module>" attachments into the PNG."""
    renderer = partial(render_card, texts=runtime.catalog.texts)
    runtime.conversation.attachment_renderers["card"] = renderer
