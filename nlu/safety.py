"""In-process safety rules: does a pupil's text show they are not safe? (content-brief §4.3).

Pure and fast: no network, no I/O per call. The lexicon (content/safety/lexicon.yaml) is read
and compiled once, on first use. Recall comes first: a missed crisis is worse than a false
alarm, so a negated or figurative signal still asks a gentle check-in (UNCLEAR) instead of
passing silently; only laughter around a check-in-level signal turns it into nothing.
"""

from __future__ import annotations

import bisect
import functools
import re
import re._constants as sre  # the parsed-pattern opcodes, for the rule index below
import re._parser as sre_parse
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import yaml

from nlu.types import Parse, SafetyCategory, SafetyLevel, SafetyResult

LEXICON_PATH = Path(__file__).resolve().parent.parent / "content" / "safety" / "lexicon.yaml"
CRISIS_THRESHOLD = 0.6  # Rasa's crisis intent at or above this raises a crisis too ...
RASA_ALONE_THRESHOLD = 0.9  # ... but alone (the rules see nothing) only this sure; else ask
BULLYING_THRESHOLD = 0.6
MAX_EVIDENCE = 5
MAX_EVIDENCE_CHARS = 200

_RANK = {
    SafetyLevel.NONE: 0,
    SafetyLevel.UNCLEAR: 1,
    SafetyLevel.CONCERN: 2,
    SafetyLevel.CRISIS: 3,
}
# When one text holds several signals of the same level, the most urgent one names it.
_URGENCY = (
    SafetyCategory.ACUTE_DANGER,
    SafetyCategory.SUICIDAL,
    SafetyCategory.SELF_HARM,
    SafetyCategory.SEXUAL_ABUSE,
    SafetyCategory.HOME_VIOLENCE,
    SafetyCategory.WORRY_OTHER,
    SafetyCategory.BULLYING,
)
_CONCERN_CATEGORIES = frozenset({SafetyCategory.BULLYING, SafetyCategory.WORRY_OTHER})
# Who a signal is about matters for these: "mijn vriendin wil dood" is worry about another.
_SUBJECT_IN_MATCH = frozenset({SafetyCategory.SUICIDAL, SafetyCategory.SELF_HARM})
_SUBJECT_BEFORE = frozenset(
    {SafetyCategory.HOME_VIOLENCE, SafetyCategory.SEXUAL_ABUSE, SafetyCategory.BULLYING}
)
# Family at home: violence against them is violence in the pupil's home.
# For violence and abuse, a pronoun before the verb is mostly the one who does it ("hij heeft
# aan mij gezeten"), so only a named friend makes it worry about another ("mijn vriendin wordt
# thuis geslagen"); family ("mijn zus wordt geslagen") means the pupil's own home.
_FRIENDS = frozenset(
    {
        "vriend",
        "vriendin",
        "vriendinnetje",
        "maat",
        "bff",
        "beste",
        "klasgenoot",
        "klasgenote",
        "kameraad",
        "lief",
        "neef",
        "nicht",
        "buurjongen",
        "buurmeisje",
        "collega",
        "ploeggenoot",
        "teamgenoot",
    }
)
_PASSIVE = frozenset(
    {"word", "wordt", "werd", "werden", "worden", "is", "ben", "zijn", "was", "waren", "geweest"}
)
_NEGATION_IN_RULE = re.compile(r"\b(?:niet|geen|nooit|niks|niets|niemand|nergens)\b")
_MACRO = re.compile(r"\{([A-Z_0-9]+)\}")
_TOKEN = re.compile(r"['’‘`´]?[^\W_]+(?:['’‘`´][^\W_]+)*")
_FORMAT_CHARS = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f"
    "\u202a-\u202e\u2060-\u206f\ufeff\ufe00-\ufe0f]"
)
_QUOTED = re.compile(r"[\"“”„«»‘’]([^\"“”„«»\n]{2,300}?)[\"“”„«»‘’]")
_EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff]")
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'"})
_REPEATS = re.compile(r"(.)\1{2,}")
_NUMBERISH = re.compile(r"\d+(?:ste|de|e|u|h|x|min|km|kg|cm|m|jarig|jaar|uur)?")
_VOWELS = frozenset("aeiouy")
_SPACE = re.compile(" ")


# ---------------------------------------------------------------- lexicon


