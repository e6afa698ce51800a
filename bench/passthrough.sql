-- The ceiling for the job benchmark: the same Kafka source and the same kind of result topic sink
-- (upsert-kafka with the product's result_options, keyed by the activity id), no logic.
-- It writes its own prefix's enriched result topic: a result topic like the pipeline's (same
-- partitions and cleanup policy), which `churnstream index` reads unchanged in the latency runs.
-- No upsert materializer, as in sql/sinks.sql (Flink 2.3 refuses the insert without this or an
-- ON CONFLICT clause, since the key is an expression; 1.20 silently added a materializer).
SET 'table.exec.sink.upsert-materialize' = 'NONE';

CREATE TABLE kafka_passthrough (
  doc_id STRING,
  payload STRING,
  PRIMARY KEY (doc_id) NOT ENFORCED
) WITH (${result_options:options}, 'topic' = '${topic_enriched}');

INSERT INTO kafka_passthrough
SELECT COALESCE(JSON_VALUE(payload, '$.activity_id'), CONCAT('p', CAST(kafka_partition AS STRING), '-', CAST(kafka_offset AS STRING))), payload
FROM activity_raw;
