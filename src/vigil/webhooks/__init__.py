"""Issue webhooks: an organization's issues being created, resolved, unresolved
(regressions included) or archived, POSTed to the URLs it registered, in the shape of
Sentry's integration-platform issue webhooks, as Slack messages or by email.

- `payloads`: what is sent (pure);
- `store`: the webhooks and their deliveries in the database;
- `delivery`: one HTTP POST and what its outcome means for retrying;
- `mail`: one email through the SMTP relay;
- `sender`: a body to a webhook, by POST or email; the test notification;
- `dispatcher`: `vigil periodic`'s job that finds the changes and sends them.
"""
