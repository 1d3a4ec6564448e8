"""Small inline SVG charts (no scripts, no external files), readable when projected."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from markupsafe import Markup, escape

MIN_GROUP = 5  # class totals only for groups of 5 or more (content-brief §5)
BAR_COLOUR = "#1f6f5c"
TRACK_COLOUR = "#e4ece9"
TEXT_COLOUR = "#1b1b1b"


def finished_chart(rows: Sequence[tuple[str, int, int]]) -> Markup:
    """Horizontal bars: per module, how many pupils finished it out of how many."""
    row_h, label_w, bar_w = 34, 260, 360
    height = row_h * len(rows) + 8
    parts = [
        f'<svg class="chart" viewBox="0 0 {label_w + bar_w + 90} {height}" role="img" '
        f'aria-label="Afgewerkte modules per module">'
    ]
    for i, (label, done, total) in enumerate(rows):
        y = 4 + i * row_h
        width = 0 if total == 0 else round(bar_w * done / total)
        parts.append(
            f'<text x="0" y="{y + 21}" fill="{TEXT_COLOUR}" font-size="17">'
            f"{escape(_short(label, 28))}</text>"
        )
        parts.append(
            f'<rect x="{label_w}" y="{y + 4}" width="{bar_w}" height="24" rx="4" '
            f'fill="{TRACK_COLOUR}"/>'
        )
        parts.append(
            f'<rect x="{label_w}" y="{y + 4}" width="{width}" height="24" rx="4" '
            f'fill="{BAR_COLOUR}"/>'
        )
        parts.append(
            f'<text x="{label_w + bar_w + 10}" y="{y + 22}" fill="{TEXT_COLOUR}" '
            f'font-size="17" font-weight="bold">{done}/{total}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every text part is escaped above)


def scale_chart(title: str, counts: Mapping[int, int], labels: Mapping[int, str]) -> Markup:
    """Vertical bars for the answers 1-5 to one scale question."""
    width, height, base = 420, 200, 150
    top = max([1, *counts.values()])
    total = sum(counts.values())
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}: {total} antwoorden">'
    ]
    for point in range(1, 6):
        n = counts.get(point, 0)
        bar = round(120 * n / top)
        x = 20 + (point - 1) * 80
        parts.append(
            f'<rect x="{x}" y="{base - bar}" width="56" height="{bar}" rx="4" '
            f'fill="{BAR_COLOUR}"/>'
        )
        parts.append(
            f'<text x="{x + 28}" y="{base - bar - 6}" text-anchor="middle" '
            f'fill="{TEXT_COLOUR}" font-size="17" font-weight="bold">{n}</text>'
        )
        parts.append(
            f'<text x="{x + 28}" y="{base + 22}" text-anchor="middle" '
            f'fill="{TEXT_COLOUR}" font-size="15">{point}</text>'
        )
        label = labels.get(point, "")
        parts.append(
            f'<text x="{x + 28}" y="{base + 42}" text-anchor="middle" '
            f'fill="{TEXT_COLOUR}" font-size="12">{escape(_short(_plain(label), 12))}'
            f"</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every text part is escaped above)


def _plain(label: str) -> str:
    """A scale label without its leading emoji (the chart font may not have it)."""
    head, _, rest = label.partition(" ")
    return rest if rest and not head.isalnum() else label


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
