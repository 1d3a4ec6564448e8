"""The module format: pydantic models that `leerbot content check` and the bot both load."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from enum import StrEnum
from functools import cache, cached_property
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

LANGUAGES = ("nl", "fr", "en", "ar")


class _Cached(BaseModel):
    """A model with `cached_property` values: an edited copy works them out again.

    Content never changes once loaded, so values the engine reads on every event (an
    option's key, whether a step asks) are worked out once; pydantic's `model_copy` would
    carry them over into a copy whose fields were changed, so it forgets them there.
    """

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy; an edited copy forgets the cached values."""
        copy = super().model_copy(update=update, deep=deep)
        if update:
            for name in _cached_names(type(self)):
                copy.__dict__.pop(name, None)
        return copy


@cache
def _cached_names(cls: type) -> tuple[str, ...]:
    return tuple(
        name
        for klass in cls.__mro__
        for name, value in vars(klass).items()
        if isinstance(value, cached_property)
    )


class Text(BaseModel):
    """A text in Dutch with optional translations; YAML may give a plain string."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    nl: str
    fr: str | None = None
    en: str | None = None
    ar: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_plain(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"nl": value}
        return value

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # YAML authors mostly write a plain Dutch string: the schema must accept that too.
        return {"anyOf": [{"type": "string", "description": "Dutch text"}, handler(core)]}

    def get(self, lang: str = "nl") -> str:
        """The text in `lang`, falling back to Dutch."""
        if lang == "nl" or lang not in LANGUAGES:  # the common case first: every step asks
            return self.nl
        translated: str | None = getattr(self, lang)
        return translated or self.nl


class StepKind(StrEnum):
    """What a step asks of the pupil."""

    MESSAGE = "message"
    SINGLE_CHOICE = "single_choice"
    MULTI_CHOICE = "multi_choice"
    SCALE = "scale"
    OPEN_TEXT = "open_text"
    TOP3 = "top3"
    THIS_OR_THAT = "this_or_that"
    SUMMARY = "summary"
    END = "end"


class Competency(StrEnum):
    """Kuijpers' five career competencies (content-brief §2), plus the school check-in."""

    KWALITEITEN = "kwaliteitenreflectie"
    MOTIEVEN = "motievenreflectie"
    WERKEXPLORATIE = "werkexploratie"
    LOOPBAANSTURING = "loopbaansturing"
    NETWERKEN = "netwerken"
    ALLE = "alle"


class Condition(BaseModel):
    """A test on an answer: `answer` names a step (default: the step itself)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    answer: str | None = None
    eq: str | int | None = None
    ne: str | int | None = None
    lt: int | None = None
    lte: int | None = None
    gt: int | None = None
    gte: int | None = None
    in_: list[str | int] | None = Field(default=None, alias="in")
    contains: str | None = None
    contains_any: list[str] | None = None

    @model_validator(mode="after")
    def _one_test(self) -> Condition:
        tests = [
            self.eq,
            self.ne,
            self.lt,
            self.lte,
            self.gt,
            self.gte,
            self.in_,
            self.contains,
            self.contains_any,
        ]
        if sum(t is not None for t in tests) != 1:
            raise ValueError(
                "a condition needs exactly one test (eq, ne, lt, lte, gt, gte, in, "
                "contains, contains_any)"
            )
        return self


class Branch(BaseModel):
    """Go to `next` when the condition holds (first match wins)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    when: Condition = Field(alias="if")
    next: str


class FlagLevel(StrEnum):
    """Flag urgency, highest first (content-brief §5)."""

    CRISIS = "crisis"
    ZORG = "zorg"
    AANDACHT = "aandacht"
    CONTACTVRAAG = "contactvraag"


class FlagSpec(BaseModel):
    """A staff flag raised when a step is reached or a rule matches."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    level: FlagLevel
    reason: str
    needs_consent: bool = False


class RuleSpec(BaseModel):
    """A module-level rule: raise a flag at the end when any condition holds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    any: list[Condition]
    flag: FlagSpec


class Option(_Cached):
    """One button; YAML may give a plain label."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    label: Text
    value: str | None = None
    next: str | None = None
    action: Literal["contact_request"] | None = None
    emoji: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_plain(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"label": value}
        return value

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # A plain string is an option with that Dutch label.
        return {"anyOf": [{"type": "string", "description": "Dutch label"}, handler(core)]}

    @cached_property
    def key(self) -> str:
        """The stored value: explicit `value`, else the Dutch label."""
        return self.value if self.value is not None else self.label.nl


class ShareSpec(BaseModel):
    """The end step's question about what the teacher may see."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: Text = Text(nl="Wat mag je leerkracht zien?")
    options: list[Literal["alles", "samenvatting", "niets"]] = ["alles", "samenvatting", "niets"]


class Step(_Cached):
    """One question or message of a module."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,23}$")]
    type: StepKind
    text: Text
    hint: Text | None = None  # shown on "weet ik niet": an example
    explain: Text | None = None  # the question in other words, on "wat bedoel je?"
    options: list[Option] = []
    scale: dict[int, Text] | None = None
    min_length: int = 2
    max_length: int = 600
    min_choices: int = 1
    max_choices: int | None = None
    allow_private: bool = True
    skippable: bool = True
    next: str | None = None
    branch: list[Branch] = []
    flag: FlagSpec | None = None
    summary: Text | None = None  # for end steps: the template over earlier answers
    share: ShareSpec | None = None
    contact: Text | None = None

    @field_validator("scale")
    @classmethod
    def _scale_1_to_5(cls, value: dict[int, Text] | None) -> dict[int, Text] | None:
        if value is not None and sorted(value) != [1, 2, 3, 4, 5]:
            raise ValueError("a scale has the points 1, 2, 3, 4 and 5")
        return value

    @cached_property
    def option_labels(self) -> dict[str, Text]:
        """Option key → label (an answer is shown to the pupil by its label)."""
        return {o.key: o.label for o in self.options}

    @cached_property
    def asks(self) -> bool:
        """True when the step waits for an answer."""
        return self.type not in {StepKind.MESSAGE, StepKind.SUMMARY, StepKind.END}


class Module(_Cached):
    """A reflection module: a short sitting of 5-8 steps that ends with the pupil's own words."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # The length is left to `content check`: it names the Telegram limit the id would break.
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,79}$")]
    title: Text
    competency: Competency
    description: Text
    minutes: int = Field(default=7, ge=1, le=30)
    card: bool = False  # send the loopbaankaart when finished
    steps: list[Step]
    rules: list[RuleSpec] = []

    @cached_property
    def version(self) -> str:
        """A short content hash: runs pin it so an edit never breaks a run in progress."""
        blob = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @cached_property
    def positions(self) -> dict[str, int]:
        """Step id → index (the engine looks steps up on every event)."""
        return {s.id: i for i, s in reversed(list(enumerate(self.steps)))}

    def step(self, step_id: str) -> Step:
        """The step with this id (KeyError when unknown)."""
        return self.steps[self.positions[step_id]]

    @property
    def question_count(self) -> int:
        """How many steps ask something (for "vraag 3 van 7")."""
        return sum(1 for s in self.steps if s.asks)


TEMPLATE_REF = re.compile(r"\{a\.([a-z0-9_-]+)\}")
