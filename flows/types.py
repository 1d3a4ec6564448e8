"""What crosses the engine boundary: inbound events, outbound messages, domain events, state."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from enum import StrEnum
from typing import Any, Literal

import msgspec

from content.loader import Catalog
from nlu.types import Parse

AnswerValue = str | int | list[str] | None


class InboundKind(StrEnum):
    """What the pupil (or the system) did."""

    TEXT = "text"
    BUTTON = "button"
    COMMAND = "command"
    MEDIA = "media"  # sticker, voice, photo without caption, ...
    SYSTEM = "system"  # reminder, assignment, handover: raised by the product, not the pupil


class Inbound(msgspec.Struct, frozen=True):
    """One event for the engine, free of any transport detail."""

    kind: InboundKind
    text: str = ""
    command: str = ""
    args: str = ""
    payload: str = ""
    parse: Parse | None = None
    data: dict[str, Any] = {}


class Button(msgspec.Struct):
    """An inline button: the adapter signs `payload` into callback data."""

    label: str
    payload: str


class Outbound(msgspec.Struct):
    """One message to the pupil; `edit` replaces the message whose button was pressed."""

    text: str = ""
    buttons: tuple[tuple[Button, ...], ...] = ()
    kind: Literal["text", "photo", "document"] = "text"
    attachment: str = ""  # what the adapter renders: "card:<module>", "export"
    edit: bool = False
    notice: str = ""  # a short toast for a pressed button (answerCallbackQuery)


class JoinOutcome(StrEnum):
    """What the adapter found for a `/start CODE` (the engine does not read the database)."""

    NONE = "none"  # /start without a code
    JOINED = "joined"
    ALREADY = "already"
    UNKNOWN = "unknown"
    MALFORMED = "malformed"


class Assignment(msgspec.Struct, frozen=True):
    """A module assigned to the pupil's class, with the pupil's progress on it."""

    module: str
    due: date | None = None
    status: Literal["new", "busy", "done"] = "new"


class HistoryItem(msgspec.Struct, frozen=True):
    """One earlier answer, for /mijnantwoorden."""

    module: str
    step: str
    question: str
    display: str
    private: bool


class Context(msgspec.Struct, frozen=True):
    """What the engine may know beyond the pupil's own state (loaded by the adapter)."""

    catalog: Catalog
    assignments: tuple[Assignment, ...] = ()
    class_name: str | None = None
    join: JoinOutcome = JoinOutcome.NONE
    region: str = "BE"
    history: tuple[HistoryItem, ...] | None = None
    first_name: str = ""


# ---- domain events: the adapter turns these into rows (answers, flags, runs) ----


class AnswerRecorded(msgspec.Struct, frozen=True):
    module: str
    version: str
    step: str
    value: AnswerValue
    display: str
    private: bool = False


class RunStarted(msgspec.Struct, frozen=True):
    module: str
    version: str


class RunProgressed(msgspec.Struct, frozen=True):
    module: str
    step: str
    position: int
    total: int


class RunPaused(msgspec.Struct, frozen=True):
    module: str


class RunFinished(msgspec.Struct, frozen=True):
    module: str
    share: str


class FlagRaised(msgspec.Struct, frozen=True):
    level: str  # crisis | zorg | aandacht | contactvraag
    reason: str
    category: str | None = None
    evidence: tuple[str, ...] = ()
    target: str | None = None  # leerkracht | begeleider | clb
    urgent: bool = False
    about: str = ""
    module: str | None = None


class ConsentGiven(msgspec.Struct, frozen=True):
    age_band: str


class PupilToStaff(msgspec.Struct, frozen=True):
    text: str


class SettingChanged(msgspec.Struct, frozen=True):
    name: str
    value: Any


class InputRejected(msgspec.Struct, frozen=True):
    reason: str


class ExportRequested(msgspec.Struct, frozen=True):
    """The pupil asked for a copy of their own data (/mijngegevens)."""


class EraseConfirmed(msgspec.Struct, frozen=True):
    """The pupil confirmed /vergeetmij: the adapter erases them in this same transaction."""


Event = (
    AnswerRecorded
    | RunStarted
    | RunProgressed
    | RunPaused
    | RunFinished
    | FlagRaised
    | ConsentGiven
    | PupilToStaff
    | SettingChanged
    | InputRejected
    | ExportRequested
    | EraseConfirmed
)


# ---- state: JSON in the database between events ----
#
# msgspec Structs, not pydantic models: the bot loads and stores this state on every update,
# and the engine sets its fields several times per step. msgspec reads and writes it about
# three times faster and a field set is a plain slot write (see README, "Stack").


class _Stored(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Unknown fields in stored JSON are ignored; defaults are left out when written."""


class RunState(_Stored):
    """A pupil's position in one module, pinned to the version it started on."""

    module: str
    version: str
    step: str
    answers: dict[str, AnswerValue] = {}
    displays: dict[str, str] = {}
    private: list[str] = []
    selection: list[str] = []
    phase: Literal["steps", "share", "contact"] = "steps"
    private_next: bool = False
    share: str | None = None
    rule_flags: list[int] = []  # module rules that matched at the end


class ContactDraft(_Stored):
    """A contact request being filled in."""

    stage: Literal["who", "about", "urgency"] = "who"
    target: str | None = None
    about: str = ""


class Handover(_Stored):
    """An open conversation with a staff member: pupil text goes to them."""

    flag_id: int
    staff_name: str
    role: str


class PupilState(_Stored):
    """Everything the engine remembers about one pupil between events."""

    mode: Literal[
        "new",
        "age",
        "consent",
        "menu",
        "module",
        "contact",
        "crisis",
        "checkin",
        "handover",
        "erase",
    ] = "new"
    lang: str = "nl"
    turn: int = 0
    age_band: str | None = None
    run: RunState | None = None
    paused: dict[str, RunState] = {}
    contact: ContactDraft | None = None
    handover: Handover | None = None
    reminders_off: bool = False
    last_reminder: str | None = None  # ISO date

    @classmethod
    def load(cls, stored: Mapping[str, Any] | None) -> PupilState:
        """The state from what the database keeps (None or {} is a new pupil).

        Raises `StateError` when the stored value does not fit (a wrong type, a mode that
        does not exist): a clear error instead of an engine working on nonsense.
        """
        try:
            return msgspec.convert(stored or {}, cls)
        except msgspec.ValidationError as exc:
            raise StateError(f"stored pupil state does not fit: {exc}") from exc

    @classmethod
    def from_json(cls, blob: str | bytes) -> PupilState:
        """The state from its JSON text (as `to_json` wrote it)."""
        try:
            return _DECODER.decode(blob)
        except msgspec.ValidationError as exc:
            raise StateError(f"stored pupil state does not fit: {exc}") from exc

    def stored(self) -> dict[str, Any]:
        """The state as the database keeps it: JSON values, defaults left out.

        Leaving defaults out makes the stored state a third smaller and quicker to read back
        (the bot loads and stores it on every update); loading fills the defaults in again.
        """
        stored: dict[str, Any] = msgspec.to_builtins(self)
        return stored

    def to_json(self) -> bytes:
        """The stored state as JSON text (UTF-8)."""
        return _ENCODER.encode(self)


class StateError(ValueError):
    """A stored pupil state that does not fit the current PupilState."""


_DECODER = msgspec.json.Decoder(PupilState)
_ENCODER = msgspec.json.Encoder()


class StepResult(msgspec.Struct, frozen=True):
    """What one event changed: the new state, what to say, what happened."""

    state: PupilState
    outbound: tuple[Outbound, ...]
    events: tuple[Event, ...]
