"""`POST /api/{project_id}/envelope/` through a real server, on both backends: what real
clients send arrives on `ingest-monitors`, and what is not an envelope is refused with
the status and reason Sentry clients expect."""

from __future__ import annotations

import gzip
import time
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import brotli
import httpx
import orjson
import pytest
import sentry_sdk
from arroyo.backends.kafka import KafkaPayload
from prometheus_client import REGISTRY
from sentry_sdk.crons import capture_checkin
from sqlalchemy import Engine
from starlette.applications import Starlette

from tests.support.live_server import live_server
from tests.support.log_reader import read_messages
from tests.support.services import free_port
from tests.support.tenants import Tenant, make_tenant
from vigil.api.app import create_app
from vigil.config import Settings
from vigil.ingest.check_in_item import routing_key
from vigil.ingest.envelope import count_monitor_environments
from vigil.ingest.monitor_quota import MonitorQuota
from vigil.monitors import store as monitor_store
from vigil.streams.backend import LogBackend
from vigil.streams.codecs import CheckInMessage, decode_monitor_message
from vigil.streams.topics import Topic

MONITORS = Topic.INGEST_MONITORS.value
HOURLY = {"schedule": {"type": "crontab", "value": "0 * * * *"}}


@pytest.fixture
def tenant(engine: Engine) -> Tenant:
    return make_tenant(engine, "acme")


# --- helpers ---------------------------------------------------------------------------


def check_in(slug: str, status: str = "ok", **extra: Any) -> bytes:
    return orjson.dumps(
        {"check_in_id": uuid.uuid4().hex, "monitor_slug": slug, "status": status, **extra}
    )


def envelope(
    *items: tuple[str, bytes], header: dict[str, Any] | None = None, lengths: bool = True
) -> bytes:
    """An envelope of (type, payload) items, with or without `length` item headers."""
    parts = [orjson.dumps(header if header is not None else {})]
    for item_type, payload in items:
        item_header: dict[str, Any] = {"type": item_type}
        if lengths:
            item_header["length"] = len(payload)
        parts += [orjson.dumps(item_header), payload]
    return b"\n".join(parts) + b"\n"


def sdk_auth(tenant: Tenant, client: str = "sentry.python/2.75.0") -> dict[str, str]:
    return {
        "X-Sentry-Auth": (
            f"Sentry sentry_key={tenant.key.public_key}, sentry_version=7, sentry_client={client}"
        )
    }


