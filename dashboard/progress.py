"""Progress per pupil and module, and what a pupil shared: plain functions over store rows."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from content.models import TEMPLATE_REF, Module, StepKind
from store.dashboard_queries import AnswerRow, RunRow

Status = Literal["new", "busy", "paused", "done"]


@dataclass(frozen=True, slots=True)
class Cell:
    """Where one pupil stands in one module."""

    status: Status
    run_id: int = 0
    position: int = 0
    total: int = 0
    at: datetime | None = None
    share: str | None = None

    @property
    def label(self) -> str:
        """'klaar', '3/7' or 'nog niet' (the words teachers see and export)."""
        if self.status == "done":
            return "klaar"
        if self.status in {"busy", "paused"}:
            return f"{self.position}/{self.total}" if self.total else "bezig"
        return "nog niet"


def cells(runs: Iterable[RunRow]) -> dict[tuple[int, str], Cell]:
    """(pupil, module) → progress: done when any run finished, else the newest run."""
    found: dict[tuple[int, str], Cell] = {}
    for run in runs:  # oldest first: a later run replaces an earlier one unless that is done
        key = (run.pupil_id, run.module_id)
        if key in found and found[key].status == "done" and run.status != "done":
            continue
        status: Status = run.status if run.status in {"busy", "paused", "done"} else "busy"  # type: ignore[assignment]  # narrowed by the test
        found[key] = Cell(
            status=status,
            run_id=run.id,
            position=run.position,
            total=run.total,
            at=run.finished_at or run.updated_at,
            share=run.share,
        )
    return found


def summary_steps(module: Module) -> set[str]:
    """The answers the module's end summary shows (what a 'samenvatting' share reveals)."""
    refs: set[str] = set()
    for step in module.steps:
        if step.type in {StepKind.END, StepKind.SUMMARY}:
            for text in (step.summary, step.text if step.type is StepKind.SUMMARY else None):
                if text is not None:
                    refs.update(TEMPLATE_REF.findall(text.nl))
    return refs


@dataclass(frozen=True, slots=True)
class SharedAnswer:
    """One answer a teacher may read: the question and the pupil's answer."""

    step_id: str
    question: str
    display: str


def visible_answers(
    module: Module | None, cell: Cell | None, rows: Sequence[AnswerRow]
) -> list[SharedAnswer]:
    """The answers of a pupil's finished run (`cell`) that the pupil shared, in step order.

    `rows` are non-private answers of finished runs with share alles or samenvatting (the
    query never returns private answers); `samenvatting` keeps only the summary's answers.
    """
    if cell is None or cell.status != "done":
        return []
    mine = [r for r in rows if r.run_id == cell.run_id]
    if not mine:
        return []
    if mine[0].share == "samenvatting":
        allowed = summary_steps(module) if module is not None else set()
        mine = [r for r in mine if r.step_id in allowed]
    elif mine[0].share != "alles":
        return []
    order = {s.id: i for i, s in enumerate(module.steps)} if module is not None else {}
    mine.sort(key=lambda r: order.get(r.step_id, len(order)))
    return [SharedAnswer(r.step_id, question(module, r.step_id), r.display) for r in mine]


def question(module: Module | None, step_id: str) -> str:
    """The question of a step as the pupil saw it (the step id when the step is gone)."""
    if module is None:
        return step_id
    try:
        return module.step(step_id).text.nl
    except KeyError:
        return step_id
