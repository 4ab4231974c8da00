"""`POST /api/0/projects/{org}/{project}/occurrences/`: occurrences and status changes
over HTTP, for detectors that don't speak Kafka.

The body is one `ingest-occurrences` message as on the topic (spec A2): an occurrence
(`payload_type` "occurrence" or absent) or a status change (`payload_type`
"status_change"). It is validated before it is accepted, with the consumer's own
normalisers, so a 202 means the consumer will not reject it for its shape:

- `project_id` may be left out: the project of the path fills it in (in the embedded
  `event` too). When given, it must be that project's id (400 otherwise), so a token
  of one organization cannot write into another's projects.
- a status change may leave out `id` (a fresh uuid4 hex is used, as the reference's
  producer makes one); a combination of status and substatus that can never be applied
  (e.g. resolved with a substatus, ignored without one) is a 400 with the reference's
  reason, instead of a message the consumer would only log.
- an occurrence of a type that is not released needs the organization's
  `organizations:<type-slug-with-dashes>-ingest` feature: without it, 400 (the consumer
  would drop it with only a metric).
- a priority (`initial_issue_priority`, or `priority`) must be one an issue can have:
  25 (low), 50 (medium) or 75 (high).
- what depends on the issue's state (assignee, the group's current status) is the
  consumer's business, as for messages produced to the log directly.

The accepted message is written to `ingest-occurrences` as sent (fingerprint parts
unhashed, `project_id` and a status change's `id` filled in), keyed
`"{fingerprint[0]}-{project_id}"`, and the answer is `202 {"id": <message id>}` (the
occurrence id as 32 hex digits, or the status change's id) once the log acknowledged it.
Errors: 400 with the field errors (`{"detail": reason, "<field>": [reason]}`), 400 for a
body that is not a JSON object, 413 for a body over `max_message_bytes`, 503 when the
log is unavailable. Needs `project:write` (or `org:write`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Final

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from vigil.api.auth import authorize
from vigil.api.http import decoded, json_object, read_body, route
from vigil.api.services import services
from vigil.ingest.log_writer import KeyedValue, LogWriter, write_for_client
from vigil.issues.enums import GroupStatus, GroupSubStatus, PayloadType, PriorityLevel
from vigil.issues.errors import (
    EventPayloadValidationError,
    InvalidEventPayloadError,
    UnsupportedStatusError,
)
from vigil.issues.group_types import ingest_feature, may_ingest
from vigil.issues.messages import message_key, payload_type_of
from vigil.issues.occurrence import no_assignees, normalise_occurrence
from vigil.issues.occurrence_processing import (
    check_embedded_event,
    check_nesting,
    check_storable,
)
from vigil.issues.projects import load_project
from vigil.issues.status_change import NoChange, decide
from vigil.issues.status_change_message import normalise_status_change
from vigil.streams.codecs import encode_json
from vigil.tenancy import store as tenancy

WRITE: Final = ("project:write", "org:write")
OCCURRENCES = "/api/0/projects/{organization_slug}/{project_slug}/occurrences/"
NON_FIELD: Final = "non_field_errors"

_FIELDS: Final = frozenset(
    {
        "payload_type",
        "id",
        "project_id",
        "event_id",
        "fingerprint",
        "issue_title",
        "subtitle",
        "type",
        "detection_time",
        "resource_id",
        "evidence_data",
        "evidence_display",
        "level",
        "culprit",
        "initial_issue_priority",
        "priority",
        "assignee",
        "event",
        "new_status",
        "new_substatus",
    }
)


class PayloadError(Exception):
    """A 400 naming the field at fault."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason

    def response(self) -> JSONResponse:
        return JSONResponse({"detail": self.reason, self.field: [self.reason]}, status_code=400)


def field_of(reason: str) -> str:
    """The payload field a normaliser's reason is about (its first word, or the field
    named after "Missing required field:"), else `non_field_errors`."""
    if reason.startswith("Missing required field: "):
        return reason.removeprefix("Missing required field: ")
    if reason.startswith("No group type with the id"):
        return "type"
    if reason.startswith("Payload must contain"):
        return "event_id"
    first = reason.split(" ", 1)[0].split("[", 1)[0].split(".", 1)[0]
    return first if first in _FIELDS else NON_FIELD