def post(
    server: str, tenant: Tenant, body: bytes, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.post(
        f"{server}/api/{tenant.project.id}/envelope/",
        content=body,
        headers={**sdk_auth(tenant), **(headers or {})},
        timeout=60,
    )


def decoded(payload: KafkaPayload) -> CheckInMessage:
    message = decode_monitor_message(payload.value)
    assert isinstance(message, CheckInMessage)
    return message


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@contextmanager
def sentry_client(dsn: str, **options: Any) -> Iterator[None]:
    """The real sentry-sdk, configured for `dsn`; flushed and closed at the end."""
    sentry_sdk.init(
        dsn=dsn,
        default_integrations=False,
        auto_enabling_integrations=False,
        release="probe@1.2.3",
        environment="production",
        **options,
    )
    try:
        yield
        sentry_sdk.flush(timeout=60)
    finally:
        sentry_sdk.get_client().close(timeout=60)
        sentry_sdk.init(dsn=None)


# --- what real clients send arrives on the log ----------------------------------------


def test_sdk_check_ins_arrive_on_ingest_monitors_with_routing_key_and_sdk(
    stack: Settings, server: str, tenant: Tenant, log_backend: LogBackend
) -> None:
    before = time.time()
    with sentry_client(tenant.dsn(server)):  # brotli, the SDK's default
        started = capture_checkin(monitor_slug="plain-job", status="in_progress")
        capture_checkin(monitor_slug="plain-job", check_in_id=started, status="ok", duration=1.5)
    with sentry_client(tenant.dsn(server), _experiments={"transport_compression_algo": "gzip"}):
        capture_checkin(monitor_slug="gzip-job", status="error")

    messages = read_messages(stack, log_backend, MONITORS, 3)

    by_status = {orjson.loads(decoded(m).payload)["status"]: m for m in messages}
    assert set(by_status) == {"in_progress", "ok", "error"}
    for status, slug in (("in_progress", "plain-job"), ("ok", "plain-job"), ("error", "gzip-job")):
        raw = by_status[status]
        message = decoded(raw)
        payload = message.payload_json()
        assert payload["monitor_slug"] == slug
        assert payload["environment"] == "production"
        # Normalised at the edge: the SDK's extra fields (release, sdk, timestamp, ...)
        # are dropped and contexts keep only the trace id.
        assert set(payload) <= {
            "check_in_id",
            "monitor_slug",
            "status",
            "environment",
            "duration",
            "contexts",
        }
        assert set(payload["contexts"]) == {"trace"}
        assert set(payload["contexts"]["trace"]) == {"trace_id"}
        assert raw.key == routing_key(tenant.project.id, slug, None)
        assert message.project_id == tenant.project.id
        assert message.sdk == f"sentry.python/{sentry_sdk.VERSION}"
        assert message.retention_days == 90
        assert before <= message.start_time <= time.time()
    assert orjson.loads(decoded(by_status["ok"]).payload)["check_in_id"] == started
    assert orjson.loads(decoded(by_status["ok"]).payload)["duration"] == 1.5


def test_identity_gzip_deflate_and_br_bodies_are_ingested(
    stack: Settings, server: str, tenant: Tenant, log_backend: LogBackend
) -> None:
    encoders = {
        "identity": lambda b: b,
        "gzip": gzip.compress,
        "deflate": zlib.compress,
        "br": brotli.compress,
    }
    for encoding, encode in encoders.items():
        event_id = uuid.uuid4().hex
        body = envelope(("check_in", check_in(f"{encoding}-job")), header={"event_id": event_id})
        response = post(server, tenant, encode(body), {"Content-Encoding": encoding})
        assert (response.status_code, response.json()) == (200, {"id": event_id}), encoding

    # sentry-cli: empty header, no Content-Type, no compression, no item length.
    cli_body = envelope(("check_in", check_in("cli-job", "in_progress")), lengths=False)
    response = post(
        server,
        tenant,
        cli_body,
        {**sdk_auth(tenant, "sentry-cli/x86_64"), "User-Agent": "sentry-cli/3.8.2"},
    )
    assert (response.status_code, response.json()) == (200, {})
    assert "content-type" not in response.request.headers

    messages = [decoded(m) for m in read_messages(stack, log_backend, MONITORS, 5)]
    slugs = {m.payload_json()["monitor_slug"]: m for m in messages}
    assert set(slugs) == {"identity-job", "gzip-job", "deflate-job", "br-job", "cli-job"}
    assert slugs["cli-job"].sdk == "sentry-cli/x86_64"
    assert slugs["cli-job"].payload == orjson.dumps(orjson.loads(cli_body.split(b"\n")[2]))


def test_check_ins_are_normalised_on_the_log_and_invalid_ones_dropped(
    stack: Settings, server: str, tenant: Tenant, log_backend: LogBackend
) -> None:
    check_in_id = uuid.uuid4()
    sent = {
        "check_in_id": str(check_in_id).upper(),
        "monitor_slug": "x" * 80,
        "status": "missed",
        "environment": "staging",
        "duration": "2.5",
        "release": "probe@1.2.3",
        "monitor_config": {
            "schedule": {"type": "interval", "value": "1", "unit": "minute"},
            "checkin_margin": 5,
            "unknown_key": True,
        },
    }
    body = envelope(
        ("check_in", orjson.dumps(sent)),
        ("check_in", orjson.dumps({"monitor_slug": "no-status"})),
    )
    response = post(server, tenant, body)
    assert (response.status_code, response.json()) == (200, {})

    [raw] = read_messages(stack, log_backend, MONITORS, 1)
    assert raw.key == routing_key(tenant.project.id, "x" * 50, "staging")
    assert decoded(raw).payload_json() == {
        "check_in_id": check_in_id.hex,
        "monitor_slug": "x" * 50,
        "status": "unknown",
        "environment": "staging",
        "duration": 2.5,
        "monitor_config": {
            "schedule": {"type": "interval", "value": 1, "unit": "minute"},
            "checkin_margin": 5,
        },
    }


# --- answers ---------------------------------------------------------------------------


def test_answer_is_the_envelope_event_id_or_an_empty_object(server: str, tenant: Tenant) -> None:
    dashed = str(uuid.uuid4())
    with_id = post(
        server, tenant, envelope(("check_in", check_in("a")), header={"event_id": dashed})
    )
    assert with_id.status_code == 200
    assert with_id.headers["content-type"] == "application/json"
    assert with_id.json() == {"id": dashed.replace("-", "")}

    no_items = post(server, tenant, b"{}\n")
    assert (no_items.status_code, no_items.json()) == (200, {})


def test_items_other_than_check_ins_are_accepted_and_counted_as_dropped(
    server: str, tenant: Tenant
) -> None:
    before_event = counter("vigil_envelope_items_dropped_total", item_type="event")
    before_report = counter("vigil_envelope_items_dropped_total", item_type="client_report")
    before_other = counter("vigil_envelope_items_dropped_total", item_type="other")
    event_id = uuid.uuid4().hex
    body = envelope(
        ("event", orjson.dumps({"event_id": event_id, "message": "boom"})),
        ("client_report", orjson.dumps({"timestamp": 1, "discarded_events": []})),
        ("made_up_type", b"{}"),
        header={"event_id": event_id},
    )
    response = post(server, tenant, body)
    assert (response.status_code, response.json()) == (200, {"id": event_id})
    assert counter("vigil_envelope_items_dropped_total", item_type="event") == before_event + 1
    assert (
        counter("vigil_envelope_items_dropped_total", item_type="client_report")
        == before_report + 1
    )
    assert counter("vigil_envelope_items_dropped_total", item_type="other") == before_other + 1


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "not_json"),
        (b"[1, 2]", "not_an_object"),
        (b'{"status": "ok"}', "missing_slug"),
        (b'{"monitor_slug": "", "status": "ok"}', "empty_slug"),
        (b'{"monitor_slug": "a\\u0000", "status": "ok"}', "invalid_slug"),
        (b'{"monitor_slug": "job"}', "missing_status"),
        (
            b'{"monitor_slug": "j", "status": "ok", "monitor_config": {"owner": '
            + b"[" * 300
            + b"]" * 300
            + b"}}",
            "too_deep",
        ),
        (b'{"monitor_slug": "job", "status": "ok", "check_in_id": "x"}', "invalid_check_in_id"),
        (b'{"monitor_slug": "job", "status": "ok", "environment": 1}', "invalid_environment"),
        (
            b'{"monitor_slug": "job", "status": "ok", "environment": "' + b"e" * 65 + b'"}',
            "invalid_environment",
        ),
        (b'{"monitor_slug": "job", "status": "ok", "duration": "x"}', "invalid_duration"),
    ],
)
def test_check_in_items_that_cannot_be_check_ins_are_dropped_and_the_envelope_accepted(
    server: str, tenant: Tenant, payload: bytes, reason: str
) -> None:
    labels = {"item_type": "check_in", "reason": reason}
    before = counter("vigil_envelope_items_invalid_total", **labels)
    response = post(server, tenant, envelope(("check_in", payload)))
    assert (response.status_code, response.json()) == (200, {})
    assert counter("vigil_envelope_items_invalid_total", **labels) == before + 1


