"""Cron monitors: the pure rules (enums, config validation, schedules, slugs, failure
reasons) and, built on them, the check-in consumer and the clock."""
