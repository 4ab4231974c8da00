"""Storage: tables, the engine (the one place that knows SQLite from PostgreSQL), migrations."""
