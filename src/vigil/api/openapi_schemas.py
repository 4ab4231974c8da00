"""The JSON Schemas of the API's main bodies, for the OpenAPI document's `components`
(`vigil.api.openapi`): what the serializers in `vigil.api.issues` and
`vigil.api.monitors` write, and what the PUT and POST bodies take. Every field listed is
always present in an answer (null where the type says so); Sentry's clients ignore the
fields they do not know, and so may others. A test validates real answers against these,
so a serializer and its schema cannot drift apart unnoticed."""

from __future__ import annotations

from typing import Any, Final

from vigil.api.issues import PUT_STATUS_NAMES
from vigil.issues.enums import PRIORITY_NAMES, SUBSTATUS_NAMES, GroupStatus
from vigil.monitors.enums import CheckInStatus, MonitorStatus, ObjectStatus
from vigil.webhooks.payloads import ACTIONS, FORMATS

Schema = dict[str, Any]

_STR: Final[Schema] = {"type": "string"}
_NSTR: Final[Schema] = {"type": ["string", "null"]}
_BOOL: Final[Schema] = {"type": "boolean"}
_INT: Final[Schema] = {"type": "integer"}
_NINT: Final[Schema] = {"type": ["integer", "null"]}
_DATE: Final[Schema] = {"type": "string", "format": "date-time"}
_NDATE: Final[Schema] = {"type": ["string", "null"], "format": "date-time"}
_OBJ: Final[Schema] = {"type": "object"}
_NULL: Final[Schema] = {"type": "null"}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, Schema], *, optional: tuple[str, ...] = ()) -> Schema:
    """An object with these properties, all present but the `optional` ones."""
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
    }


def _nullable(schema: Schema) -> Schema:
    return {"oneOf": [_NULL, schema]}


_ACTIVITY = _object({"id": _STR, "type": _STR, "data": _OBJ, "dateCreated": _DATE, "user": _NULL})

_ISSUE = _object(
    {
        "id": _STR,
        "shortId": _STR,
        "title": _STR,
        "culprit": _NSTR,
        "level": _STR,
        "status": {"enum": [status.label for status in GroupStatus]},
        "substatus": {"enum": [*SUBSTATUS_NAMES.values(), None]},
        "statusDetails": _OBJ,
        "priority": {"enum": [*PRIORITY_NAMES.values(), None]},
        "priorityLocked": _BOOL,
        "firstSeen": _DATE,
        "lastSeen": _DATE,
        "count": {"type": "string", "description": "times seen, as a string (Sentry's)"},
        "userCount": _INT,
        "numComments": _INT,
        "project": _object({"id": _STR, "slug": _STR, "name": _STR}),
        "platform": _NSTR,
        "type": _STR,
        "issueType": {"type": "string", "description": "the group type's slug"},
        "issueCategory": {"type": ["string", "null"], "description": "cron, performance, …"},
        "metadata": _OBJ,
        "firstRelease": _nullable(_object({"version": _STR, "shortVersion": _STR})),
        "assignedTo": {"type": ["object", "null"]},
        "isBookmarked": _BOOL,
        "isSubscribed": _BOOL,
        "hasSeen": _BOOL,
        "isPublic": _BOOL,
        "shareId": _NULL,
        "logger": _NULL,
        "annotations": {"type": "array"},
    }
)

_EVENT = _object(
    {
        "id": _STR,
        "eventID": _STR,
        "groupID": _NSTR,
        "projectID": _STR,
        "title": _STR,
        "message": _NSTR,
        "culprit": _NSTR,
        "type": _STR,
        "platform": _NSTR,
        "environment": _NSTR,
        "dateCreated": _DATE,
        "dateReceived": _DATE,
        "tags": {"type": "array", "items": _object({"key": _STR, "value": _STR})},
        "user": _nullable(_OBJ),
        "occurrence": {
            **_object(
                {
                    "id": _STR,
                    "eventId": _STR,
                    "fingerprint": {"type": "array", "items": _STR},
                    "issueTitle": _STR,
                    "subtitle": _STR,
                    "evidenceData": _OBJ,
                    "evidenceDisplay": {
                        "type": "array",
                        "items": _object({"name": _STR, "value": {}, "important": _BOOL}),
                    },
                    "type": _INT,
                    "level": _NSTR,
                    "culprit": _NSTR,
                }
            ),
            "description": "the issue occurrence the event was saved for (its stored form, "
            "keys in camelCase)",
        },
    }
)

_CONFIG_FIELDS: Final[dict[str, Schema]] = {
    "schedule_type": {"enum": ["crontab", "interval"]},
    "schedule": {
        "oneOf": [
            {"type": "string", "description": "a crontab"},
            {"type": "array", "description": "[count, unit]", "prefixItems": [_INT, _STR]},
        ]
    },
    "checkin_margin": _NINT,
    "max_runtime": _NINT,
    "timezone": _STR,
    "failure_issue_threshold": _NINT,
    "recovery_threshold": _NINT,
}

_MONITOR_CONFIG = {
    **_object(
        {**_CONFIG_FIELDS, "alert_rule_id": _NINT},
        optional=(
            "checkin_margin",
            "max_runtime",
            "failure_issue_threshold",
            "recovery_threshold",
            "alert_rule_id",
        ),
    ),
    "description": "see docs/crons.md",
}


_MONITOR_ENVIRONMENT = _object(
    {
        "name": _STR,
        "status": {"enum": [status.label for status in MonitorStatus]},
        "isMuted": _BOOL,
        "lastCheckIn": _NDATE,
        "nextCheckIn": _NDATE,
        "nextCheckInLatest": _NDATE,
        "dateCreated": _DATE,
    }
)

