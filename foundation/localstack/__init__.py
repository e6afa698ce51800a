"""The local stack: Apache Kafka (KRaft) and Elasticsearch as plain processes, no Docker."""
