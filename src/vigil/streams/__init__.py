"""The log: topics, codecs, the embedded log and Kafka behind one interface, and the
consumer runner."""