@dataclass(frozen=True, slots=True)
class _Pattern:
    """A compiled rule and the first two characters any of its matches can start with."""

    regex: re.Pattern[str]
    starts: frozenset[str] | None  # None: could start with anything, always search

    def matches(self, text: str, starts: frozenset[str]) -> Iterator[re.Match[str]]:
        """Matches at word starts; skipped at once when no word starts the right way."""
        if self.starts is not None and self.starts.isdisjoint(starts):
            return iter(())
        return _matches(self.regex, text)


@dataclass(frozen=True, slots=True)
class _Rule:
    category: SafetyCategory
    pattern: _Pattern
    negatable: bool  # False when the rule itself holds the negation ("niet meer leven")


@dataclass(frozen=True, slots=True)
class _Index:
    """Which patterns of a group can match a text, from the openings of its words."""

    by_opening: Mapping[str, tuple[int, ...]]
    always: tuple[int, ...]  # patterns that may start anywhere: always searched
    openings: frozenset[str] = frozenset()  # the keys of by_opening

    def candidates(self, starts: frozenset[str]) -> list[int]:
        """The numbers of the patterns worth searching, in the lexicon's order."""
        numbers = set(self.always)
        by_opening = self.by_opening
        for opening in starts & self.openings:
            numbers.update(by_opening[opening])
        return sorted(numbers)


@dataclass(frozen=True, slots=True)
class Lexicon:
    """The compiled safety lexicon (see content/safety/lexicon.yaml)."""

    tokens: Mapping[str, tuple[str, ...]]
    k_verbs: frozenset[str]
    glyphs: Mapping[int, str]
    leet: Mapping[int, str]
    laugh_emoji: tuple[str, ...]
    laugh: re.Pattern[str]
    media: re.Pattern[str]
    negators: frozenset[str]
    bridge: frozenset[str]
    first_person: frozenset[str]
    other_person: frozenset[str]
    clause_break: re.Pattern[str]
    figurative: tuple[_Pattern, ...]
    innocent: tuple[_Pattern, ...]
    signals: tuple[_Rule, ...]
    ambiguous: tuple[_Rule, ...]
    alarm: _Pattern
    # Which rules of each group can match a text with a given word opening: most texts touch
    # a handful of the ~400 rules, so looking them up beats testing each (engine hot path).
    signal_index: _Index = field(default_factory=lambda: _Index({}, ()))
    ambiguous_index: _Index = field(default_factory=lambda: _Index({}, ()))
    figurative_index: _Index = field(default_factory=lambda: _Index({}, ()))
    innocent_index: _Index = field(default_factory=lambda: _Index({}, ()))


def _pattern_index(patterns: Iterable[_Pattern]) -> _Index:
    by_opening: dict[str, list[int]] = {}
    always: list[int] = []
    for number, pattern in enumerate(patterns):
        if pattern.starts is None:
            always.append(number)
            continue
        for start in pattern.starts:
            by_opening.setdefault(start, []).append(number)
    return _Index(
        {k: tuple(v) for k, v in by_opening.items()}, tuple(always), frozenset(by_opening)
    )


def _expand(pattern: str, macros: Mapping[str, str]) -> str:
    for _ in range(5):  # macros may use macros ({SCHOOL} inside a rule)
        expanded = _MACRO.sub(lambda m: macros[m.group(1)], pattern)
        if expanded == pattern:
            break
        pattern = expanded
    return pattern


# The rule index: the opening characters every match of a rule must start with. A rule whose
# openings start no word of the text is skipped without running the regex.
_KEY = 6  # longest opening kept
_MIN_KEY = 2  # shortest opening that still narrows the search
_ZERO_WIDTH = (sre.AT, sre.ASSERT, sre.ASSERT_NOT)
_REPEATS_OPS = (sre.MAX_REPEAT, sre.MIN_REPEAT)
_Openings = set[tuple[str, bool]]  # (opening, closed: nothing more can be added)


def _extend(openings: _Openings, chars: Iterable[str]) -> _Openings:
    out: _Openings = set()
    for text, closed in openings:
        if closed:
            out.add((text, closed))
        else:
            out.update((text + c, len(text) + 1 >= _KEY) for c in chars)
    return out


