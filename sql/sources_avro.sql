-- Kafka source tables for Avro records in the Confluent wire format (--format avro): the same
-- tables as sources.sql, read through the Schema Registry at ${schema_registry_url}.

SET 'table.local-time-zone' = 'UTC';
-- Watermarks (why the sources differ; flink_jobs/params.py kafka_reads sets them):
-- * activity partitions are never marked idle. A partition that is only quiet for a while (a broker
--   outage, a stalled producer, a restart on a backlog) must not let the others move the watermark
--   past its records, or windows, rolling state and alerts drop them as late. The price: a partition
--   that never receives data holds every result back (README, Troubleshooting).
-- * the customer and offer tables are quiet by nature (a few changes a day): they go idle after
--   --idle-timeout without records, so they never hold back the temporal joins. While they have
--   records to read (at start, after a restart or an outage) they are not idle and the joins wait
--   for them, so an activity is enriched with every version written before it.

-- Decodes one record with its writer schema (looked up by the id in its header) into JSON text,
-- or names why it cannot: not_avro_wire_format, unknown_schema_id, malformed_avro (flink_udfs/).
-- USING JAR ships the jar with the job to the cluster; the client's own JVM has it on its class
-- path already (flink_jobs/pipeline.py, _prepare_gateway_jvm, says why).
CREATE TEMPORARY SYSTEM FUNCTION avro_decode AS 'io.churnstream.udf.AvroDecode' LANGUAGE JAVA
  USING JAR '${udf_jar}';

-- Activity is read as raw bytes and decoded here rather than by the avro-confluent format, which
-- fails the whole job on a record it cannot decode: such a record becomes a dead letter instead
-- (its payload the record's bytes in base64). Decoded records get the same JSON checks as JSON ones.
-- (avro_decode remembers its last input per thread, so the calls below decode each record once,
-- although the source's watermark generator and the projection after it each call it.)
CREATE TABLE activity_raw (
  record_key      STRING,
  value_bytes     BYTES,
  kafka_partition INT              METADATA FROM 'partition' VIRTUAL,
  kafka_offset    BIGINT           METADATA FROM 'offset' VIRTUAL,
  kafka_ts        TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  payload AS avro_decode(value_bytes, '${schema_registry_url}').payload,
  decode_error AS avro_decode(value_bytes, '${schema_registry_url}').error,
  proc_time AS PROCTIME(),
  -- As in sources.sql: the record's event_time when plausible, else the Kafka timestamp.
  rowtime AS CASE
    WHEN ABS(TIMESTAMPDIFF(SECOND, kafka_ts,
             TO_TIMESTAMP_LTZ(avro_decode(value_bytes, '${schema_registry_url}').event_time, 3)))
         <= ${max_clock_skew_hours} * 3600
    THEN TO_TIMESTAMP_LTZ(avro_decode(value_bytes, '${schema_registry_url}').event_time, 3)
    ELSE kafka_ts
  END,
  WATERMARK FOR rowtime AS rowtime - INTERVAL '${out_of_orderness_seconds}' SECOND
) WITH (
  'connector' = 'kafka',
  -- topic, connection, consumer group, read bounds, raw key and value: flink_jobs/params.py kafka_reads
  ${activity_kafka:options}
);

-- Customers and offers: versioned tables, decoded by Flink's avro-confluent format with the
-- project's schema as reader schema. That format requires the columns to match the schema exactly
-- (NOT NULL, timestamp-millis as TIMESTAMP(3)); transform.sql sees the same columns as with JSON.
CREATE TABLE customers (
  customer_key  STRING,
  customer_id   INT NOT NULL,
  first_name    STRING NOT NULL,
  last_name     STRING NOT NULL,
  email         STRING NOT NULL,
  gender        STRING NOT NULL,
  income        INT NOT NULL,
  fico          INT NOT NULL,
  years_active  INT NOT NULL,
  updated_at    TIMESTAMP(3) NOT NULL,
  valid_from AS CAST(updated_at AS TIMESTAMP_LTZ(3)),
  PRIMARY KEY (customer_key) NOT ENFORCED,
  WATERMARK FOR valid_from AS valid_from
) WITH (
  'connector' = 'upsert-kafka',
  ${customers_kafka:options},
  'value.format' = 'avro-confluent',
  'value.avro-confluent.url' = '${schema_registry_url}',
  'value.avro-confluent.schema' = '${customer_details_schema}'
);

CREATE TABLE offers (
  offer_key        STRING,
  offer_id         INT NOT NULL,
  offer_name       STRING NOT NULL,
  offer_url        STRING NOT NULL,
  product_line     STRING NOT NULL,
  monthly_premium  DOUBLE NOT NULL,
  updated_at       TIMESTAMP(3) NOT NULL,
  valid_from AS CAST(updated_at AS TIMESTAMP_LTZ(3)),
  PRIMARY KEY (offer_key) NOT ENFORCED,
  WATERMARK FOR valid_from AS valid_from
) WITH (
  'connector' = 'upsert-kafka',
  ${offers_kafka:options},
  'value.format' = 'avro-confluent',
  'value.avro-confluent.url' = '${schema_registry_url}',
  'value.avro-confluent.schema' = '${customer_offers_schema}'
);
