"""Two schools with staff, classes, pupils, runs, answers and flags, built with store functions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher

from bot.flags import raise_flag
from content.loader import Catalog
from content.models import Module
from dashboard.app import load_content
from flows.types import FlagRaised
from store import repo
from store.db import make_engine, make_sessions
from store.models import Pupil, Run, School, SchoolClass, Staff

PASSWORD = "correct horse battery"
PRIVATE_MARK = "GEHEIM-PRIVE-7731"  # in a private answer: must never reach a staff page
PRIVATE_LINE = "PRIVE-REGEL-5519"  # in a private transcript line
NIETS_MARK = "NIET-GEDEELD-2291"  # an answer of a run shared as 'niets'
SUMMARY_ONLY_HIDDEN = "ALLEEN-ALLES-4410"  # not in the summary of a 'samenvatting' share
CHECKIN = "hoe-gaat-het-op-school"
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)

CHECKIN_MODULE: dict[str, Any] = {
    "id": CHECKIN,
    "title": "Hoe gaat het op school?",
    "competency": "loopbaansturing",
    "description": "Een korte check-in.",
    "minutes": 4,
    "steps": [
        {
            "id": "gevoel",
            "type": "scale",
            "next": "afwezig",
            "text": "Hoe gaat het met jou op school?",
            "scale": {1: "😞", 2: "🙁", 3: "😐", 4: "🙂", 5: "😄"},
        },
        {
            "id": "afwezig",
            "type": "single_choice",
            "next": "stoppen",
            "text": "Hoeveel dagen was je niet op school, de laatste 2 weken?",
            "options": ["0", "1 of 2", "3 tot 5", "Meer dan 5", "Zeg ik liever niet"],
        },
        {
            "id": "stoppen",
            "type": "single_choice",
            "next": "einde",
            "text": "Denk je er soms aan om te stoppen met school?",
            "options": ["Nee", "Soms", "Vaak"],
        },
        {
            "id": "einde",
            "type": "end",
            "text": "Bedankt.",
            "summary": "Op school: {a.gevoel}\nStoppen: {a.stoppen}",
            "contact": "Wil je hierover praten?",
        },
    ],
}

_hash_cache: dict[str, str] = {}


def password_hash() -> str:
    """One argon2 hash of PASSWORD for every seeded account, with cheap parameters.

    Verification reads the parameters from the hash, so tests sign in fast while the
    product's own hashes keep argon2's defaults.
    """
    if PASSWORD not in _hash_cache:
        cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        _hash_cache[PASSWORD] = cheap.hash(PASSWORD)
    return _hash_cache[PASSWORD]


def seeded_catalog() -> Catalog:
    """The real modules plus the check-in sketch when content does not have it yet."""
    catalog = load_content()
    if CHECKIN not in catalog.modules:
        catalog.add(Module.model_validate(CHECKIN_MODULE))
    return catalog


@dataclass
class Seed:
    """Ids of everything seeded, for building URLs and expectations."""

    url: str
    schools: dict[str, int] = field(default_factory=dict)
    staff: dict[str, int] = field(default_factory=dict)  # key → id
    emails: dict[str, str] = field(default_factory=dict)  # key → e-mail
    classes: dict[str, int] = field(default_factory=dict)
    pupils: dict[str, int] = field(default_factory=dict)
    flags: dict[str, int] = field(default_factory=dict)


async def add_pupil(
    session: Any, *, klass: SchoolClass, name: str, user_id: int, seen: datetime
) -> Pupil:
    """A pupil who joined the class and consented."""
    pupil = await repo.create_pupil(
        session, telegram_user_id=user_id, chat_id=user_id, first_name=name
    )
    pupil.class_id = klass.id
    pupil.consent_at = seen - timedelta(days=30)
    pupil.created_at = seen - timedelta(days=30)
    pupil.last_seen_at = seen
    await session.flush()
    return pupil


async def add_run(
    session: Any,
    *,
    pupil: Pupil,
    module_id: str,
    status: str,
    answers: dict[str, tuple[Any, str, bool]] | None = None,
    share: str | None = None,
    position: int = 0,
    total: int = 5,
    at: datetime = NOW,
    when: datetime | None = None,
) -> Run:
    """A run with answers {step: (value, display, private)}, last touched `when` (or `at`)."""
    at = when or at
    run = Run(
        pupil_id=pupil.id,
        module_id=module_id,
        version="seed",
        status=status,
        position=total if status == "done" else position,
        total=total,
        share=share,
        started_at=at - timedelta(hours=1),
        updated_at=at,
        finished_at=at if status == "done" else None,
    )
    session.add(run)
    await session.flush()
    for step_id, (value, display, private) in (answers or {}).items():
        await repo.save_answer(
            session,
            run=run,
            step_id=step_id,
            value=value,
            display=display,
            private=private,
            now=at,
        )
    await session.flush()
    return run


def wie_ben_ik(
    example: str, *, private_example: bool = False, gevoel: int = 4
) -> dict[str, tuple[Any, str, bool]]:
    """Answers to every step of wie-ben-ik."""
    return {
        "graag": (["Buiten zijn"], "Buiten zijn", False),
        "sterk": (["handig"], "Handig met mijn handen", False),
        "voorbeeld": (example, example, private_example),
        "anderen": ("Dat ik hard werk", "Dat ik hard werk", False),
        "gevoel": (gevoel, str(gevoel), False),
    }


async def seed(url: str, *, now: datetime = NOW) -> Seed:
    """Schools X (Sint-Jozef) and Y (Atheneum) with everything the dashboard shows."""
    out = Seed(url=url)
    hashed = password_hash()
    engine = make_engine(url)
    try:
        async with make_sessions(engine).begin() as s:
            x = await repo.add_school(s, name="Sint-Jozef VTI")
            y = await repo.add_school(s, name="Atheneum Noord")
            out.schools = {"x": x.id, "y": y.id}

            async def staff(key: str, school: School, email: str, name: str, role: str) -> Staff:
                member = await repo.add_staff(
                    s, school=school, email=email, name=name, role=role, password_hash=hashed
                )
                out.staff[key] = member.id
                out.emails[key] = email
                return member

            teacher_a = await staff("teacher_a", x, "an@sintjozef.be", "An Peeters", "teacher")
            teacher_b = await staff("teacher_b", x, "bert@sintjozef.be", "Bert Claes", "teacher")
            await staff("counsellor_x", x, "sara@sintjozef.be", "Sara Janssens", "counsellor")
            await staff("admin_x", x, "admin@sintjozef.be", "Dirk Beheer", "admin")
            teacher_y = await staff("teacher_y", y, "yves@atheneum.be", "Yves Maes", "teacher")
            await staff("counsellor_y", y, "cor@atheneum.be", "Cor Wouters", "counsellor")
            await staff("admin_y", y, "admin@atheneum.be", "Els Beheer", "admin")

            class_a = await repo.add_class(s, school=x, name="5A", teacher=teacher_a)
            class_b = await repo.add_class(s, school=x, name="5B", teacher=teacher_b)
            class_y = await repo.add_class(s, school=y, name="6Y", teacher=teacher_y)
            out.classes = {"a": class_a.id, "b": class_b.id, "y": class_y.id}
            for klass in (class_a, class_b, class_y):
                await repo.assign(
                    s, klass=klass, module_id="wie-ben-ik", due=(now + timedelta(days=14)).date()
                )
            await repo.assign(s, klass=class_a, module_id=CHECKIN, due=None)

            uid = 9000
            names = ["Noor", "Yusuf", "Lotte", "Jens", "Amira", "Kobe"]
            for i, name in enumerate(names):
                uid += 1
                pupil = await add_pupil(
                    s, klass=class_a, name=name, user_id=uid, seen=now - timedelta(hours=i + 1)
                )
                out.pupils[name.lower()] = pupil.id
            p = out.pupils
            pupils = {k: await s.get(Pupil, v) for k, v in p.items()}
            # Noor shares everything, but kept her example private.
            await add_run(
                s,
                at=now,
                pupil=pupils["noor"],
                module_id="wie-ben-ik",
                status="done",
                share="alles",
                answers=wie_ben_ik(PRIVATE_MARK, private_example=True, gevoel=5),
            )
            await repo.add_transcript(
                s,
                pupil_id=pupils["noor"].id,
                direction="in",
                text=PRIVATE_LINE,
                now=now,
                private=True,
            )
            # Yusuf shares only the summary: his scale answer is not in it.
            await add_run(
                s,
                at=now,
                pupil=pupils["yusuf"],
                module_id="wie-ben-ik",
                status="done",
                share="samenvatting",
                answers=wie_ben_ik("Ik hielp een klant zoeken", gevoel=2)
                | {"gevoel": (2, SUMMARY_ONLY_HIDDEN, False)},
            )
            # Lotte shares nothing.
            await add_run(
                s,
                at=now,
                pupil=pupils["lotte"],
                module_id="wie-ben-ik",
                status="done",
                share="niets",
                answers=wie_ben_ik(NIETS_MARK),
            )
            # Jens is busy at question 3, and stalled for 5 days.
            await add_run(
                s,
                at=now,
                pupil=pupils["jens"],
                module_id="wie-ben-ik",
                status="paused",
                position=3,
                total=5,
                when=now - timedelta(days=5),
                answers={"graag": (["Met computers"], "Met computers", False)},
            )
            # Amira shares everything; Kobe has not started.
            await add_run(
                s,
                at=now,
                pupil=pupils["amira"],
                module_id="wie-ben-ik",
                status="done",
                share="alles",
                answers=wie_ben_ik("Ik heb een fiets gemaakt", gevoel=4),
            )
            # Check-in: Amira (shared, worrying), Lotte (worrying but shares nothing).
            await add_run(
                s,
                at=now,
                pupil=pupils["amira"],
                module_id=CHECKIN,
                status="done",
                share="alles",
                total=3,
                answers={
                    "gevoel": (1, "😞", False),
                    "afwezig": ("Meer dan 5", "Meer dan 5", False),
                    "stoppen": ("Vaak", "Vaak", False),
                },
            )
            await add_run(
                s,
                at=now,
                pupil=pupils["lotte"],
                module_id=CHECKIN,
                status="done",
                share="niets",
                total=3,
                answers={"gevoel": (1, "😞", False), "stoppen": ("Vaak", "Vaak", False)},
            )
            # Kobe has been silent for 20 days.
            pupils["kobe"].last_seen_at = now - timedelta(days=20)

            uid += 1
            bo = await add_pupil(s, klass=class_b, name="Bo", user_id=uid, seen=now)
            out.pupils["bo"] = bo.id
            await add_run(
                s,
                at=now,
                pupil=bo,
                module_id="wie-ben-ik",
                status="done",
                share="alles",
                answers=wie_ben_ik("Antwoord van klas B"),
            )
            uid += 1
            yara = await add_pupil(
                s, klass=class_y, name="Yara", user_id=uid, seen=now - timedelta(days=30)
            )
            out.pupils["yara"] = yara.id

            flag_x, _ = await raise_flag(
                s,
                pupils["noor"],
                FlagRaised(
                    level="crisis",
                    reason="suicidal",
                    category="suicidal",
                    evidence=("ik zie het niet meer zitten",),
                    urgent=True,
                ),
                now - timedelta(hours=2),
            )
            flag_x2, _ = await raise_flag(
                s,
                pupils["yusuf"],
                FlagRaised(level="contactvraag", reason="contact_request", target="begeleider"),
                now - timedelta(hours=5),
            )
            # Noor also asked to talk to her teacher: the one kind of flag a teacher sees.
            flag_x3, _ = await raise_flag(
                s,
                pupils["noor"],
                FlagRaised(
                    level="contactvraag",
                    reason="contactvraag",
                    target="leerkracht",
                    about="Kan ik eens praten over mijn stage?",
                ),
                now - timedelta(hours=3),
            )
            flag_y, _ = await raise_flag(
                s,
                yara,
                FlagRaised(
                    level="zorg",
                    reason="bullying",
                    category="bullying",
                    evidence=("ze pesten mij",),
                ),
                now - timedelta(hours=1),
            )
            out.flags = {"x": flag_x.id, "x2": flag_x2.id, "x3": flag_x3.id, "y": flag_y.id}
    finally:
        await engine.dispose()
    return out
