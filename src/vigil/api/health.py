"""`/_health/`: liveness, and with `?full=1` readiness of the database and the log.

- `GET /_health/` answers 200 `ok` without any I/O: the process serves requests.
- `GET /_health/?full=1` runs every check at once, each bounded by `CHECK_TIMEOUT_S`,
  and answers 200 with a per-check report, or 503 with the same report and a `detail`
  naming the failing checks.
- `&clock=1` (implies `full=1`) adds `crons_clock`: failing while the crons clock's last
  tick is more than `clock_max_lag` seconds (default `CLOCK_MAX_LAG_S`) behind, i.e.
  while missed and timed-out runs are not being detected: for an outside uptime
  checker watching vigil itself. Not part of `full=1` alone, which load balancers use:
  a stalled clock must not take the web replicas that ingest check-ins out of service.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.to_thread
from sqlalchemy import text
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute

from vigil.api.http import route
from vigil.api.paging import format_date
from vigil.api.services import Services, services
from vigil.monitors import clock_store

CHECK_TIMEOUT_S = 10.0
# The clock ticks once a minute (by message time, or by wall time while the log is
# idle): a minute and a half late, and then some, is a clock that stopped.
CLOCK_MAX_LAG_S = 180.0
MAX_CLOCK_MAX_LAG_S = 7 * 24 * 3600.0
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


def clock_problem(last_tick: datetime | None, now: datetime, max_lag_s: float) -> str | None:
    """What is wrong with a crons clock last ticked at `last_tick`, or None."""
    if last_tick is None:
        return (
            "the crons clock has not ticked yet: missed and timed-out runs are detected "
            "only while `vigil periodic` and `vigil consumer monitors-clock-tick` run "
            "(both part of `vigil serve`)"
        )
    lag = (now - last_tick).total_seconds()
    if lag <= max_lag_s:
        return None
    return (
        f"the crons clock's last tick ({format_date(last_tick)}) is {lag:.0f} s behind "
        f"(more than {max_lag_s:g} s): missed and timed-out runs are not being detected; "
        "are `vigil periodic` and `vigil consumer monitors-clock-tick` running and keeping up?"
    )


class ClockStalled(Exception):
    pass


def _clock_check(svc: Services, max_lag_s: float) -> Callable[[], None]:
    def check() -> None:
        with svc.reading() as conn:
            status = clock_store.clock_status(conn)
        problem = clock_problem(status.last_tick, datetime.now(UTC), max_lag_s)
        if problem is not None:
            raise ClockStalled(problem)

    return check


def _max_lag(request: Request) -> float:
    raw = request.query_params.get("clock_max_lag")
    if raw is None:
        return CLOCK_MAX_LAG_S
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value <= MAX_CLOCK_MAX_LAG_S:
        raise HTTPException(
            400, f"clock_max_lag: a number of seconds, above 0 and at most {MAX_CLOCK_MAX_LAG_S:g}"
        )
    return value


def _database_check(svc: Services) -> Callable[[], None]:
    def check() -> None:
        with svc.reading() as conn:
            conn.execute(text("SELECT 1"))

    return check


def _asked(request: Request, name: str) -> bool:
    return request.query_params.get(name, "").strip().lower() not in _FALSE


async def health(request: Request) -> Response:
    clock = _asked(request, "clock")
    if not clock and not _asked(request, "full"):
        return PlainTextResponse("ok")
    svc = services(request)
    checks = {"database": _database_check(svc), "log": svc.backend.check}
    if clock:
        checks["crons_clock"] = _clock_check(svc, _max_lag(request))
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