@pytest.mark.parametrize(
    ("body", "encoding", "reason"),
    [
        (b"", None, "empty envelope"),
        (b"not json\n", None, "envelope header is not valid JSON"),
        (b"[]\n", None, "envelope header must be a JSON object"),
        (b'{}\n{"length": 2}\n{}\n', None, "item 1 header has no type"),
        (b'{}\n{"type": "check_in", "length": 99}\n{}\n', None, "item 1 declares 99 bytes"),
        (b'{}\n{"type": "check_in", "length": -1}\n{}\n', None, "non-negative integer"),
        (b'{"event_id": "nope"}\n', None, "is not a UUID"),
        (b"not gzip at all", "gzip", "not valid gzip data"),
        (gzip.compress(b"{}\n")[:-6], "gzip", "truncated"),
        (b"garbage", "br", "not valid br data"),
        (b"garbage", "deflate", "not valid deflate data"),
    ],
)
def test_malformed_envelopes_get_400_with_the_reason(
    server: str, tenant: Tenant, body: bytes, encoding: str | None, reason: str
) -> None:
    headers = {"Content-Encoding": encoding} if encoding else {}
    response = post(server, tenant, body, headers)
    assert response.status_code == 400
    assert reason in response.json()["detail"]


def test_unknown_content_encoding_gets_415(server: str, tenant: Tenant) -> None:
    response = post(server, tenant, b"{}\n", {"Content-Encoding": "zstd"})
    assert response.status_code == 415
    assert response.json() == {
        "detail": "unsupported Content-Encoding 'zstd' (supported: gzip, deflate, br)"
    }


