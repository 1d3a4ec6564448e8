"""Rasa 3.6 lifecycle: its own Python 3.10 virtualenv, a cached model and a local server.

Rasa 3.6 runs on Python 3.8-3.10 and pins SQLAlchemy 1.4, so it never shares the app's
virtualenv. Everything built here lives outside the clone, keyed by content hash:

    ~/.cache/leerbot/rasa-venv-<hash of requirements-rasa.txt + Python version>/
    ~/.cache/leerbot/models/<hash of requirements + config.yml + domain.yml + data/**>.tar.gz

Builders take an fcntl lock, build into a temporary name and rename, so two test processes
never build the same thing twice or see half of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import glob
import hashlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

log = logging.getLogger(__name__)

NLU_DIR = Path(__file__).resolve().parent
REQUIREMENTS = NLU_DIR / "requirements-rasa.txt"
CONFIG = NLU_DIR / "config.yml"
DOMAIN = NLU_DIR / "domain.yml"
DATA = NLU_DIR / "data"
RASA_SPEC = "rasa==3.6.21"
CACHE_DIR = Path.home() / ".cache" / "leerbot"
KEEP_MODELS = 3  # older models in the cache are removed after a training
START_TIMEOUT = 120.0  # Rasa imports TensorFlow and loads the model before it answers
STOP_TIMEOUT = 15.0
WARMUP_TEXT = "hallo"


class RasaSetupError(RuntimeError):
    """The Rasa virtualenv, model or server could not be made ready."""


# ---------------------------------------------------------------- helpers


def _hash(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive fcntl lock on `path` (released when the process dies, too)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _run(
    cmd: list[str], *, log_file: Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> None:
    """Run one build step, appending its output to `log_file`; raise with the log tail."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        done = subprocess.run(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            check=False,
        )
    if done.returncode != 0:
        raise RasaSetupError(
            f"{' '.join(cmd[:4])} ... failed (exit {done.returncode}); log {log_file}:\n"
            f"{_tail(log_file)}"
        )


def _pip_env() -> dict[str, str]:
    # pip needs the parent's index, proxy and certificate settings (PIP_*, HTTPS_PROXY).
    return dict(os.environ)  # noqa: TID251 (subprocess needs the parent environment)


def _rasa_env(venv: Path) -> dict[str, str]:
    """A small, quiet and offline environment for the Rasa process."""
    return {
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.defpath}",
        "HOME": str(Path.home()),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TMPDIR": tempfile.gettempdir(),
        "MPLCONFIGDIR": str(CACHE_DIR / "mpl"),  # matplotlib (a Rasa import) wants a cache dir
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "TF_ENABLE_ONEDNN_OPTS": "0",  # silences the oneDNN banner; results stay the same
        "CUDA_VISIBLE_DEVICES": "",  # no GPU probing on CPU-only machines
        "RASA_TELEMETRY_ENABLED": "false",
        "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
        "PYTHONWARNINGS": "ignore",
        "PYTHONUNBUFFERED": "1",
    }


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# ---------------------------------------------------------------- Python 3.10 + virtualenv