def _openings(items: Any, openings: _Openings) -> _Openings | None:
    """Follow parsed regex items from the start of a match; None when it could be anything."""
    for op, arg in items:
        if all(closed for _, closed in openings):
            break
        if op is sre.LITERAL:
            openings = _extend(openings, chr(arg))
        elif op is sre.IN and all(kind is sre.LITERAL for kind, _ in arg):
            openings = _extend(openings, [chr(code) for _, code in arg])
        elif op in _ZERO_WIDTH:
            continue
        elif op is sre.SUBPATTERN:
            found = _openings(arg[-1], openings)
            if found is None:
                return None
            openings = found
        elif op is sre.BRANCH:
            union: _Openings = set()
            for branch in arg[1]:
                found = _openings(branch, openings)
                if found is None:
                    return None
                union |= found
            openings = union
        elif op in _REPEATS_OPS:
            low, high, item = arg
            result = set(openings) if low == 0 else set()
            current = openings
            for count in range(1, max(low, min(high, _KEY)) + 1):
                found = _openings(item, current)
                if found is None:
                    return None
                current = found
                if count >= low:
                    result |= current
            openings = result
        elif all(closed or len(text) >= _MIN_KEY for text, closed in openings):
            # \w, a range, any character: stop here, what we have is long enough.
            openings = {(text, True) for text, _ in openings}
        else:
            return None
    return openings


def _index(regex: re.Pattern[str]) -> frozenset[str] | None:
    found = _openings(sre_parse.parse(regex.pattern), {("", False)})
    if found is None or any(len(text) < _MIN_KEY for text, _ in found):
        return None
    return frozenset(text for text, _ in found)


def _compile(pattern: str, macros: Mapping[str, str]) -> _Pattern:
    # Whole words only: the end is checked here, the start in _matches (a leading lookbehind
    # would stop `re` from skipping ahead to a possible first letter: 6x slower).
    regex = re.compile(rf"(?:{_expand(pattern, macros)})(?![\w#])")
    return _Pattern(regex, _index(regex))


def _word_starts(text: str) -> frozenset[str]:
    """Every opening (_MIN_KEY to _KEY characters) of the text from a word start on."""
    words = [0, *(m.end() for m in _SPACE.finditer(text))]
    return frozenset().union(*[_openings_of(text[p : p + _KEY]) for p in words])


@functools.lru_cache(maxsize=16384)
def _openings_of(window: str) -> tuple[str, ...]:
    # Texts start their words the same few ways ("ik w", "mijn", "een "): worked out once.
    return tuple({window[:n] for n in range(_MIN_KEY, _KEY + 1)})


def _matches(pattern: re.Pattern[str], text: str) -> Iterator[re.Match[str]]:
    """Matches that start at a word start ("dood" never inside "doodgewoon")."""
    pos = 0
    while (match := pattern.search(text, pos)) is not None:
        start = match.start()
        if start == 0 or text[start - 1] == " ":
            yield match
            pos = max(match.end(), start + 1)
        else:
            pos = start + 1


