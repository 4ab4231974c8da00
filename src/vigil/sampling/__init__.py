"""Custom dynamic-sampling rules ("investigation" rules): a query and a set of projects
whose transactions are sampled at a raised rate for a while.

- `condition_hash` — the rule's identity (pure);
- `query` — a search query turned into a rule condition (pure);
- `period` — "1h", "2d", "30m" turned into a duration (pure);
- `rules` — the store: create or extend, look up, limits, deactivation.
"""
