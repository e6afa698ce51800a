-- Every sink's rows arrive in order per primary key (the dead letters are only ever inserted), so
-- the planner's upsert materializer before the dead-letter sinks would only keep every dead letter
-- in state, forever.
SET 'table.exec.sink.upsert-materialize' = 'NONE';

-- Sinks. Every Elasticsearch table has a primary key: it becomes the document id, so a replay
-- overwrites instead of duplicating. Bulk flushes are small and frequent for low latency, and the
-- sink flushes on every checkpoint (at-least-once + idempotent ids = effectively exactly-once).

CREATE TABLE es_enriched (
  activity_id STRING, customer_id INT, offer_id INT, activity_type STRING, channel STRING,
  propensity_to_churn DOUBLE, ip_hash STRING, event_time TIMESTAMP(3), customer_known BOOLEAN,
  email_hash STRING, gender STRING, income INT, fico INT, years_active INT, income_band STRING,
  fico_band STRING, tenure_band STRING, offer_known BOOLEAN, offer_name STRING, offer_url STRING,
  product_line STRING, monthly_premium DOUBLE,
  PRIMARY KEY (activity_id) NOT ENFORCED
) WITH (${es_options:options}, 'index' = '${index_enriched}');

CREATE TABLE es_segments (
  window_id STRING, window_start TIMESTAMP(3), window_end TIMESTAMP(3), dimension STRING, segment STRING,
  events BIGINT, avg_propensity DOUBLE, max_propensity DOUBLE, high_risk_share DOUBLE,
  PRIMARY KEY (window_id) NOT ENFORCED
) WITH (${es_options:options}, 'index' = '${index_segments}');

CREATE TABLE es_customers (
  customer_id INT, last_activity_id STRING, last_activity_type STRING, last_activity_time TIMESTAMP(3),
  rolling_propensity DOUBLE, recent_events BIGINT, risk_tier STRING, value_risk_quadrant STRING,
  PRIMARY KEY (customer_id) NOT ENFORCED
) WITH (${es_options:options}, 'index' = '${index_customers}');

CREATE TABLE es_alerts (
  alert_id STRING, customer_id INT, alert_time TIMESTAMP(3), previous_propensity DOUBLE, rolling_propensity DOUBLE,
  PRIMARY KEY (alert_id) NOT ENFORCED
) WITH (${es_options:options}, 'index' = '${index_alerts}');

CREATE TABLE es_sessions (
  session_id STRING, customer_id INT, session_start TIMESTAMP(3), session_end TIMESTAMP(3),
  duration_seconds INT, events BIGINT, avg_propensity DOUBLE,
  PRIMARY KEY (session_id) NOT ENFORCED
) WITH (${es_options:options}, 'index' = '${index_sessions}');

CREATE TABLE es_dead_letters (
  dead_letter_id STRING, reason STRING, source_topic STRING, source_partition INT, source_offset BIGINT,
  kafka_time TIMESTAMP(3), payload STRING,
  PRIMARY KEY (dead_letter_id) NOT ENFORCED
) WITH (${es_options:options}, 'index' = '${index_dead_letters}');

-- The dead-letter topic keeps the raw payload with its reason for replay after a fix. Keyed by
-- dead-letter id, as an upsert table: the duplicate report (transform.sql) is planned as updating.
CREATE TABLE kafka_dead_letters (
  dead_letter_id STRING, reason STRING, source_topic STRING, source_partition INT, source_offset BIGINT,
  kafka_time TIMESTAMP(3), payload STRING,
  PRIMARY KEY (dead_letter_id) NOT ENFORCED
) WITH (
  'connector' = 'upsert-kafka',
  'topic' = '${topic_dead_letters}',
  ${kafka_properties:options},
  'key.format' = 'raw',
  'value.format' = 'json',
  'value.json.timestamp-format.standard' = 'ISO-8601',
  'sink.delivery-guarantee' = 'at-least-once'
);