@functools.cache
def find_python310() -> Path:
    """The Python 3.10 interpreter for Rasa: pyenv first, then ~/.pyenv, then PATH."""
    candidates: list[Path] = []
    pyenv = shutil.which("pyenv")
    if pyenv:
        done = subprocess.run(
            [pyenv, "prefix", "3.10"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0 and done.stdout.strip():
            candidates.append(Path(done.stdout.strip().splitlines()[0]) / "bin" / "python3.10")
    pattern = str(Path.home() / ".pyenv" / "versions" / "3.10*" / "bin" / "python3.10")
    candidates += [Path(p) for p in sorted(glob.glob(pattern), reverse=True)]
    on_path = shutil.which("python3.10")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        # A pyenv shim exists even when 3.10 is not selected; only a working interpreter counts.
        if candidate.exists() and _python_version(candidate).startswith("3.10."):
            return candidate
    raise RasaSetupError(
        "Python 3.10 not found (Rasa 3.6 needs it): install it with "
        "'pyenv install 3.10' or put python3.10 on PATH"
    )


@functools.cache
def _python_version(python: Path) -> str:
    try:
        done = subprocess.run(
            [str(python), "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def venv_path(python: Path | None = None, *, cache_dir: Path = CACHE_DIR) -> Path:
    """Where the Rasa virtualenv for these pins and this interpreter lives."""
    python = python or find_python310()
    key = _hash(REQUIREMENTS.read_bytes(), _python_version(python).encode())
    return cache_dir / f"rasa-venv-{key}"


def _complete(venv: Path) -> bool:
    return (venv / ".complete").exists() and (venv / "bin" / "python").exists()


def ensure_venv(*, cache_dir: Path = CACHE_DIR) -> Path:
    """Create the Rasa virtualenv once (idempotent, safe across processes); return its path."""
    python = find_python310()
    final = venv_path(python, cache_dir=cache_dir)
    if _complete(final):
        return final
    with _locked(cache_dir / "locks" / f"{final.name}.lock"):
        if _complete(final):  # another process built it while we waited
            return final
        for stale in final.parent.glob(f"{final.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)  # a builder that died; we hold the lock
        tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
        log_file = cache_dir / "logs" / f"{final.name}.log"
        log.info("building the Rasa virtualenv in %s (first time: about 3 minutes)", final)
        started = time.monotonic()
        env = _pip_env()
        pip = [
            str(tmp / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-c",
            str(REQUIREMENTS),
        ]
        try:
            _run([str(python), "-m", "venv", str(tmp)], log_file=log_file, env=env)
            _run([*pip, "--upgrade", "pip", "setuptools", "wheel"], log_file=log_file, env=env)
            _run([*pip, RASA_SPEC], log_file=log_file, env=env)
            _run(
                [str(tmp / "bin" / "python"), "-c", "import rasa.version"],
                log_file=log_file,
                env=env,
            )
            _relocate(tmp, final)
            (tmp / ".complete").write_text(RASA_SPEC + "\n")
            if final.exists():
                shutil.rmtree(final)  # an unfinished build from before the stamp existed
            tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info("Rasa virtualenv ready in %.0f s", time.monotonic() - started)
    return final


def _relocate(tmp: Path, final: Path) -> None:
    """Point scripts in bin/ at the final path before the rename (shebangs are absolute)."""
    old, new = str(tmp).encode(), str(final).encode()
    for script in (tmp / "bin").iterdir():
        if script.is_symlink() or not script.is_file() or script.stat().st_size > 1_000_000:
            continue
        body = script.read_bytes()
        if old in body:
            script.write_bytes(body.replace(old, new))


# ---------------------------------------------------------------- model


def _project_files() -> list[Path]:
    data = sorted(p for p in DATA.rglob("*") if p.is_file() and p.suffix in {".yml", ".yaml"})
    return [REQUIREMENTS, CONFIG, DOMAIN, *data]


def model_hash() -> str:
    """Content hash of everything that shapes the model (the Rasa pins included)."""
    parts: list[bytes] = []
    for path in _project_files():
        parts += [str(path.relative_to(NLU_DIR)).encode(), path.read_bytes()]
    return _hash(*parts)


def model_path(*, cache_dir: Path = CACHE_DIR) -> Path:
    """Where the model for the current NLU data lives (it may not exist yet)."""
    return cache_dir / "models" / f"{model_hash()}.tar.gz"


def train(*, force: bool = False, cache_dir: Path = CACHE_DIR) -> Path:
    """Train the NLU model unless one for this exact data exists; return its path."""
    venv = ensure_venv(cache_dir=cache_dir)
    target = model_path(cache_dir=cache_dir)
    if target.exists() and not force:
        return target
    with _locked(cache_dir / "locks" / f"model-{target.name}.lock"):
        if target.exists() and not force:
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="train-", dir=target.parent))
        log_file = cache_dir / "logs" / "train.log"
        name = target.name.removesuffix(".tar.gz")
        log.info("training the Rasa NLU model %s", name)
        started = time.monotonic()
        try:
            # cwd is the scratch dir: Rasa writes its .rasa/ cache there, not in the clone.
            _run(
                [
                    str(venv / "bin" / "python"),
                    "-m",
                    "rasa",
                    "train",
                    "nlu",
                    "--quiet",
                    "--config",
                    str(CONFIG),
                    "--domain",
                    str(DOMAIN),
                    "--nlu",
                    str(DATA),
                    "--out",
                    str(work / "out"),
                    "--fixed-model-name",
                    name,
                ],
                log_file=log_file,
                cwd=work,
                env=_rasa_env(venv),
            )
            built = work / "out" / f"{name}.tar.gz"
            if not built.exists():
                raise RasaSetupError(f"rasa train produced no model; log {log_file}")
            os.replace(built, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        log.info("model trained in %.0f s: %s", time.monotonic() - started, target)
        _prune(target)
    return target


def _prune(keep: Path) -> None:
    """Drop all but the newest few models (17 MB each); a running server has its copy."""
    models = sorted(keep.parent.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in [m for m in models if m != keep][KEEP_MODELS - 1 :]:
        old.unlink(missing_ok=True)


# ---------------------------------------------------------------- server


@dataclass
class RasaServer:
    """A running `rasa run --enable-api` process that we started."""

    process: subprocess.Popen[bytes]
    url: str
    model: Path
    log_file: Path | None
    _log_handle: IO[bytes] | None = field(default=None, repr=False)

    def stop(self) -> None:
        """Stop the server (SIGTERM to its own process group, SIGKILL after a grace period)."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def wait(self) -> int:
        """Block until the server exits; return its exit code."""
        return self.process.wait()

    def problem(self) -> str:
        """The tail of the server log, for error messages."""
        return _tail(self.log_file) if self.log_file else "(log on the console)"


def _spawn(
    *, model: Path, port: int, host: str, quiet: bool, log_file: Path | None, cache_dir: Path
) -> RasaServer:
    venv = ensure_venv(cache_dir=cache_dir)
    run_dir = cache_dir / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(venv / "bin" / "python"),
        "-m",
        "rasa",
        "run",
        "--enable-api",
        "--model",
        str(model),
        "--port",
        str(port),
        "-i",
        host,
    ]
    if quiet:
        cmd.append("--quiet")
    handle: IO[bytes] | None = None
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handle = log_file.open("wb")
    # Own session: stop() signals this process group only, and Ctrl-C in a terminal reaches
    # `leerbot nlu serve`, which then stops Rasa in order.
    process = subprocess.Popen(
        cmd,
        cwd=run_dir,
        env=_rasa_env(venv),
        stdout=handle,
        stderr=subprocess.STDOUT if handle else None,
        start_new_session=True,
    )
    return RasaServer(
        process=process,
        url=f"http://{host}:{port}",
        model=model,
        log_file=log_file,
        _log_handle=handle,
    )


def _default_log(cache_dir: Path, port: int) -> Path:
    return cache_dir / "logs" / f"rasa-{port}.log"


def start_server(
    *,
    port: int | None = None,
    host: str = "127.0.0.1",
    model: Path | None = None,
    timeout: float = START_TIMEOUT,
    quiet: bool = True,
    log_file: Path | None = None,
    console: bool = False,
    cache_dir: Path = CACHE_DIR,
) -> RasaServer:
    """Train if needed, start Rasa and block until it parses; the caller must stop() it."""
    model = model or train(cache_dir=cache_dir)
    port = port or free_port()
    if not console:
        log_file = log_file or _default_log(cache_dir, port)
    server = _spawn(
        model=model,
        port=port,
        host=host,
        quiet=quiet,
        log_file=None if console else log_file,
        cache_dir=cache_dir,
    )
    try:
        _wait_ready(server, timeout)
    except BaseException:
        server.stop()
        raise
    return server


def _check_alive(server: RasaServer, deadline: float, timeout: float) -> None:
    if server.process.poll() is not None:
        raise RasaSetupError(f"Rasa exited with {server.process.returncode}:\n{server.problem()}")
    if time.monotonic() > deadline:
        raise RasaSetupError(f"Rasa did not answer within {timeout:.0f} s:\n{server.problem()}")


def _wait_ready(server: RasaServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=5.0) as http:
        while not _ready(http, server.url):
            _check_alive(server, deadline, timeout)
            time.sleep(0.5)


async def _await_ready(server: RasaServer, within: float) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=5.0) as http:
        while not await _aready(http, server.url):
            _check_alive(server, deadline, within)
            await asyncio.sleep(0.5)


def _ready(http: httpx.Client, url: str) -> bool:
    try:
        if http.get(f"{url}/status").status_code != 200:
            return False
        # The first parse builds TensorFlow's graph (seconds); do it now, not on a pupil's message.
        return (
            http.post(f"{url}/model/parse", json={"text": WARMUP_TEXT}, timeout=30.0).status_code
            == 200
        )
    except httpx.HTTPError:
        return False


async def _aready(http: httpx.AsyncClient, url: str) -> bool:
    try:
        if (await http.get(f"{url}/status")).status_code != 200:
            return False
        reply = await http.post(f"{url}/model/parse", json={"text": WARMUP_TEXT}, timeout=30.0)
    except httpx.HTTPError:
        return False
    return reply.status_code == 200


@contextlib.asynccontextmanager
async def rasa_server(
    port: int | None = None, *, ready_within: float = START_TIMEOUT, cache_dir: Path = CACHE_DIR
) -> AsyncIterator[str]:
    """Train if needed, run a quiet Rasa server on 127.0.0.1 and yield its URL (for tests)."""
    model = await asyncio.to_thread(train, cache_dir=cache_dir)
    port = port or free_port()
    server = await asyncio.to_thread(
        _spawn,
        model=model,
        port=port,
        host="127.0.0.1",
        quiet=True,
        log_file=_default_log(cache_dir, port),
        cache_dir=cache_dir,
    )
    try:
        await _await_ready(server, ready_within)
        yield server.url
    finally:
        await asyncio.to_thread(server.stop)
