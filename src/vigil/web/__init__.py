"""The web UI for people (`/ui/`): monitors with their check-in timelines, issues with
their events. Pages are rendered on the server from the management API's own answers
(`subrequest`), so the UI shows exactly what the API serves and needs no data code of
its own; signing in takes an API token, kept in an HTTP-only cookie (`session`)."""
