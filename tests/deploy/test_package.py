"""What `pip install .` puts in the image: every data file the app reads at runtime."""

from __future__ import annotations

import fnmatch
import tomllib

from tests.deploy.compose import ROOT


def test_every_runtime_data_file_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    setuptools = config["tool"]["setuptools"]
    packages = [p.rstrip("*") for p in setuptools["packages"]["find"]["include"]]
    # find() in pyproject.toml includes folders without __init__.py (namespaces = true).
    assert setuptools["packages"]["find"].get("namespaces", True)
    patterns = setuptools["package-data"]["*"]
    missing = []
    for package in packages:
        for path in (ROOT / package).rglob("*"):
            if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".py":
                continue
            relative = path.relative_to(ROOT / package)
            if not any(
                fnmatch.fnmatch(path.name, p)
                or fnmatch.fnmatch(str(relative), p)
                or fnmatch.fnmatch(f"{path.parent.name}/{path.name}", p)
                for p in patterns
            ):
                missing.append(str(path.relative_to(ROOT)))
    assert missing == [], f"not shipped by `pip install .` (add to package-data): {missing}"
