"""The embedded log: a durable, partitioned log in one SQLite file, behind arroyo's
consumer and producer interfaces, for deployments without Kafka.

`storage` holds the file format, `producer` and `consumer` the arroyo interfaces,
`leases` group membership, `trimming` deletion of what every group has read, and
`backend` the `LogBackend` that ties them together.
"""
