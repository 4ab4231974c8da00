"""Sentry-compatible ingest: DSN key auth, envelopes, and what their items become."""
