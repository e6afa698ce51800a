-- Kafka source tables for Avro records in the Confluent wire format (--format avro): the same
-- tables as sources.sql, read through the Schema Registry at ${schema_registry_url}.

SET 'table.local-time-zone' = 'UTC';
-- Watermarks: as in sources.sql (why, there).

-- Decodes one record with its writer schema (looked up by the id in its header) into JSON text,
-- or names why it cannot: not_avro_wire_format, unknown_schema_id, malformed_avro (flink_udfs/).
-- USING JAR ships the jar with the job to the cluster; the client's own JVM has it on its class
-- path already (flink_jobs/pipeline.py, _prepare_gateway_jvm, says why).
CREATE TEMPORARY SYSTEM FUNCTION avro_decode AS 'io.churnstream.udf.AvroDecode' LANGUAGE JAVA
  USING JAR '${udf_jar}';
-- The decoded payload's fields in one parse (transform.sql step 1), as in sources.sql.
CREATE TEMPORARY SYSTEM FUNCTION parse_activity AS 'io.churnstream.udf.ParseActivity' LANGUAGE JAVA;

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
  'connector' = 'kafka-quiet-partitions',   -- as in sources.sql
  -- topic, connection, consumer group, read bounds, raw key and value: flink_jobs/params.py kafka_reads
  ${activity_kafka:options}
);

-- Customers and offers are read as raw bytes and decoded by avro_decode too: a record that does not
-- decode becomes a dead letter (entity_dead_letters, with its reason and bytes) and leaves the
-- customer's or offer's current version as it was, where Flink's avro-confluent format would fail
-- the job on it again and again. Each table is then the newest valid version per key as of its
-- validity time: a versioned view (a deduplication on the validity time), which the temporal joins
-- read as they read the JSON path's upsert tables. A tombstone (a null value) is skipped here; the
-- JSON path's upsert table deletes the key. valid_from must never be NULL (it is the rowtime): a
-- record without updated_at has its Kafka timestamp, and is a dead letter anyway.
CREATE TABLE customers_raw (
  customer_key    STRING,
  value_bytes     BYTES,
  kafka_partition INT              METADATA FROM 'partition' VIRTUAL,
  kafka_offset    BIGINT           METADATA FROM 'offset' VIRTUAL,
  kafka_ts        TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  payload AS avro_decode(value_bytes, '${schema_registry_url}').payload,
  decode_error AS avro_decode(value_bytes, '${schema_registry_url}').error,
  valid_from AS COALESCE(TO_TIMESTAMP_LTZ(TRY_CAST(JSON_VALUE(
    avro_decode(value_bytes, '${schema_registry_url}').payload, '$.updated_at') AS BIGINT), 3), kafka_ts),
  WATERMARK FOR valid_from AS valid_from
) WITH (
  'connector' = 'kafka',
  ${customers_kafka:options},
  'scan.startup.mode' = 'earliest-offset',
  'key.fields' = 'customer_key',
  'value.format' = 'raw'
);

CREATE TABLE offers_raw (
  offer_key       STRING,
  value_bytes     BYTES,
  kafka_partition INT              METADATA FROM 'partition' VIRTUAL,
  kafka_offset    BIGINT           METADATA FROM 'offset' VIRTUAL,
  kafka_ts        TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  payload AS avro_decode(value_bytes, '${schema_registry_url}').payload,
  decode_error AS avro_decode(value_bytes, '${schema_registry_url}').error,
  valid_from AS COALESCE(TO_TIMESTAMP_LTZ(TRY_CAST(JSON_VALUE(
    avro_decode(value_bytes, '${schema_registry_url}').payload, '$.updated_at') AS BIGINT), 3), kafka_ts),
  WATERMARK FOR valid_from AS valid_from
) WITH (
  'connector' = 'kafka',
  ${offers_kafka:options},
  'scan.startup.mode' = 'earliest-offset',
  'key.fields' = 'offer_key',
  'value.format' = 'raw'
);

CREATE TEMPORARY VIEW customers AS
SELECT customer_key, customer_id, first_name, last_name, email, gender, income, fico, years_active, updated_at,
       valid_from
FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY customer_key ORDER BY valid_from DESC) AS version_rank
  FROM (
    SELECT customer_key,
      TRY_CAST(JSON_VALUE(payload, '$.customer_id') AS INT)     AS customer_id,
      JSON_VALUE(payload, '$.first_name')                       AS first_name,
      JSON_VALUE(payload, '$.last_name')                        AS last_name,
      JSON_VALUE(payload, '$.email')                            AS email,
      JSON_VALUE(payload, '$.gender')                           AS gender,
      TRY_CAST(JSON_VALUE(payload, '$.income') AS INT)          AS income,
      TRY_CAST(JSON_VALUE(payload, '$.fico') AS INT)            AS fico,
      TRY_CAST(JSON_VALUE(payload, '$.years_active') AS INT)    AS years_active,
      TRY_CAST(JSON_VALUE(payload, '$.updated_at') AS BIGINT)   AS updated_at,
      valid_from
    FROM customers_raw
    WHERE decode_error IS NULL AND payload IS NOT NULL
  )
)
WHERE version_rank = 1;

CREATE TEMPORARY VIEW offers AS
SELECT offer_key, offer_id, offer_name, offer_url, product_line, monthly_premium, updated_at, valid_from
FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY offer_key ORDER BY valid_from DESC) AS version_rank
  FROM (
    SELECT offer_key,
      TRY_CAST(JSON_VALUE(payload, '$.offer_id') AS INT)           AS offer_id,
      JSON_VALUE(payload, '$.offer_name')                          AS offer_name,
      JSON_VALUE(payload, '$.offer_url')                           AS offer_url,
      JSON_VALUE(payload, '$.product_line')                        AS product_line,
      TRY_CAST(JSON_VALUE(payload, '$.monthly_premium') AS DOUBLE) AS monthly_premium,
      TRY_CAST(JSON_VALUE(payload, '$.updated_at') AS BIGINT)      AS updated_at,
      valid_from
    FROM offers_raw
    WHERE decode_error IS NULL AND payload IS NOT NULL
  )
)
WHERE version_rank = 1;

-- Customer and offer records that do not decode (an empty value too; a tombstone is no error).
CREATE TEMPORARY VIEW entity_dead_letters AS
SELECT CONCAT('${topic_customer_details}', '-', CAST(kafka_partition AS STRING), '-', CAST(kafka_offset AS STRING))
         AS dead_letter_id,
       COALESCE(decode_error, 'empty_payload') AS reason, '${topic_customer_details}' AS source_topic,
       kafka_partition AS source_partition, kafka_offset AS source_offset,
       CAST(kafka_ts AS TIMESTAMP(3)) AS kafka_time, payload, CAST(NULL AS BIGINT) AS late_by_ms
FROM customers_raw
WHERE decode_error IS NOT NULL OR (value_bytes IS NOT NULL AND payload IS NULL)
UNION ALL
SELECT CONCAT('${topic_customer_offers}', '-', CAST(kafka_partition AS STRING), '-', CAST(kafka_offset AS STRING)),
       COALESCE(decode_error, 'empty_payload'), '${topic_customer_offers}',
       kafka_partition, kafka_offset, CAST(kafka_ts AS TIMESTAMP(3)), payload, CAST(NULL AS BIGINT)
FROM offers_raw
WHERE decode_error IS NOT NULL OR (value_bytes IS NOT NULL AND payload IS NULL);
