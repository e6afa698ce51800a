-- Kafka source tables for JSON records. Connection options are parameters (see flink_jobs/params.py),
-- never hosts. sources_avro.sql declares the same tables for Avro records (--format avro).

SET 'table.local-time-zone' = 'UTC';

-- The activity payload's fields in one parse (flink_udfs/ParseActivity.java; transform.sql step 1).
-- The job ships its jar (pipeline.jars) and the client has it on its class path.
CREATE TEMPORARY SYSTEM FUNCTION parse_activity AS 'io.churnstream.udf.ParseActivity' LANGUAGE JAVA;
-- Watermarks (flink_jobs/params.py kafka_reads sets the options):
-- * an activity partition that has been silent for --partition-idle-timeout while the other
--   partitions of its reader deliver stops holding the watermark back (connector
--   'kafka-quiet-partitions', flink_udfs/ QuietPartitionIdleness): results wait at most that long
--   for a quiet partition. Unlike Flink's own idle timeout it tells a quiet partition from an
--   outage: a reader silent on every partition (a broker down, a stalled producer) keeps its
--   watermark for --reader-idle-timeout, and its first record afterwards re-arms every partition,
--   so neither the first partition back nor the customer and offer tables can move event time past
--   the backlog. What arrives behind the watermark anyway is a 'late' dead letter (transform.sql
--   step 3b), never dropped without a trace.
-- * the customer and offer tables are quiet by nature (a few changes a day): they go idle after
--   --idle-timeout without records, so they never hold back the temporal joins. While they have
--   records to read (at start, after a restart or an outage) they are not idle and the joins wait
--   for them, so an activity is enriched with every version written before it.

-- Activity is read as raw text plus Kafka metadata, so a bad record becomes a dead letter instead
-- of a failed job; fields are parsed and checked in transform.sql.
CREATE TABLE activity_raw (
  record_key      STRING,
  payload         STRING,
  kafka_partition INT              METADATA FROM 'partition' VIRTUAL,
  kafka_offset    BIGINT           METADATA FROM 'offset' VIRTUAL,
  kafka_ts        TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  -- Set only by the Avro source (a record that cannot be decoded); JSON text is checked in transform.sql.
  decode_error AS CAST(NULL AS STRING),
  -- Arrival order, for duplicate detection (the first copy of an activity id to arrive wins).
  proc_time AS PROCTIME(),
  -- Event time is the payload's event_time when it is plausible, else the Kafka timestamp: a bad
  -- record (future timestamp, garbage) must not push the watermark.
  -- (parse_activity keeps the last payload's fields per thread: the Calc of transform.sql step 1
  -- reuses this parse. A NULL or non-numeric event_time makes the test unknown and falls to ELSE.)
  rowtime AS CASE
    WHEN ABS(TIMESTAMPDIFF(SECOND, kafka_ts, TO_TIMESTAMP_LTZ(TRY_CAST(parse_activity(payload).event_time AS BIGINT), 3)))
         <= ${max_clock_skew_hours} * 3600
    THEN TO_TIMESTAMP_LTZ(TRY_CAST(parse_activity(payload).event_time AS BIGINT), 3)
    ELSE kafka_ts
  END,
  WATERMARK FOR rowtime AS rowtime - INTERVAL '${out_of_orderness_seconds}' SECOND
) WITH (
  'connector' = 'kafka-quiet-partitions',   -- Flink's kafka source, quiet partitions as above (flink_udfs/)
  -- topic, connection, consumer group, read bounds, raw key and value: flink_jobs/params.py kafka_reads
  ${activity_kafka:options}
);

-- Customers and offers are versioned tables: the latest value per key on a compacted topic, with
-- the version's own validity time, so activities are enriched as of their event time.
CREATE TABLE customers (
  customer_key  STRING,
  customer_id   INT,
  first_name    STRING,
  last_name     STRING,
  email         STRING,
  gender        STRING,
  income        INT,
  fico          INT,
  years_active  INT,
  updated_at    BIGINT,
  valid_from AS TO_TIMESTAMP_LTZ(updated_at, 3),
  PRIMARY KEY (customer_key) NOT ENFORCED,
  WATERMARK FOR valid_from AS valid_from
) WITH (
  'connector' = 'upsert-kafka',
  ${customers_kafka:options},
  'value.format' = 'json',
  'value.json.ignore-parse-errors' = 'true'
);

CREATE TABLE offers (
  offer_key        STRING,
  offer_id         INT,
  offer_name       STRING,
  offer_url        STRING,
  product_line     STRING,
  monthly_premium  DOUBLE,
  updated_at       BIGINT,
  valid_from AS TO_TIMESTAMP_LTZ(updated_at, 3),
  PRIMARY KEY (offer_key) NOT ENFORCED,
  WATERMARK FOR valid_from AS valid_from
) WITH (
  'connector' = 'upsert-kafka',
  ${offers_kafka:options},
  'value.format' = 'json',
  'value.json.ignore-parse-errors' = 'true'
);

-- The Avro path has dead letters for customer and offer records that do not decode
-- (sources_avro.sql); here the json format reads them, and transform.sql's dead letters take none.
CREATE TEMPORARY VIEW entity_dead_letters AS
SELECT CAST(NULL AS STRING) AS dead_letter_id, CAST(NULL AS STRING) AS reason, CAST(NULL AS STRING) AS source_topic,
       CAST(NULL AS INT) AS source_partition, CAST(NULL AS BIGINT) AS source_offset,
       CAST(NULL AS TIMESTAMP(3)) AS kafka_time, CAST(NULL AS STRING) AS payload,
       CAST(NULL AS BIGINT) AS late_by_ms
FROM (VALUES (1)) AS nothing (x)
WHERE FALSE;
