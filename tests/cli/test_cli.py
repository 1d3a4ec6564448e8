"""The operator CLI: happy paths and one-line errors with a non-zero exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass

import pytest
from typer.testing import CliRunner

from leerbot.cli import app


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def leerbot(db: str, *args: str, stdin: str | None = None) -> Result:
    """The CLI in process (Typer's runner): the same code path, without interpreter start-up."""
    env = {"LEERBOT_DATABASE_URL": db, "LEERBOT_BOT_USERNAME": "school_leerbot"}
    result = CliRunner().invoke(app, list(args), input=stdin, env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Result(result.exit_code, result.stdout, result.stderr)


def leerbot_process(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed entry point in a real process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEERBOT_")}
    env |= {"LEERBOT_DATABASE_URL": db}
    return subprocess.run(
        [sys.executable, "-m", "leerbot.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def ok(db: str, *args: str, stdin: str | None = None) -> str:
    result = leerbot(db, *args, stdin=stdin)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def school_db(database_url: str) -> str:
    ok(database_url, "school", "add", "VTI Brugge")
    ok(
        database_url,
        "staff",
        "add",
        "--school",
        "VTI Brugge",
        "--email",
        "an@vti.be",
        "--name",
        "An",
        "--role",
        "teacher",
        "--password-stdin",
        stdin="lang-genoeg-1\n",
    )
    return database_url


def test_db_upgrade_is_idempotent_in_a_real_process(tmp_path: object) -> None:
    from pathlib import Path

    db = f"sqlite+aiosqlite:///{Path(str(tmp_path)) / 'fresh.db'}"
    for _ in range(2):
        result = leerbot_process(db, "db", "upgrade")
        assert result.returncode == 0, result.stderr
        assert "database is up to date" in result.stdout


def test_class_add_prints_join_code_and_deep_link(school_db: str) -> None:
    out = ok(
        school_db,
        "class",
        "add",
        "--school",
        "VTI Brugge",
        "--name",
        "5A",
        "--teacher",
        "an@vti.be",
    )
    code = out.split("join code:")[1].split()[0]
    assert len(code) == 8
    assert f"deep link: https://t.me/school_leerbot?start={code}" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("class", "add", "--school", "Nope", "--name", "5A", "--teacher", "an@vti.be"),
            "leerbot: unknown school 'Nope'",
        ),
        (
            ("class", "add", "--school", "VTI Brugge", "--name", "5A", "--teacher", "x@vti.be"),
            "leerbot: unknown teacher 'x@vti.be' in school 'VTI Brugge'",
        ),
        (
            ("assign", "--class", "5A", "--module", "wie-ben-ik", "--due", "25/12/2026"),
            "leerbot: bad date '25/12/2026': use YYYY-MM-DD",
        ),
        (("assign", "--class", "9Z", "--module", "wie-ben-ik"), "leerbot: unknown class '9Z'"),
        (("assign", "--class", "5A", "--module", "geen-module"), "leerbot: unknown module"),
        (("school", "add", "VTI Brugge"), "leerbot: school 'VTI Brugge' already exists"),
        (
            (
                "staff",
                "add",
                "--school",
                "VTI Brugge",
                "--email",
                "b@vti.be",
                "--name",
                "B",
                "--role",
                "boss",
            ),
            "leerbot: unknown role 'boss'",
        ),
        (("staff", "link", "--email", "nobody@vti.be"), "leerbot: unknown staff e-mail"),
    ],
)
def test_bad_input_gives_one_line_and_nonzero_exit(
    school_db: str, args: tuple[str, ...], message: str
) -> None:
    ok(
        school_db,
        "class",
        "add",
        "--school",
        "VTI Brugge",
        "--name",
        "5A",
        "--teacher",
        "an@vti.be",
    )
    result = leerbot(school_db, *args)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(message)


def test_duplicate_class_is_refused(school_db: str) -> None:
    args = ("class", "add", "--school", "VTI Brugge", "--name", "5A", "--teacher", "an@vti.be")
    ok(school_db, *args)
    result = leerbot(school_db, *args)
    assert result.returncode == 1
    assert result.stderr.strip() == "leerbot: class '5A' already exists in VTI Brugge"


def test_short_password_is_refused_before_anything_is_stored(school_db: str) -> None:
    result = leerbot(
        school_db,
        "staff",
        "add",
        "--school",
        "VTI Brugge",
        "--email",
        "c@vti.be",
        "--name",
        "C",
        "--role",
        "counsellor",
        "--password-stdin",
        stdin="kort\n",
    )
    assert result.returncode == 1
    assert "at least 8" in result.stderr
    assert "c@vti.be" not in ok(school_db, "flags", "list", "--json")


def test_assign_twice_updates_the_due_date(school_db: str) -> None:
    ok(
        school_db,
        "class",
        "add",
        "--school",
        "VTI Brugge",
        "--name",
        "5A",
        "--teacher",
        "an@vti.be",
    )
    assert "assigned wie-ben-ik to 5A (due 2026-12-18)" in ok(
        school_db, "assign", "--class", "5A", "--module", "wie-ben-ik", "--due", "2026-12-18"
    )
    assert "updated wie-ben-ik to 5A (due 2027-01-08)" in ok(
        school_db, "assign", "--class", "5A", "--module", "wie-ben-ik", "--due", "2027-01-08"
    )


def test_flags_list_json_is_empty_list_on_a_new_school(school_db: str) -> None:
    assert json.loads(ok(school_db, "flags", "list", "--json")) == []


def test_staff_link_prints_a_one_time_code(school_db: str) -> None:
    code = ok(school_db, "staff", "link", "--email", "an@vti.be").strip()
    assert code.startswith("st_")
    assert len(code) == 13


def test_missing_schema_is_named(tmp_path: object) -> None:
    from pathlib import Path

    db = f"sqlite+aiosqlite:///{Path(str(tmp_path)) / 'empty.db'}"
    result = leerbot(db, "school", "add", "X")
    assert result.returncode == 1
    assert "did you run 'leerbot db upgrade'?" in result.stderr