# --- a project flooding check-ins (B11) ------------------------------------------------


def add_monitor_environments(engine: Engine, tenant: Tenant, slug: str, *names: str) -> None:
    with engine.begin() as conn:
        ensured = monitor_store.ensure_monitor_with_config(
            conn, tenant.project, slug, HOURLY, monitor_store.no_owners, 10
        )
        assert ensured.monitor is not None
        for name in names:
            monitor_store.ensure_environment(conn, tenant.project, ensured.monitor, name, 10)


def app_with_quota_clock(stack: Settings, engine: Engine, clock: list[float]) -> Starlette:
    """The app, its check-in quota counting the database's environments on `clock[0]`."""
    app = create_app(stack)
    app.state.monitor_quota = MonitorQuota(
        lambda project_id: count_monitor_environments(engine, project_id),
        clock=lambda: clock[0],
    )
    return app


def test_a_project_over_its_check_in_quota_gets_429_for_the_monitor_category_only(
    stack: Settings, engine: Engine, tenant: Tenant, log_backend: LogBackend
) -> None:
    # Two monitor environments in the project: 50 + 6 * 2 check-ins per window. Another
    # project's environment does not count.
    add_monitor_environments(engine, tenant, "job", "production", "staging")
    other = make_tenant(engine, "other-org")
    add_monitor_environments(engine, other, "job", "production")
    clock = [1000.0]
    app = app_with_quota_clock(stack, engine, clock)
    one = envelope(("check_in", check_in("job")))
    with live_server(app) as server, httpx.Client(timeout=60) as client:

        def send(to: Tenant = tenant) -> httpx.Response:
            return client.post(
                f"{server}/api/{to.project.id}/envelope/", content=one, headers=sdk_auth(to)
            )

        for _ in range(62):
            response = send()
            assert (response.status_code, response.json()) == (200, {})
            assert "x-sentry-rate-limits" not in response.headers
        clock[0] += 15.2
        refused = send()
        assert refused.status_code == 429
        assert refused.headers["x-sentry-rate-limits"] == "45:monitor:project"
        assert "retry-after" not in refused.headers
        assert "more check-ins than its quota" in refused.json()["detail"]
        # The crons HTTP endpoint is never refused; another project has its own quota.
        cron = client.get(
            f"{server}/api/{tenant.project.id}/cron/job/{tenant.key.public_key}/",
            params={"status": "ok"},
        )
        assert (cron.status_code, cron.content) == (202, b"")
        assert send(other).status_code == 200
        # The next window admits again.
        clock[0] += 45
        assert send().status_code == 200

    # Everything answered 2xx is on the log, the refused one is not.
    messages = read_messages(stack, log_backend, MONITORS, 65)
    by_project = [decoded(m).project_id for m in messages]
    assert by_project.count(tenant.project.id) == 64
    assert by_project.count(other.project.id) == 1


