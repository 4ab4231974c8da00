"""The errors the pure rules of the issue platform raise. No I/O."""

from __future__ import annotations


class InvalidEventPayloadError(Exception):
    """An `ingest-occurrences` message that cannot be processed as sent: a missing or
    malformed field, an unknown group type, inconsistent ids. The consumer records it
    (dead letter, with this message as the reason) and goes on."""


class EventPayloadValidationError(Exception):
    """The event embedded in an occurrence fails both the current and the legacy event
    schema. Deliberately not an InvalidEventPayloadError nor a ValueError: the reference
    lets this one through unconverted, and callers may want to count it apart.

    Its message is the legacy schema's errors, as the reference raises them;
    `current_errors` are the current schema's, the ones a producer should fix."""

    def __init__(self, legacy_errors: str, current_errors: tuple[str, ...] = ()) -> None:
        super().__init__(legacy_errors)
        self.current_errors = current_errors


class UnsupportedStatusError(NotImplementedError):
    """A status change to a status the status-change path does not handle (for example
    PENDING_DELETION). The reference logs `log_name` and raises NotImplementedError;
    this is that error, carrying the log name so the caller can log it."""

    log_name = "group.update_status.unsupported_status"
