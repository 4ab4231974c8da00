"""`/_health/`: liveness, and with `?full=1` readiness of the database and the log.

- `GET /_health/` answers 200 `ok` without any I/O: the process serves requests.
- `GET /_health/?full=1` runs every check at once, each bounded by `CHECK_TIMEOUT_S`,
  and answers 200 with a per-check report, or 503 with the same report and a `detail`
  naming the failing checks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute

from vigil.api.http import route
from vigil.api.services import Services, services

CHECK_TIMEOUT_S = 10.0
MAX_ERROR_CHARS = 500
_FALSE = ("", "0", "false", "no")


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    error: str | None = None


def health_report(results: Mapping[str, CheckResult]) -> tuple[int, dict[str, Any]]:
    """The status and JSON body for the results of the checks, by name."""
    checks: dict[str, Any] = {}
    for name, result in sorted(results.items()):
        checks[name] = {"ok": True} if result.ok else {"ok": False, "error": result.error}
    failing = [name for name, result in sorted(results.items()) if not result.ok]
    if not failing:
        return 200, {"ok": True, "checks": checks}
    return 503, {"ok": False, "detail": f"failing checks: {', '.join(failing)}", "checks": checks}


def _describe(exc: BaseException) -> str:
    # SQLAlchemy wraps the driver's error; the driver's own message is the useful part.
    cause = getattr(exc, "orig", None) or exc
    return (str(cause).strip() or type(cause).__name__)[:MAX_ERROR_CHARS]


async def run_check(check: Callable[[], None], timeout_s: float = CHECK_TIMEOUT_S) -> CheckResult:
    """Run a blocking check in a worker thread; its exception or timeout is the failure."""
    with anyio.move_on_after(timeout_s):
        try:
            await anyio.to_thread.run_sync(check, abandon_on_cancel=True)
        except Exception as exc:
            return CheckResult(False, _describe(exc))
        return CheckResult(True)
    return CheckResult(False, f"no answer within {timeout_s:g} s")


def _database_check(svc: Services) -> Callable[[], None]:
    def check() -> None:
        with svc.reading() as conn:
            conn.execute(text("SELECT 1"))

    return check


async def health(request: Request) -> Response:
    if request.query_params.get("full", "").strip().lower() in _FALSE:
        return PlainTextResponse("ok")
    svc = services(request)
    checks = {"database": _database_check(svc), "log": svc.backend.check}
    results: dict[str, CheckResult] = {}

    async def run(name: str, check: Callable[[], None]) -> None:
        results[name] = await run_check(check)

    async with anyio.create_task_group() as group:
        for name, check in checks.items():
            group.start_soon(run, name, check)
    status, body = health_report(results)
    return JSONResponse(body, status_code=status)


def routes() -> list[BaseRoute]:
    return [*route("/_health/", health, ["GET"])]
