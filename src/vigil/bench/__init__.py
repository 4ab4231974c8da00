"""`vigil bench`: how fast this machine runs vigil, end to end, each figure beside a
baseline measured in the same run (see BENCHMARKS.md). Each benchmark runs real `vigil`
processes in a temporary home of its own, or on an empty PostgreSQL database and a
Kafka cluster it is given."""


class BenchError(Exception):
    """A benchmark could not run (a process that failed, a database already in use)."""
