"""Regenerate the initial Alembic migration from store/models.py.

Only while nothing is deployed: after the first release, add incremental migrations instead.
Usage: .venv/bin/python scripts/regen_migration.py
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from alembic import command

from store.db import MIGRATIONS, alembic_config

VERSIONS = MIGRATIONS / "versions"


def main() -> None:
    """Write versions/0001_initial_schema.py anew from the models."""
    for old in VERSIONS.glob("0001_*.py"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'empty.db'}"
        command.revision(
            alembic_config(url), message="initial schema", autogenerate=True, rev_id="0001"
        )
    path = next(VERSIONS.glob("0001_*.py"))
    text = path.read_text()
    text = text.replace("astext_type=Text()", "astext_type=sa.Text()")
    if "from sqlalchemy.dialects import postgresql" not in text:
        text = text.replace(
            "from alembic import op",
            "from alembic import op\nfrom sqlalchemy.dialects import postgresql",
            1,
        )
    text = re.sub(r"Create Date: .*", "Create Date: (regenerated)", text)
    path.write_text(text)
    print(f"wrote {path}")  # noqa: T201 (a developer script)


if __name__ == "__main__":
    main()
