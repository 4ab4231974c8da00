"""The errors the pure rules of the issue platform raise. No I/O."""

from __future__ import annotations


class InvalidEventPayloadError(Exception):
    """An `ingest-occurrences` message that cannot be processed as sent: a missing or
    malformed field, an unknown group type, inconsistent ids. The consumer records it
    (dead letter, with this message as the reason) and goes on."""


class EventPayloadValidationError(Exception):
    """The event embedded in an occurrence fails both the current and the legacy event
    schema. Deliberately not an InvalidEventPayloadError nor a ValueError: the reference
    lets this one through unconverted, and callers may want to count it apart."""


class UnsupportedStatusError(NotImplementedError):
    """A status change to a status the status-change path does not handle (for example
    PENDING_DELETION). The reference logs `log_name` and raises NotImplementedError;
    this is that error, carrying the log name so the caller can log it."""

    log_name = "group.update_status.unsupported_status"
