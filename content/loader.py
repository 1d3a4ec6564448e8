"""Load modules and system texts from `content/` once, at start-up."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from content.models import Module, Text

CONTENT_DIR = Path(__file__).resolve().parent
MODULES_DIR = CONTENT_DIR / "modules"
TEXTS_DIR = CONTENT_DIR / "texts"
TEXT_FIELDS = {"nl", "text", "title", "description", "label"}  # required Dutch texts


class ContentError(Exception):
    """Content that cannot be loaded; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def read_yaml(path: Path) -> Any:
    """Parse one YAML file; a syntax error names the file and line."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path.name}:{mark.line + 1}" if mark else path.name
        raise ContentError([f"{where}: YAML syntax error: {exc.problem}"]) from exc
    except OSError as exc:
        raise ContentError([f"{path}: cannot read: {exc.strerror}"]) from exc


def pydantic_problems(source: str, exc: ValidationError, data: Any) -> list[str]:
    """One line per validation error: `file: module/step: problem`."""
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        where = ""
        if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
            try:
                where = "/" + str(data["steps"][loc[1]].get("id", f"#{loc[1] + 1}"))
            except (KeyError, IndexError, TypeError, AttributeError):
                where = f"/#{loc[1] + 1}"
            loc = loc[2:]
        module_id = data.get("id", "?") if isinstance(data, dict) else "?"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing" and loc and loc[-1] in TEXT_FIELDS:
            # A text without its Dutch original: say so in the words of the rule.
            loc, msg = (loc[:-1] if loc[-1] == "nl" else loc), "missing Dutch text (nl)"
        field_path = ".".join(str(p) for p in loc)
        prefix = f"{field_path}: " if field_path else ""
        lines.append(f"{source}: {module_id}{where}: {prefix}{msg}")
    return lines


def load_module_file(path: Path) -> Module:
    """Load and validate one module file."""
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ContentError([f"{path.name}: a module file holds one mapping (id, title, steps)"])
    try:
        return Module.model_validate(data)
    except ValidationError as exc:
        raise ContentError(pydantic_problems(path.name, exc, data)) from exc


@dataclass
class Texts:
    """System texts by key (content/texts/nl.yaml), with optional translations."""

    entries: dict[str, Text]

    def get(self, key: str, lang: str = "nl", /, **values: object) -> str:
        """The text for `key`, formatted with `values` (KeyError names an unknown key)."""
        text = self.entries[key].get(lang)
        return text.format(**values) if values else text

    def has(self, key: str) -> bool:
        """True when the key exists."""
        return key in self.entries


def load_texts(directory: Path = TEXTS_DIR) -> Texts:
    """Load every `*.yaml` in the texts folder into one key → Text map."""
    entries: dict[str, Text] = {}
    for path in sorted(directory.glob("*.yaml")):
        data = read_yaml(path) or {}
        for key, value in _flatten(data):
            entries[key] = Text.model_validate(value)
    return Texts(entries)


def _flatten(data: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in data.items():
        if not isinstance(key, str):
            # YAML 1.1 reads keys like no/on/off as booleans: refuse them loudly.
            raise ContentError([f"texts: key {prefix}{key!r} is not a string (quote it)"])
        name = f"{prefix}{key}"
        if isinstance(value, dict) and "nl" not in value:
            yield from _flatten(value, name + ".")
        else:
            yield name, value


@dataclass
class Catalog:
    """All modules, by id, with every version a run may still be pinned to."""

    modules: dict[str, Module] = field(default_factory=dict)
    versions: dict[tuple[str, str], Module] = field(default_factory=dict)
    texts: Texts = field(default_factory=lambda: Texts({}))
    # Question keyboards the engine has laid out, by module, version, step, language and
    # selection: the content never changes once loaded, so neither do they.
    keyboards: dict[tuple[Any, ...], Any] = field(default_factory=dict, repr=False, compare=False)

    def add(self, module: Module, *, current: bool = True) -> None:
        """Register a module version; `current` makes it the one new runs start on."""
        self.versions[(module.id, module.version)] = module
        if current:
            self.modules[module.id] = module

    def get(self, module_id: str, version: str | None = None) -> Module:
        """The pinned version when known, else the current one."""
        if version is not None and (module_id, version) in self.versions:
            return self.versions[(module_id, version)]
        return self.modules[module_id]


def load_catalog(modules_dir: Path = MODULES_DIR, texts_dir: Path = TEXTS_DIR) -> Catalog:
    """Load all modules and texts; raise ContentError listing every problem."""
    from content.check import check_module  # the same rules as `leerbot content check`

    catalog = Catalog(texts=load_texts(texts_dir))
    problems: list[str] = []
    for path in sorted(modules_dir.glob("*.yaml")):
        try:
            module = load_module_file(path)
        except ContentError as exc:
            problems.extend(exc.problems)
            continue
        problems.extend(f"{path.name}: {p}" for p in check_module(module))
        catalog.add(module)
    if problems:
        raise ContentError(problems)
    return catalog
