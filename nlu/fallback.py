"""Keyword intents for when Rasa is down or slow: the few that steer a conversation.

Works on the safety layer's normalised text, so chat spelling is already resolved ("kweet ni"
reads as "ik weet niet"). Anything it does not know is `out_of_scope` with confidence 0, which
the engine treats as "not sure": in an open question the text simply counts as the answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nlu.safety import assess, words_of
from nlu.types import Parse, SafetyCategory, SafetyLevel

SURE = 0.9  # the message is only this ("pauze", "merci hoor")
LIKELY = 0.75  # the phrase is in a short message; above the engine's 0.7 threshold
SHORT = 6  # small talk is short ("ja graag hoor")
PHRASE = 8  # a request phrase counts in messages up to this long ("ik weet het echt niet")
LONG = 14  # distinctive requests ("kan ik met mijn leerkracht praten over ...")

# Words that change nothing about small talk: "nee hoor", "merci bot", "hallo allemaal".
_FILLERS = frozenset(
    {
        "hoor",
        "he",
        "hey",
        "man",
        "bot",
        "leerbot",
        "allemaal",
        "wel",
        "dan",
        "eigenlijk",
        "echt",
        "gewoon",
        "pls",
        "plz",
        "aub",
        "please",
        "jong",
        "gast",
        "se",
        "ze",
        "toch",
        "hoi",
        "hmm",
        "euh",
        "eh",
        "ok",
        "oke",
        "maar",
        "even",
        "ff",
        "nu",
    }
)


@dataclass(frozen=True, slots=True)
class _SmallTalk:
    name: str
    core: frozenset[str]  # at least one of these
    extra: frozenset[str] = frozenset()  # and otherwise only these (or fillers)


def _set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Checked in this order: "nee dank u" is a no before it is thanks; "ok" alone is a yes.
_SMALL_TALK = (
    _SmallTalk(
        "deny",
        _set("nee neen neeje nope nah no njet neuh nenee niet nooit fout"),
        _set(
            "echt liever zeker helemaal klopt dat sorry dank u je bedankt geen zin "
            "is juist van niks absoluut ik denk het wil"
        ),
    ),
    _SmallTalk(
        "affirm",
        _set(
            "ja jaa ya jep yep yes ok oke okay okidoki zeker tuurlijk "
            "natuurlijk akkoord akkoordje klopt jawel prima juist correct "
            "inderdaad absoluut"
        ),
        _set("is goed dat graag doen we in orde idee please da"),
    ),
    _SmallTalk(
        "thanks",
        _set(
            "merci mercii merciii mercikes dank danku dankje dankjewel "
            "dankuwel bedankt superbedankt thx tnx ty thanks thank"
        ),
        _set(
            "je u wel veel voor de hulp vriend beaucoup heel erg super you a lot "
            "alles jouw uitleg je tijd hulp"
        ),
    ),
    _SmallTalk(
        "goodbye",
        _set(
            "doei doeii daag bye ciao slaapwel ajuu doeg houdoe goedenacht "
            "adios groetjes salu salukes ziens later slapen tot slaap"
        ),
        _set("morgen straks de volgende keer week ik ga ben weg slaap salut cu see you nu"),
    ),
    _SmallTalk(
        "greet",
        _set(
            "hallo hallokes hoi hey heey heyy hi hai hej dag goeiemorgen "
            "goedemorgen goedemiddag goeiemiddag goedenavond goeienavond "
            "goedendag goeiedag yo salut hiya hello hellow wazzup"
        ),
        _set("daar iedereen is er iemand hallo"),
    ),
    _SmallTalk("dont_know", _set("idk dunno weetnie weenie kweenie"), _set("ik weet het niet")),
    _SmallTalk("ask_explain", _set("huh wablieft pardon uitleg wat wa"), _set("sorry zeg je")),
    _SmallTalk(
        "pause", _set("pauze pauzeer pauzeren stop stoppen"), _set("even ik wil later straks")
    ),
    _SmallTalk(
        "resume",
        _set("verder doorgaan hervat hervatten continue verdergaan terug"),
        _set("ik ben zijn er wil doen gaan we start"),
    ),
)


@dataclass(frozen=True, slots=True)
class _Phrase:
    name: str
    pattern: re.Pattern[str]
    max_words: int = PHRASE


def _words(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"(?:^| )(?:{pattern})(?: |$)")


# Order matters: "ik weet niet wat je bedoelt" asks about the question (ask_explain) before it
# is "I don't know"; "later verder" is a pause before it is "verder".
_PHRASES = (
    _Phrase(
        "bot_challenge",
        _words(
            r"(?:ben|bent|zijt|is) (?:je|jij|u|dit|dat|gij) (?:\w+ )?(?:een |echt |nu )?"
            r"(?:robot|bot|computer|mens|ai|chatbot|machine|programma|echt|echte|persoon|"
            r"chatgpt|computerprogramma)|praat ik (?:met|tegen) een (?:mens|robot|computer|bot|"
            r"machine)|wie (?:ben|zijt) (?:je|jij|gij)|wie heeft (?:jou|je|deze bot|dit) gemaakt|"
            r"(?:zit|is) (?:er|daar) (?:\w+ )?(?:een )?(?:echte?|mens|persoon)|"
            r"leest er iemand mee|wie typt er|(?:jij|je|gij) (?:bent|zijt) (?:\w+ )?(?:een )?"
            r"(?:robot|bot|computer|mens|ai)|(?:ben|zijt) (?:je|jij|gij) (?:\w+ )?(?:levend|siri|"
            r"alexa|google|een meisje|een jongen|van school)|zit er (?:\w+ )?achter|"
            r"heb (?:je|jij|gij) gevoelens|^wat (?:ben|zijt) (?:je|jij|gij)(?: eigenlijk)?$"
        ),
        LONG,
    ),
    _Phrase(
        "request_contact",
        re.compile(
            r"(?=.*\b(?:praten|spreken|bellen|babbelen|contact|contacteren|gesprek|afspraak|"
            r"aanspreken|bericht|langsgaan|breng|verbind|hulp|vragen|praat|komen halen)\b)"
            r"(?=.*\b(?:leerkracht|leraar|lerares|juf|meester|leerlingenbegeleider|"
            r"leerlingenbegeleiding|clb|zorgcoordinator|klastitularis|trajectbegeleider|mentor|directeur|iemand|mens|persoon|volwassene|"
            r"begeleider)\b)"
        ),
        LONG,
    ),
    _Phrase(
        "ask_explain",
        _words(
            r"bedoel\w*|(?:snap|begrijp|versta) "
            r"(?:\w+ ){0,3}(?:niet|niks)|leg (?:\w+ ){0,3}uit|uitleggen|uitleg|voorbeeld|"
            r"wat (?:betekent|wil (?:dat|dit) zeggen)|wat moet ik (?:hier )?(?:doen|schrijven|"
            r"invullen|zeggen)|(?:de )?vraag herhalen|anders zeggen|simpeler|hoe moet ik|"
            r"wat wil je dat ik|^wat is dat(?: juist)?$"
        ),
    ),
    _Phrase(
        "dont_know",
        _words(
            r"geen (?:flauw )?(?:idee|benul|gedacht)|ik weet (?:\w+ ){0,2}(?:niet|niks)|"
            r"i dont know|weet ik (?:niet|veel)|zou (?:het )?niet weten|"
            r"^(?:ik )?weet (?:\w+ )?niet$|"
            r"dat weet ik (?:\w+ ){0,3}niet|ik kan niks "
            r"(?:bedenken|verzinnen)"
        ),
    ),
    _Phrase(
        "pause",
        _words(
            r"(?:even|ff) (?:pauze|stoppen|stop|pauzeren|niet)|(?:later|straks|morgen|na school) "
            r"(?:\w+ )?(?:verder|doen|doe)|ik stop (?:even|nu|ermee)|geen tijd|ik moet (?:nu )?"
            r"(?:weg|gaan|stoppen|naar de les)|pauze|pauzeren|genoeg voor (?:vandaag|nu)|"
            r"later verder|ik doe het later|straks$|later op terug"
        ),
    ),
    _Phrase(
        "resume",
        _words(
            r"(?:verder|door) (?:doen|gaan)|verdergaan|doorgaan|(?:ga|gaan|doe|doen) (?:\w+ )?"
            r"verder|ik ben (?:er )?(?:terug|weer)|waar (?:waren we|was ik)|daar ben ik weer|"
            r"ik wil verder|terug verder|verder$|^verder|volgende vraag|ik (?:ben|zijn) (?:er )?"
            r"(?:terug|weer)|module afmaken"
        ),
    ),
    _Phrase("greet", _words(r"^(?:alles goed|hoe gaat het(?: met (?:jou|je))?)$")),
    _Phrase(
        "goodbye",
        _words(
            r"ik (?:ga|ben) (?:er(?:mee|van)? ?)?(?:vandoor|weg|offline)|ik log uit|see you|^cu$|"
            r"tot (?:de )?volgende"
        ),
    ),
    _Phrase(
        "affirm", _words(r"^(?:is|oke|ok) goed$|^goed idee$|^in orde$|^ja dat (?:wil ik|is zo)$")
    ),
    _Phrase("thanks", _words(r"merci\w*|\w*bedankt|dankjewel|dankuwel|dank je|dank u|dankbaar")),
)
_EMOJI_INTENTS = {"👍": "affirm", "👌": "affirm", "👎": "deny", "👋": "greet", "🙏": "thanks"}


def classify(text: str) -> Parse:
    """An intent for one text without Rasa (source "fallback"); never raises."""
    safety = assess(text)
    if safety.level is SafetyLevel.CRISIS:
        return Parse(intent="crisis", confidence=SURE, source="fallback")
    if safety.level is SafetyLevel.CONCERN and safety.category is SafetyCategory.BULLYING:
        return Parse(intent="bullying", confidence=LIKELY, source="fallback")
    words = words_of(safety.normalized)
    tokens = words.split()
    if not tokens:
        for emoji, intent in _EMOJI_INTENTS.items():
            if emoji in text:
                return Parse(intent=intent, confidence=LIKELY, source="fallback")
        return Parse(intent="out_of_scope", confidence=0.0, source="fallback")
    if len(tokens) <= SHORT:
        for talk in _SMALL_TALK:
            allowed = talk.core | talk.extra | _FILLERS
            if any(t in talk.core for t in tokens) and all(t in allowed for t in tokens):
                return Parse(intent=talk.name, confidence=SURE, source="fallback")
    for phrase in _PHRASES:
        if len(tokens) <= phrase.max_words and phrase.pattern.search(words):
            return Parse(intent=phrase.name, confidence=LIKELY, source="fallback")
    return Parse(intent="out_of_scope", confidence=0.0, source="fallback")
