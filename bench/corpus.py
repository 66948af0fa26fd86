"""Download the benchmark corpus (wheels of real PyTorch libraries) and the comparison tools.

Everything lands in the git-ignored `bench/.corpus/`:

    bench/.corpus/wheels/            pip download --no-deps <package>
    bench/.corpus/src/<package>/     the unzipped wheel (only its .py files are used)
    bench/.corpus/venv-torchfix/     a separate virtualenv with torchfix (dev-only tool)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
CORPUS_DIR = BENCH_DIR / ".corpus"
WHEELS_DIR = CORPUS_DIR / "wheels"
SRC_DIR = CORPUS_DIR / "src"
TORCHFIX_VENV = CORPUS_DIR / "venv-torchfix"
RESULTS_DIR = BENCH_DIR / "results"

# gradguard's sources win over any installed copy
if str(ROOT / "server") not in sys.path:
    sys.path.insert(0, str(ROOT / "server"))


def _log(message: str) -> None:
    print(f"[corpus] {message}", file=sys.stderr, flush=True)


def _wheel_for(package: str) -> Path | None:
    prefix = package.replace("-", "_").lower() + "-"
    for wheel in sorted(WHEELS_DIR.glob("*.whl")):
        if wheel.name.lower().startswith(prefix):
            return wheel
    return None


def ensure_package(package: str) -> Path:
    """Unzipped source of the package's wheel; returns the import package directory."""
    target = SRC_DIR / package
    package_dir = target / package.replace("-", "_")
    if package_dir.is_dir():
        return package_dir
    WHEELS_DIR.mkdir(parents=True, exist_ok=True)
    wheel = _wheel_for(package)
    if wheel is None:
        _log(f"downloading {package} (pip download --no-deps)")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(WHEELS_DIR), package],
            check=True,
        )
        wheel = _wheel_for(package)
        if wheel is None:
            raise RuntimeError(f"pip download did not produce a wheel for {package}")
    _log(f"unzipping {wheel.name}")
    tmp = target.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with zipfile.ZipFile(wheel) as archive:
        members = [m for m in archive.namelist() if m.endswith(".py")]
        archive.extractall(tmp, members)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return package_dir


def python_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*.py") if p.is_file())


def ensure_torchfix() -> Path | None:
    """The torchfix executable from a separate venv (installed on first use)."""
    exe = TORCHFIX_VENV / "bin" / "torchfix"
    if exe.exists():
        return exe
    try:
        _log("creating a venv for torchfix")
        venv.EnvBuilder(with_pip=True, clear=True).create(TORCHFIX_VENV)
        subprocess.run(
            [str(TORCHFIX_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "torchfix"], check=True
        )
    except (subprocess.CalledProcessError, OSError) as exc:
        _log(f"torchfix unavailable: {exc}")
        return None
    return exe if exe.exists() else None


def ruff_executable() -> Path | None:
    candidate = Path(sys.executable).parent / "ruff"
    if candidate.exists():
        return candidate
    found = shutil.which("ruff")
    return Path(found) if found else None


def count_lines(text: str) -> int:
    return text.count("\n") + (0 if text.endswith("\n") or not text else 1)