def test_an_environment_made_in_the_window_counts_before_anything_is_refused(
    stack: Settings, engine: Engine, tenant: Tenant
) -> None:
    # The consumer makes environments in another process; the web counts them again
    # before it refuses (B11: the reference recomputes the limit when one is created).
    add_monitor_environments(engine, tenant, "job", "production")
    clock = [1000.0]
    app = app_with_quota_clock(stack, engine, clock)
    one = envelope(("check_in", check_in("job")))
    with live_server(app) as server, httpx.Client(timeout=60) as client:
        url = f"{server}/api/{tenant.project.id}/envelope/"
        statuses = [
            client.post(url, content=one, headers=sdk_auth(tenant)).status_code for _ in range(56)
        ]
        assert statuses == [200] * 56
        add_monitor_environments(engine, tenant, "job", "staging")
        clock[0] += 2
        statuses = [
            client.post(url, content=one, headers=sdk_auth(tenant)).status_code for _ in range(7)
        ]
        assert statuses == [200] * 6 + [429]


def test_the_real_sdk_holds_back_its_check_ins_after_the_429(
    stack: Settings, engine: Engine, tenant: Tenant, log_backend: LogBackend
) -> None:
    app = create_app(stack)
    app.state.monitor_quota = MonitorQuota(lambda _project_id: 0, clock=lambda: 1000.0)
    route = {"route": "/api/{project_id}/envelope/"}
    refused_before = counter("vigil_http_requests_total", **route, status="429")
    with live_server(app) as server, sentry_client(tenant.dsn(server)):
        for _ in range(55):
            capture_checkin(monitor_slug="flood", status="ok")
    # 50 accepted, the 51st refused, and the SDK sent none of the 4 after it.
    assert counter("vigil_http_requests_total", **route, status="429") == refused_before + 1
    assert len(read_messages(stack, log_backend, MONITORS, 50)) == 50


LIMIT = 64 * 1024


@pytest.fixture
def small_server(stack: Settings) -> Iterator[str]:
    with live_server(create_app(replace(stack, max_message_bytes=LIMIT))) as url:
        yield url


def test_body_over_the_limit_gets_413(small_server: str, tenant: Tenant) -> None:
    body = envelope(("check_in", check_in("big", padding="x" * LIMIT)))
    response = post(small_server, tenant, body)
    assert response.status_code == 413
    assert response.json() == {"detail": f"request body exceeds the limit of {LIMIT} bytes"}


