"""System texts: every key the engine says exists in Dutch, and reads like the brief asks."""

from __future__ import annotations

import re
from pathlib import Path

from content.check import EMOJI
from content.loader import load_texts

ROOT = Path(__file__).resolve().parents[2]
TEXTS = load_texts()
KEY = re.compile(r"""\bt\(\s*["']([a-z_]+\.[a-z_.0-9]+)["']""")


def test_every_text_key_the_engine_uses_exists() -> None:
    source = (ROOT / "flows" / "engine.py").read_text(encoding="utf-8")
    used = set(KEY.findall(source))
    assert len(used) > 50, "the pattern no longer finds the engine's text keys"
    missing = sorted(k for k in used if not TEXTS.has(k))
    assert missing == []


def test_keys_built_from_parts_exist_for_every_part() -> None:
    for share in ("alles", "samenvatting", "niets"):
        assert TEXTS.has(f"end.share_{share}")
        assert TEXTS.has(f"end.shared_{share}")
    for answer in ("yes", "no"):
        assert TEXTS.has(f"end.contact_{answer}")


def test_pupil_texts_use_at_most_one_emoji_per_message() -> None:
    crowded = {k: t.nl for k, t in TEXTS.entries.items() if len(EMOJI.findall(t.nl)) > 1}
    assert crowded == {}
