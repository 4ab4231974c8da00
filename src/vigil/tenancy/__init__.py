"""Organizations, projects, DSN keys, API tokens and per-organization features."""
