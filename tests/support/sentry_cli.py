"""The real sentry-cli (PyPI `sentry-cli`, installed beside the test interpreter), run
with an API token against a vigil server, as a deploy pipeline or an operator runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SENTRY_CLI = Path(sys.executable).parent / "sentry-cli"


def run_with_token(
    server: str, token: str, org: str, project: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """`sentry-cli ARGS` with SENTRY_URL, SENTRY_AUTH_TOKEN, SENTRY_ORG and SENTRY_PROJECT
    set, and no other SENTRY_* setting (nor a .env file) leaking in from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTRY_")}
    env.update(
        SENTRY_URL=server,
        SENTRY_AUTH_TOKEN=token,
        SENTRY_ORG=org,
        SENTRY_PROJECT=project,
        SENTRY_LOAD_DOTENV="0",
    )
    return subprocess.run(
        [str(SENTRY_CLI), *args], env=env, capture_output=True, text=True, timeout=120
    )
