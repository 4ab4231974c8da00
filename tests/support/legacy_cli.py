"""The real `sentry-cli` 2.18.1, the last release that checks in through Sentry's
deprecated check-in API (`/api/0/monitors/{slug}/checkins/`). One version of a package
fits in the test environment, which holds a current sentry-cli, so this one is fetched
from PyPI once (its wheel, by pip) and kept in ~/.cache/vigil-tests; without it the
tests skip locally and fail in CI."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from tests.support.services import unavailable

VERSION = "2.18.1"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vigil-tests"
DOWNLOAD_TIMEOUT_S = 300


def legacy_sentry_cli() -> Path:
    """The path of sentry-cli 2.18.1, fetched on first use."""
    binary = CACHE / f"sentry-cli-{VERSION}" / "sentry-cli"
    if binary.exists():
        return binary
    with tempfile.TemporaryDirectory() as tmp:
        fetched = subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "-q", "--no-deps"),
                *("--only-binary=:all:", f"sentry-cli=={VERSION}", "-d", tmp),
            ],
            capture_output=True,
            text=True,
            timeout=DOWNLOAD_TIMEOUT_S,
        )
        wheels = list(Path(tmp).glob("*.whl"))
        if fetched.returncode != 0 or not wheels:
            unavailable(
                f"sentry-cli {VERSION}",
                f"let pip reach PyPI once (pip download sentry-cli=={VERSION}): "
                + fetched.stderr.strip()[-300:],
            )
        with zipfile.ZipFile(wheels[0]) as wheel:
            (member,) = [n for n in wheel.namelist() if n.endswith("/scripts/sentry-cli")]
            binary.parent.mkdir(parents=True, exist_ok=True)
            partial = binary.with_suffix(".partial")
            partial.write_bytes(wheel.read(member))
    partial.chmod(0o755)
    partial.replace(binary)  # whole or not at all, for a concurrent or interrupted run
    return binary