def prepare(
    payload: dict[str, Any],
    project_id: int,
    now: datetime,
    features: frozenset[str] = frozenset(),
) -> tuple[dict[str, Any], str, bytes | None]:
    """The message to write for a payload posted to project `project_id` (whose
    organization has `features`): the payload with `project_id` (and a status change's
    `id`) filled in, its id, and its key. PayloadError for anything the consumer would
    reject for its shape, or drop for a type the organization may not ingest."""
    kind = payload_type_of(payload)
    if kind is None:
        raise PayloadError(
            "payload_type",
            f"payload_type must be 'occurrence' or 'status_change', not "
            f"{payload.get('payload_type')!r}",
        )
    message = dict(payload)
    if "payload_type" in message and message["payload_type"] is None:
        # An occurrence, as `payload_type_of` reads it; the consumer, as the reference
        # does, would drop a message whose payload_type is null.
        del message["payload_type"]
    given = message.setdefault("project_id", project_id)
    if given != project_id:
        raise PayloadError(
            "project_id", f"project_id {given!r} is not the id of this project ({project_id})"
        )
    try:
        if kind == PayloadType.STATUS_CHANGE:
            message.setdefault("id", uuid.uuid4().hex)
            change = normalise_status_change(message)
            _check_status(change.new_status, change.new_substatus)
            message_id = change.id
        else:
            event = message.get("event")
            if isinstance(event, dict) and "project_id" not in event:
                message["event"] = {**event, "project_id": project_id}
            # Every check the consumer makes of the message's shape alone, so that what it
            # would dead-letter is a 400 here.
            check_nesting(message)
            normalised = normalise_occurrence(message, resolve_assignee=no_assignees, now=now)
            check_storable(normalised.occurrence)
            _check_priority(message, normalised.occurrence.initial_issue_priority)
            check_embedded_event(normalised, project_id, now)
            message_id = normalised.occurrence.id
            group_type = normalised.occurrence.type
            if not may_ingest(group_type, features):
                raise PayloadError(
                    "type",
                    f"issue type {group_type.slug} ({group_type.type_id}) is not released: "
                    f"the organization needs the feature {ingest_feature(group_type)}",
                )
    # OverflowError: a number too large for a float (detection_time, the event's
    # timestamp), which the consumer would reject too.
    except (InvalidEventPayloadError, ValueError, OverflowError) as exc:
        raise PayloadError(field_of(str(exc)), str(exc)) from None
    except EventPayloadValidationError as exc:
        # The current schema's reasons: the legacy schema's (the consumer's log line)
        # would send a producer after fields that are fine.
        reasons = "; ".join(exc.current_errors) or str(exc)
        raise PayloadError("event", f"event is not a valid event: {reasons}") from None
    return message, message_id, message_key(message["fingerprint"], project_id)


_PRIORITIES: Final = (PriorityLevel.LOW, PriorityLevel.MEDIUM, PriorityLevel.HIGH)


def _check_priority(message: dict[str, Any], priority: int | None) -> None:
    """A priority an issue can have (the consumer keeps any number, as the reference
    does, and the issue would show none): low, medium or high."""
    if priority is not None and priority not in _PRIORITIES:
        field = "initial_issue_priority" if "initial_issue_priority" in message else "priority"
        choices = ", ".join(f"{int(p)} ({p.label})" for p in _PRIORITIES)
        raise PayloadError(field, f"{field} must be one of {choices}, not {priority}")


def _check_status(new_status: int, new_substatus: int | None) -> None:
    """A status change that no group could ever take is refused (the reasons are the
    consumer's log names)."""
    if new_status not in set(GroupStatus):
        raise PayloadError("new_status", f"new_status {new_status} is not a group status")
    if new_substatus is not None and new_substatus not in set(GroupSubStatus):
        raise PayloadError(
            "new_substatus", f"new_substatus {new_substatus} is not a group substatus"
        )
    try:
        # A current state no request equals, so only the combination itself is judged.
        decision = decide(
            -1,
            None,
            new_status,
            new_substatus,
            priority_locked=True,
            initial_priority=None,
            current_priority=None,
        )
    except UnsupportedStatusError:
        raise PayloadError(
            "new_status", f"{UnsupportedStatusError.log_name}: status {new_status}"
        ) from None
    if isinstance(decision, NoChange) and decision.log_name is not None:
        raise PayloadError("new_substatus", decision.log_name)


async def post_occurrence(request: Request) -> Response:
    svc = services(request)
    # NULs are the validation's to judge, field by field (evidence may hold one).
    limit = svc.settings.max_message_bytes
    raw = decoded(request, await read_body(request, limit), limit)
    if not raw.strip():
        raise HTTPException(
            400, "the request has no body: send one occurrence or status change as JSON"
        )
    body = json_object(raw, refuse_nul=False)

    def accept() -> tuple[dict[str, Any], str, bytes | None, int] | PayloadError:
        with svc.reading() as conn:
            header = request.headers.get("authorization")
            access = authorize(conn, header, request.path_params["organization_slug"], WRITE)
            slug = request.path_params["project_slug"]
            try:
                project = tenancy.get_project(conn, access.organization, slug)
            except tenancy.NotFound:
                raise HTTPException(404, f"project {slug!r} does not exist") from None
            features = load_project(conn, project.id).features
        try:
            return (*prepare(body, project.id, datetime.now(UTC), features), project.id)
        except PayloadError as exc:
            return exc

    accepted = await run_in_threadpool(accept)
    if isinstance(accepted, PayloadError):
        return accepted.response()
    message, message_id, key, project_id = accepted
    writer: LogWriter = request.state.occurrence_log
    written = [KeyedValue(key, encode_json(message))]
    await write_for_client(writer, written, what="occurrence", project_id=project_id)
    return JSONResponse({"id": message_id}, status_code=202)


def routes() -> list[BaseRoute]:
    return [*route(OCCURRENCES, post_occurrence, ["POST"])]
