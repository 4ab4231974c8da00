"""The web app: its assembly, the management API under `/api/0/`, health and metrics."""
