"""vigil: a self-hosted, Sentry-compatible backend for cron monitoring and issue ingestion."""

__version__ = "0.1.0"
