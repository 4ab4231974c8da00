"""The issue platform: occurrences and status changes become issues.

The modules here so far are its functional core (no I/O): `enums`, `group_types`,
`fingerprint`, `occurrence`, `event_data`, `status_change_message`, `messages`,
`status_change`, `batching`, `grouping`, `quota`; `produce` writes occurrences and
status changes to the log (`produce_occurrence`, `produce_status_change`, exported here).
"""

from vigil.issues.produce import produce_occurrence, produce_status_change

__all__ = ["produce_occurrence", "produce_status_change"]
