"""Issue webhooks: an organization's issues being created, resolved, unresolved
(regressions included) or archived, POSTed to the URLs it registered, in the shape of
Sentry's integration-platform issue webhooks or as Slack messages.

- `payloads`: what is sent (pure);
- `store`: the webhooks and their deliveries in the database;
- `delivery`: one HTTP POST and what its outcome means for retrying;
- `dispatcher`: `vigil periodic`'s job that finds the changes and sends them.
"""