def _without_lookarounds(pattern: str) -> str:
    """The rule minus its (?!...) and (?<!...) parts, which say what must NOT be there."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith(("(?!", "(?<!"), i):
            depth = 0
            while i < len(pattern):
                if pattern[i] == "\\":
                    i += 2
                    continue
                depth += {"(": 1, ")": -1}.get(pattern[i], 0)
                i += 1
                if depth == 0:
                    break
            continue
        out.append(pattern[i])
        i += 1
    return "".join(out)


def _rules(section: Mapping[str, Iterable[str]], macros: Mapping[str, str]) -> tuple[_Rule, ...]:
    rules: list[_Rule] = []
    for name, patterns in section.items():
        category = SafetyCategory(name)
        for pattern in patterns or ():
            # A rule that spells out its own negation ("niet meer leven") is not negated by it.
            negatable = not _NEGATION_IN_RULE.search(_without_lookarounds(pattern))
            rules.append(_Rule(category, _compile(pattern, macros), negatable))
    return tuple(rules)


@functools.cache
def load_lexicon(path: Path = LEXICON_PATH) -> Lexicon:
    """Read and compile the safety lexicon once per process."""
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    norm, ctx, macros = data["normalise"], data["context"], data["macros"]
    signals = _rules(data["signals"], macros)
    ambiguous = _rules(data["ambiguous"], macros)
    figurative = tuple(_compile(p, macros) for p in data["figurative"])
    innocent = tuple(_compile(p, macros) for p in data["innocent"])
    return Lexicon(
        tokens={str(k): tuple(str(v).split()) for k, v in norm["tokens"].items()},
        k_verbs=frozenset(norm["k_verbs"]),
        glyphs=str.maketrans({str(k): str(v) for k, v in norm["homoglyphs"].items()}),
        leet=str.maketrans({str(k): str(v) for k, v in norm["leet"].items()}),
        laugh_emoji=tuple(ctx["laugh_emoji"]),
        laugh=re.compile(ctx["laugh"]),
        media=re.compile(ctx["media"]),
        negators=frozenset(ctx["negators"]),
        bridge=frozenset(ctx["negation_bridge"]),
        first_person=frozenset(ctx["first_person"]),
        other_person=frozenset(ctx["other_person"]),
        clause_break=re.compile(ctx["clause_break"]),
        figurative=figurative,
        innocent=innocent,
        signals=signals,
        ambiguous=ambiguous,
        alarm=_compile(data["alarm_words"], macros),
        signal_index=_pattern_index(r.pattern for r in signals),
        ambiguous_index=_pattern_index(r.pattern for r in ambiguous),
        figurative_index=_pattern_index(figurative),
        innocent_index=_pattern_index(innocent),
    )


# ---------------------------------------------------------------- normalisation


class _Token(NamedTuple):  # a tuple: one is made per word of every text, so cheap to build
    text: str  # normalised
    start: int  # span in the original text
    end: int
    clause: int


class _Text(msgspec.Struct, frozen=True):
    original: str
    tokens: tuple[_Token, ...]
    normalized: str  # what the rules match: words only
    offsets: tuple[int, ...]  # where each token starts in `normalized`
    emoji: str  # stripped from the words, kept for context ("😂")

    @property
    def reported(self) -> str:
        """The normalised text with its emoji at the end (SafetyResult.normalized)."""
        return f"{self.normalized} {self.emoji}" if self.emoji else self.normalized

    def token_range(self, start: int, end: int) -> tuple[int, int]:
        """Indices of the first and last token that a span of `normalized` touches."""
        first = bisect.bisect_right(self.offsets, start) - 1
        last = bisect.bisect_left(self.offsets, end) - 1
        return max(first, 0), max(last, first, 0)

    def source(self, start: int, end: int) -> str:
        """The original text behind a span of `normalized` (for the counsellor)."""
        first, last = self.token_range(start, end)
        if not self.tokens:
            return ""
        text = self.original[self.tokens[first].start : self.tokens[last].end]
        return text[:MAX_EVIDENCE_CHARS]


def _strip_accents(word: str) -> str:
    if word.isascii():
        return word
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _collapse(word: str) -> str:
    """ "neeeee" -> "nee", "dooood" -> "dood", "ikkkk" -> "ik" (Dutch ends on one consonant)."""
    collapsed = _REPEATS.sub(r"\1\1", word)
    if (
        collapsed != word
        and len(collapsed) > 2
        and collapsed[-1] == collapsed[-2]
        and collapsed[-1].isalpha()
        and collapsed[-1] not in _VOWELS
    ):
        collapsed = collapsed[:-1]
    return collapsed


@functools.lru_cache(maxsize=65536)
def _normalize_word(raw: str) -> tuple[str, ...]:
    lex = load_lexicon()
    word = unicodedata.normalize("NFKC", raw).casefold().translate(lex.glyphs)
    word = _strip_accents(word).translate(_APOSTROPHES)
    if word in lex.tokens:
        return lex.tokens[word]
    if "'" in word:
        if word.endswith("'s") and len(word) > 3:  # "foto's" -> "fotos"
            word = word.replace("'", "")
        else:  # "k'heb" -> "k" "heb", "'s" -> "s"
            return tuple(w for part in word.split("'") if part for w in _simple_word(part, lex))
    return _simple_word(word, lex)


def _simple_word(word: str, lex: Lexicon) -> tuple[str, ...]:
    if word in lex.tokens:
        return lex.tokens[word]
    has_digit = any(ch.isdigit() for ch in word)
    if has_digit and not word.isdigit() and not _NUMBERISH.fullmatch(word):
        word = word.translate(lex.leet)  # "d00d" -> "dood", but "3de" and "16u" stay
    word = _collapse(word)
    if word in lex.tokens:
        return lex.tokens[word]
    if len(word) > 2 and word[0] == "k" and word[1:] in lex.k_verbs:
        return ("ik", word[1:])  # "kwil" -> "ik wil"
    return (word,)


def _prepare(text: str) -> _Text:
    lex = load_lexicon()
    # Invisible format characters (zero-width spaces, bidi marks) may sit inside a word:
    # drop them but remember where every kept character came from.
    index: list[int] | None = None
    clean = text
    if _FORMAT_CHARS.search(text):
        index = [i for i, ch in enumerate(text) if not _FORMAT_CHARS.match(ch)]
        clean = "".join(text[i] for i in index)
    breaks = [m.start() for m in lex.clause_break.finditer(clean)]
    tokens: list[_Token] = []
    parts: list[str] = []
    offsets: list[int] = []
    position = clause = 0
    for match in _TOKEN.finditer(clean):
        start, end = match.span()
        if breaks:  # most texts are one clause
            clause = bisect.bisect_left(breaks, start)
        if index is not None:
            start, end = index[start], index[end - 1] + 1
        for word in _normalize_word(match.group()):
            tokens.append(_Token(word, start, end, clause))
            offsets.append(position)
            parts.append(word)
            position += len(word) + 1
    emoji = "".join(_EMOJI.findall(text)[:10])
    return _Text(text, tuple(tokens), " ".join(parts), tuple(offsets), emoji)


def normalize(text: str) -> str:
    """The text as the safety rules see it: lower case, no accents, chat spelling resolved."""
    return _prepare(text).normalized


def words_of(normalized: str) -> str:
    """The words of a SafetyResult.normalized, without the emoji kept at its end."""
    return _EMOJI.sub("", normalized).strip()


# ---------------------------------------------------------------- assessment


class _Finding(msgspec.Struct, frozen=True):
    level: SafetyLevel
    category: SafetyCategory
    start: int  # span in the normalised text
    end: int


def _mask(
    text: str, patterns: tuple[_Pattern, ...], index: _Index, starts: frozenset[str]
) -> tuple[str, list[tuple[int, int]]]:
    spans: list[tuple[int, int]] = []
    chars: list[str] | None = None
    for number in index.candidates(starts):
        regex = patterns[number].regex
        if regex.search(text) is None:
            continue
        for match in _matches(regex, text):
            if chars is None:
                chars = list(text)
            start, end = match.span()
            # "#" keeps offsets and is neither a word character nor a space, so no rule can
            # match across a masked phrase.
            chars[start:end] = "#" * (end - start)
            spans.append((start, end))
    return ("".join(chars) if chars is not None else text), spans


def _overlaps(start: int, end: int, spans: Iterable[tuple[int, int]]) -> bool:
    return any(start < b and a < end for a, b in spans)


def _negated(doc: _Text, lex: Lexicon, start: int, end: int) -> bool:
    """A negation inside the match, or just before it in the same clause ("niet dat ik ...")."""
    first, last = doc.token_range(start, end)
    tokens = doc.tokens
    if any(t.text in lex.negators for t in tokens[first : last + 1]):
        return True
    clause = tokens[first].clause
    for i in range(first - 1, max(first - 6, -1), -1):
        word = tokens[i]
        if word.clause != clause:
            return False
        if word.text in lex.negators:
            return True
        if word.text not in lex.bridge:
            return False
    return False


def _about_other(doc: _Text, lex: Lexicon, start: int, end: int, *, in_match: bool) -> bool:
    """True when the signal is about someone else ("mijn vriendin wil dood")."""
    first, last = doc.token_range(start, end)
    tokens = doc.tokens
    inside = [t.text for t in tokens[first : last + 1]]
    if any(w in lex.first_person for w in inside):
        return False
    if in_match and any(w in lex.other_person for w in inside):
        return True  # "ik denk dat mijn vriend zelfmoord wil plegen"
    near = [t.text for t in tokens[max(first - 2, 0) : first] if t.clause == tokens[first].clause]
    if not in_match and not any(w in _PASSIVE for w in inside + near):
        return False  # active voice: the one before the verb does it to the pupil
    clause = tokens[first].clause
    for i in range(first - 1, max(first - 8, -1), -1):
        word = tokens[i]
        if word.clause != clause:
            break
        if word.text in lex.first_person:
            return False
        if word.text in (lex.other_person if in_match else _FRIENDS):
            return True
    return False


def _signal_level(
    rule: _Rule, doc: _Text, lex: Lexicon, start: int, end: int
) -> tuple[SafetyLevel, SafetyCategory]:
    category = rule.category
    level = SafetyLevel.CONCERN if category in _CONCERN_CATEGORIES else SafetyLevel.CRISIS
    subject = category in _SUBJECT_IN_MATCH or category in _SUBJECT_BEFORE
    if subject and _about_other(doc, lex, start, end, in_match=category in _SUBJECT_IN_MATCH):
        return SafetyLevel.CONCERN, SafetyCategory.WORRY_OTHER
    if rule.negatable and _negated(doc, lex, start, end):
        # "ik wil niet dood": never silently nothing; bullying denied is simply nothing.
        if level is SafetyLevel.CRISIS:
            return SafetyLevel.UNCLEAR, category
        return SafetyLevel.NONE, category
    return level, category


def _quoted_spans(text: str) -> list[tuple[int, int]]:
    return [m.span(1) for m in _QUOTED.finditer(text)]


def _signals(doc: _Text, lex: Lexicon, text: str, starts: frozenset[str]) -> list[_Finding]:
    found: list[_Finding] = []
    for number in lex.signal_index.candidates(starts):
        rule = lex.signals[number]
        if rule.pattern.regex.search(text) is None:
            continue  # the common case, decided without starting the generator
        for match in _matches(rule.pattern.regex, text):
            start, end = match.span()
            level, category = _signal_level(rule, doc, lex, start, end)
            if level is not SafetyLevel.NONE:
                found.append(_Finding(level, category, start, end))
    return found


def _assess(doc: _Text, lex: Lexicon) -> list[_Finding]:
    # Innocent uses (accidents, pets, games) are masked for good; figurative ones are kept
    # visible to the signals but remembered.
    # Masking only hides words, so the openings of the unmasked words still cover every match.
    starts = _word_starts(doc.normalized)
    plain, _ = _mask(doc.normalized, lex.innocent, lex.innocent_index, starts)
    masked, figurative = _mask(plain, lex.figurative, lex.figurative_index, starts)
    findings: list[_Finding] = []
    for hit in _signals(doc, lex, plain, starts):
        if (
            hit.level is SafetyLevel.CRISIS
            and figurative
            and _overlaps(hit.start, hit.end, figurative)
        ):
            # A clear signal inside a manner of speaking ("ik wil dood van de stress") is not
            # clearly casual either: ask.
            hit = _Finding(SafetyLevel.UNCLEAR, hit.category, hit.start, hit.end)
        findings.append(hit)
    for number in lex.ambiguous_index.candidates(starts):
        rule = lex.ambiguous[number]
        if rule.pattern.regex.search(masked) is None:
            continue
        for match in _matches(rule.pattern.regex, masked):
            findings.append(_Finding(SafetyLevel.UNCLEAR, rule.category, *match.span()))
    covered = [(f.start, f.end) for f in findings]
    for match in lex.alarm.matches(masked, starts):
        if not _overlaps(*match.span(), covered):
            findings.append(_Finding(SafetyLevel.UNCLEAR, SafetyCategory.SUICIDAL, *match.span()))
    return findings


def _laughing(words: str, emoji: str, lex: Lexicon) -> bool:
    return bool(lex.laugh.search(words)) or any(e in emoji for e in lex.laugh_emoji)


def _casual(normalized: str) -> bool:
    """The rules recognise a manner of speaking, an innocent use or laughter in this text."""
    lex = load_lexicon()
    words = words_of(normalized)
    if _laughing(words, normalized[len(words) :], lex):
        return True
    starts = _word_starts(words)
    return any(
        next(_matches(patterns[number].regex, words), None) is not None
        for patterns, index in (
            (lex.figurative, lex.figurative_index),
            (lex.innocent, lex.innocent_index),
        )
        for number in index.candidates(starts)
    )


def _adjust(findings: list[_Finding], doc: _Text, lex: Lexicon) -> list[_Finding]:
    if not findings:
        return findings
    quoted = _quoted_spans(doc.original)
    media = bool(quoted) and bool(lex.media.search(doc.normalized))
    laughing = _laughing(doc.normalized, doc.emoji, lex)
    adjusted: list[_Finding] = []
    for f in findings:
        if media and f.level is SafetyLevel.CRISIS:
            first, last = doc.token_range(f.start, f.end)
            span = (doc.tokens[first].start, doc.tokens[last].end)
            if any(a <= span[0] and span[1] <= b for a, b in quoted):
                # A quoted song line or series title: a hint, not proof. Ask, do not alarm.
                f = _Finding(SafetyLevel.UNCLEAR, f.category, f.start, f.end)
        if laughing and f.level is SafetyLevel.UNCLEAR:
            continue  # "ik ga dood 😂": laughter settles a check-in, never a crisis
        adjusted.append(f)
    return adjusted


def _result(findings: list[_Finding], doc: _Text) -> SafetyResult:
    if not findings:
        return SafetyResult(level=SafetyLevel.NONE, normalized=doc.reported)
    top = max(_RANK[f.level] for f in findings)
    level = next(lvl for lvl, rank in _RANK.items() if rank == top)
    at_top = {f.category for f in findings if f.level is level}
    category = next(c for c in _URGENCY if c in at_top)
    ordered = sorted(findings, key=lambda f: (-_RANK[f.level], f.start))
    evidence: list[str] = []
    used: list[tuple[int, int]] = []
    for f in ordered:
        if _overlaps(f.start, f.end, used):
            continue  # one phrase per place in the text, from the strongest finding
        used.append((f.start, f.end))
        phrase = doc.source(f.start, f.end).strip()
        if phrase and phrase not in evidence:
            evidence.append(phrase)
        if len(evidence) == MAX_EVIDENCE:
            break
    return SafetyResult(
        level=level, category=category, evidence=tuple(evidence), normalized=doc.reported
    )


def assess(text: str) -> SafetyResult:
    """How worried to be about one pupil text, with the phrases that say why."""
    if not text or not text.strip():
        return SafetyResult(level=SafetyLevel.NONE)
    lex = load_lexicon()
    doc = _prepare(text)
    if not doc.tokens:
        return SafetyResult(level=SafetyLevel.NONE, normalized=doc.reported)
    return _result(_adjust(_assess(doc, lex), doc, lex), doc)


def combine(
    safety: SafetyResult, parse: Parse | None, *, threshold: float = CRISIS_THRESHOLD
) -> SafetyResult:
    """Let Rasa raise the level too: its crisis intent makes a crisis, bullying a zorg.

    Rasa is a small bag-of-words model, so where the rules understood more it asks instead of
    alarming (never silent: "het gaat echt niet goed" makes it a crisis): worry about someone
    else stays zorg; a manner of speaking ("ik verveel mij dood") or a text the rules find
    nothing in, with Rasa below RASA_ALONE_THRESHOLD, gets a check-in (unclear).
    """
    if parse is None:
        return safety
    if (
        parse.intent == "crisis"
        and parse.confidence >= threshold
        and safety.level is not SafetyLevel.CRISIS
    ):
        if safety.category is SafetyCategory.WORRY_OTHER:
            # The rules saw who it is about ("mijn vriendin wil dood"); Rasa cannot.
            return safety
        category = safety.category if safety.category not in _CONCERN_CATEGORIES else None
        casual = _RANK[safety.level] < _RANK[SafetyLevel.CONCERN] and _casual(safety.normalized)
        alone = safety.level is SafetyLevel.NONE and parse.confidence < RASA_ALONE_THRESHOLD
        if casual or alone:
            return SafetyResult(
                level=SafetyLevel.UNCLEAR,
                category=category,
                evidence=(*safety.evidence, "rasa:crisis"),
                normalized=safety.normalized,
            )
        return SafetyResult(
            level=SafetyLevel.CRISIS,
            category=category,
            evidence=(*safety.evidence, "rasa:crisis"),
            normalized=safety.normalized,
        )
    if (
        parse.intent == "bullying"
        and parse.confidence >= BULLYING_THRESHOLD
        and _RANK[safety.level] < _RANK[SafetyLevel.CONCERN]
    ):
        return SafetyResult(
            level=SafetyLevel.CONCERN,
            category=SafetyCategory.BULLYING,
            evidence=(*safety.evidence, "rasa:bullying"),
            normalized=safety.normalized,
        )
    return safety