_MONITOR = _object(
    {
        "id": _STR,
        "slug": _STR,
        "name": _STR,
        "status": {"enum": [status.label for status in ObjectStatus]},
        "isMuted": _BOOL,
        "config": _nullable(ref("MonitorConfig")),
        "project": _object({"id": _STR, "slug": _STR}),
        "owner": _NULL,
        "dateCreated": _DATE,
        "environments": {"type": "array", "items": ref("MonitorEnvironment")},
    }
)

_CHECK_IN = _object(
    {
        "id": _STR,
        "environment": _STR,
        "status": {"enum": [status.label for status in CheckInStatus]},
        "duration": _NINT,
        "dateCreated": _DATE,
        "dateUpdated": _DATE,
        "expectedTime": _NDATE,
        "monitorConfig": _nullable(ref("MonitorConfig")),
    }
)

_PROCESSING_ERROR = _object(
    {
        "id": _STR,
        "checkin": {"type": "object", "description": "the check-in message as received"},
        "errors": {
            "type": "array",
            "items": {**_object({"type": _INT}), "description": "one error; see docs/crons.md"},
        },
    }
)

_WEBHOOK_ACTIONS: Final[Schema] = {"type": "array", "items": {"enum": list(ACTIONS)}}
_WEBHOOK = _object(
    {
        "id": _STR,
        "url": _STR,
        "format": {"enum": list(FORMATS)},
        "actions": _WEBHOOK_ACTIONS,
        "project": _NSTR,
        "dateCreated": _DATE,
        "deliveries": _object({"pending": _INT, "delivered": _INT, "failed": _INT}),
        "lastError": {**_NSTR, "description": "the latest attempt not delivered: its error"},
        "lastErrorDate": _NDATE,
        "secret": {**_STR, "description": "the signing key; only in the answer to a POST"},
    },
    optional=("secret",),
)
_WEBHOOK_CREATE = {
    "type": "object",
    "properties": {
        "url": _STR,
        "project": {**_STR, "description": "only this project's issues (default: all)"},
        "format": {"enum": list(FORMATS)},
        "actions": {**_WEBHOOK_ACTIONS, "description": "default: all of them"},
    },
    "required": ["url"],
}
_WEBHOOK_DELIVERY = _object(
    {
        "id": _STR,
        "issueId": _STR,
        "action": {"enum": list(ACTIONS)},
        "status": {"enum": ["pending", "delivered", "failed"]},
        "attempts": _INT,
        "responseCode": _NINT,
        "lastError": _NSTR,
        "dateCreated": _DATE,
        "nextAttemptAt": _NDATE,
        "dateDone": _NDATE,
    }
)
_WEBHOOK_TEST = _object({"delivered": _BOOL, "responseCode": _NINT, "error": _NSTR})

_ISSUE_UPDATE = {
    "type": "object",
    "properties": {
        "status": {"enum": list(PUT_STATUS_NAMES)},
        "substatus": {"enum": [*SUBSTATUS_NAMES.values(), None]},
        "statusDetails": {
            "type": "object",
            "properties": {
                "ignoreCount": _INT,
                "ignoreWindow": _INT,
                "ignoreUserCount": _INT,
                "ignoreUserWindow": _INT,
                "ignoreDuration": _INT,
                "ignoreUntil": _DATE,
                "ignoreUntilEscalating": _BOOL,
            },
        },
        "priority": {"enum": ["low", "medium", "high"]},
        "assignedTo": {"type": "null", "description": "null unassigns"},
        "hasSeen": _BOOL,
        "isBookmarked": _BOOL,
    },
}

_MONITOR_CREATE = {
    "type": "object",
    "properties": {
        "project": {"type": ["string", "integer"], "description": "slug or id"},
        "name": _STR,
        "slug": _STR,
        "config": ref("MonitorConfigInput"),
    },
    "required": ["project", "name", "config"],
}

_MONITOR_UPDATE = {
    "type": "object",
    "properties": {
        "name": _STR,
        "slug": _STR,
        "config": ref("MonitorConfigInput"),
        "isMuted": _BOOL,
        "status": {"enum": ["active", "disabled"]},
    },
}

_MONITOR_CONFIG_INPUT = {
    "type": "object",
    "properties": _CONFIG_FIELDS,
    "description": "as the check-in's monitor_config; see docs/crons.md",
}

SCHEMAS: Final[dict[str, Schema]] = {
    "Error": {**_object({"detail": _STR}), "description": "why the request was refused"},
    "FieldErrors": {
        **_object({"detail": _STR}),
        "additionalProperties": {"type": "array", "items": _STR},
        "description": "`detail`, and the reasons by field",
    },
    "Issue": _ISSUE,
    "IssueDetails": {
        "allOf": [
            ref("Issue"),
            _object({"activity": {"type": "array", "items": ref("Activity")}}),
        ]
    },
    "Activity": _ACTIVITY,
    "Event": _EVENT,
    "Monitor": _MONITOR,
    "MonitorEnvironment": _MONITOR_ENVIRONMENT,
    "MonitorConfig": _MONITOR_CONFIG,
    "MonitorConfigInput": _MONITOR_CONFIG_INPUT,
    "CheckIn": _CHECK_IN,
    "ProcessingError": _PROCESSING_ERROR,
    "IssueUpdate": _ISSUE_UPDATE,
    "MonitorCreate": _MONITOR_CREATE,
    "MonitorUpdate": _MONITOR_UPDATE,
    "Webhook": _WEBHOOK,
    "WebhookCreate": _WEBHOOK_CREATE,
    "WebhookDelivery": _WEBHOOK_DELIVERY,
    "WebhookTest": _WEBHOOK_TEST,
}
