"""The issue platform: occurrences and status changes become issues.

The modules here so far are its functional core (no I/O): `enums`, `group_types`,
`fingerprint`, `occurrence`, `event_data`, `status_change_message`, `messages`,
`status_change`, `batching`, `grouping`, `quota`.
"""
