"""Security checks in CI: ruff's bandit rules, known-vulnerable dependencies, leaked secrets."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.compose import ROOT

AUDIT_SERVICES = ("pypi", "osv")  # pip-audit's advisory sources, tried in this order

# Things that look like real credentials.
SECRET_PATTERNS = {
    "Telegram bot token": re.compile(r"\b\d{8,10}:[A-Za-z0-9_-]{35}\b"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"),
    "password in a URL": re.compile(
        r"[a-z+]+://[^/\s:@'\"]+:(?!\$\{|\{|pw@|PW@|PASSWORD@)"
        r"[^@\s'\"/]{6,}@"
    ),
    "secret assignment": re.compile(
        r"(?i)\b(LEERBOT_SECRET_KEY|LEERBOT_TELEGRAM_TOKEN|LEERBOT_WEBHOOK_SECRET|"
        r"POSTGRES_PASSWORD)=(?!\$|<|\s|$)(\S{8,})"
    ),
}
# Documented sandbox/demo values and test fixtures that only work against the sandbox.
ALLOWED = {
    "123456:LEERBOT-SANDBOX-TOKEN",
    "424242:LEERBOT-TEST-TOKEN",
    "leerbot-local-demo-secret-key-not-for-production",
}
SKIP_SUFFIXES = {
    ".png",
    ".jpg",
    ".jpeg",
    ".gif",
    ".ico",
    ".ttf",
    ".woff",
    ".woff2",
    ".gz",
    ".tar",
    ".zip",
    ".pdf",
    ".lock",
}


def repository_files() -> list[Path]:
    """Tracked files plus new files git would add (not ignored): what a commit can contain."""
    listed = subprocess.run(  # read-only git: lists files, changes nothing
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [ROOT / name for name in listed.split("\0") if name]


def secret_findings(path: Path, root: Path = ROOT) -> list[str]:
    """Suspected secrets in one file, as "file:line: kind"."""
    if path.suffix in SKIP_SUFFIXES or not path.is_file():
        return []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return []
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for kind, pattern in SECRET_PATTERNS.items():
            for match in pattern.finditer(line):
                value = match.group(match.lastindex or 0)
                if value in ALLOWED or any(allowed in line for allowed in ALLOWED):
                    continue
                found.append(f"{path.relative_to(root)}:{number}: {kind}")
    return found


def test_the_secret_scanner_finds_what_it_should(tmp_path: Path) -> None:
    planted = tmp_path / "leak.env"
    fake_token = "7" * 10 + ":" + "AAH" + "x" * 32  # built here so this file holds no token
    # Assembled at run time, so this file itself holds nothing the scanner would flag.
    key, pw, tok = "LEERBOT_SECRET_KEY", "POSTGRES_PASSWORD", "LEERBOT_TELEGRAM_TOKEN"
    planted.write_text(
        "\n".join(
            [
                f"{tok}={fake_token}",
                f"{key}=Zq8-real-looking-secret-value-1234567",
                "url = 'postgresql+asyncpg://leerbot:" + "hunter2hunter2@db/leerbot'",
                "LEERBOT_TELEGRAM_TOKEN=123456:LEERBOT-SANDBOX-TOKEN",
                f"{pw}=",
                "",
            ]
        ),
        encoding="utf-8",
    )
    kinds = [line.split(": ", 1)[1] for line in secret_findings(planted, tmp_path)]
    assert sorted(kinds) == sorted(
        ["Telegram bot token", "secret assignment", "secret assignment", "password in a URL"]
    )


def test_no_secrets_in_the_repository() -> None:
    files = repository_files()
    assert any(f.name == "docker-compose.yml" for f in files)
    assert not any(f.name == ".env" for f in files), ".env must never be committed"
    findings = [line for path in files for line in secret_findings(path)]
    assert findings == [], "looks like a real secret:\n" + "\n".join(findings)


def test_ruff_security_rules_pass() -> None:
    # The project's own configuration (S selected, its ignores and per-file ignores).
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            "--no-cache",
            "--exit-zero",
            "--output-format",
            "json",
            ".",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    findings = [
        f"{f['filename']}:{f['location']['row']}: {f['code']} {f['message']}"
        for f in json.loads(result.stdout)
        if re.fullmatch(r"S\d+", str(f.get("code")))
    ]
    assert findings == [], "\n".join(findings)


def _audit(service: str) -> tuple[dict[str, object] | None, str]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip_audit",
            "--skip-editable",
            "--progress-spinner",
            "off",
            "--vulnerability-service",
            service,
            "--format",
            "json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    try:
        return json.loads(result.stdout), ""
    except ValueError:
        reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return None, reason[:300]


def test_installed_dependencies_have_no_known_vulnerabilities() -> None:
    reasons = []
    for service in AUDIT_SERVICES:
        report, reason = _audit(service)
        if report is None:
            reasons.append(f"{service}: {reason}")
            continue
        dependencies = report.get("dependencies", [])
        assert isinstance(dependencies, list)
        skipped = [d for d in dependencies if "skip_reason" in d]
        if not dependencies or skipped:
            reasons.append(
                f"{service}: {len(skipped)} of {len(dependencies)} dependencies "
                f"could not be audited ({skipped[0]['skip_reason'] if skipped else ''})"
            )
            continue
        vulnerable = [
            f"{d['name']} {d['version']}: {v['id']} (fixed in "
            f"{', '.join(v.get('fix_versions', [])) or 'no release yet'})"
            for d in dependencies
            for v in d.get("vulns", [])
        ]
        assert vulnerable == [], "known vulnerabilities:\n" + "\n".join(vulnerable)
        return
    pytest.skip(
        "pip-audit could not reach an advisory database, so nothing was audited "
        "(only a package mirror reachable?): " + "; ".join(reasons)
    )
