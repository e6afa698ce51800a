-- The ceiling for the job benchmark: the same Kafka source and Elasticsearch sink, no logic.
CREATE TABLE es_passthrough (
  activity_id STRING,
  payload STRING,
  PRIMARY KEY (activity_id) NOT ENFORCED
) WITH (${es_options:options}, 'index' = '${index_passthrough}');

INSERT INTO es_passthrough
SELECT COALESCE(JSON_VALUE(payload, '$.activity_id'), CONCAT('p', CAST(kafka_partition AS STRING), '-', CAST(kafka_offset AS STRING))), payload
FROM activity_raw;