def test_compressed_body_that_inflates_over_the_limit_gets_413(
    small_server: str, tenant: Tenant
) -> None:
    bomb = gzip.compress(envelope(("check_in", check_in("bomb", padding="0" * 50 * LIMIT))))
    assert len(bomb) < LIMIT
    response = post(small_server, tenant, bomb, {"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert response.json() == {
        "detail": f"decompressed request body exceeds the limit of {LIMIT} bytes"
    }


def test_check_in_message_over_the_limit_gets_413(small_server: str, tenant: Tenant) -> None:
    # The body fits; the message (the check-in and its envelope on the log) does not.
    # (A kept field: unknown fields are dropped by the normalisation.)
    payload = check_in("big", monitor_config={"timezone": "x" * (LIMIT - 200)})
    body = envelope(("check_in", payload), lengths=False)
    assert len(body) <= LIMIT
    response = post(small_server, tenant, body)
    assert response.status_code == 413
    assert "exceeds the limit of" in response.json()["detail"]


def test_an_envelope_with_a_check_in_over_the_limit_is_refused_whole(
    stack: Settings, tenant: Tenant, log_backend: LogBackend
) -> None:
    # A small valid check-in, then one whose message is over the limit: the answer is
    # 413 and nothing of the envelope is on the log (sentry-sdk does not resend after a
    # 413, so writing the first would be a partial acceptance the client never learns of).
    quota = MonitorQuota(lambda _project_id: 0, clock=lambda: 1000.0)  # 50 per window
    app = create_app(replace(stack, max_message_bytes=LIMIT))
    app.state.monitor_quota = quota
    before, small, after = check_in("job"), check_in("job"), check_in("job")
    # Without a check_in_id (the normalisation adds one): the message outgrows the
    # body, so the body fits and the second item's message does not.
    unpadded = len(
        orjson.dumps({"monitor_slug": "job", "status": "ok", "monitor_config": {"timezone": ""}})
    )
    timezone = "x" * (LIMIT - 150 - unpadded)
    big = orjson.dumps(
        {"monitor_slug": "job", "status": "ok", "monitor_config": {"timezone": timezone}}
    )
    body = envelope(("check_in", small), ("check_in", big), lengths=False)
    assert len(body) <= LIMIT
    with live_server(app) as server:
        # A first check-in warms the writer up (what follows would be produced on the
        # event loop, as most envelopes are).
        assert post(server, tenant, envelope(("check_in", before))).status_code == 200
        refused = post(server, tenant, body)
        assert refused.status_code == 413
        detail = refused.json()["detail"]
        assert detail.startswith("envelope item 2 (check-in of monitor 'job'): message of ")
        assert f"exceeds the limit of {LIMIT} bytes" in detail
        assert detail.endswith("; nothing of the envelope was accepted")
        assert post(server, tenant, envelope(("check_in", after))).status_code == 200

    # One monitor, one routing key, one partition: its first two messages are the check-ins
    # answered 200, in order; the small one of the refused envelope is not between them.
    messages = read_messages(stack, log_backend, MONITORS, 2)
    ids = [orjson.loads(decoded(m).payload)["check_in_id"] for m in messages]
    assert ids == [orjson.loads(before)["check_in_id"], orjson.loads(after)["check_in_id"]]
    # The refused envelope took nothing of the project's quota: 2 counted, 48 still free.
    assert quota.admit(tenant.project.id, 48) is None
    assert quota.admit(tenant.project.id, 1) is not None


def test_trailing_slash_is_optional(server: str, tenant: Tenant) -> None:
    response = httpx.post(
        f"{server}/api/{tenant.project.id}/envelope",
        content=envelope(("check_in", check_in("no-slash"))),
        headers=sdk_auth(tenant),
    )
    assert (response.status_code, response.json()) == (200, {})


def test_only_the_envelope_path_itself_is_the_envelope_endpoint(
    server: str, tenant: Tenant
) -> None:
    body = envelope(("check_in", check_in("nightly")))
    base = f"{server}/api/{tenant.project.id}/envelope"
    # Another method, a longer path, a non-numeric project: the app's own answers.
    other_method = httpx.get(base + "/", headers=sdk_auth(tenant))
    assert other_method.status_code == 405
    for path in (base + "/extra/", f"{server}/api/app/envelope/", base + "//"):
        answer = httpx.post(path, content=body, headers=sdk_auth(tenant))
        assert answer.status_code == 404, path
        assert "detail" in answer.json()


def test_log_unavailable_gets_503(stack: Settings, engine: Engine, backend_name: str) -> None:
    if backend_name != "kafka":
        pytest.skip("an unreachable broker is a Kafka situation")
    tenant = make_tenant(engine, "acme")
    down = replace(stack, kafka_bootstrap_servers=f"127.0.0.1:{free_port()}")
    with live_server(create_app(down)) as server:
        response = post(server, tenant, envelope(("check_in", check_in("down"))))
    assert response.status_code == 503
    assert response.json() == {"detail": "the log is unavailable; retry later"}
