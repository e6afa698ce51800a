-- Every sink's rows arrive in order per primary key (the dead letters are only ever inserted), so
-- the planner's upsert materializer before the dead-letter sinks would only keep every dead letter
-- in state, forever.
SET 'table.exec.sink.upsert-materialize' = 'NONE';

-- Sinks: one Kafka result topic per index (foundation/catalog.py); the indexer (indexer/) copies
-- each into Elasticsearch, so the job neither waits for nor fails with Elasticsearch.
-- Every table is keyed by doc_id, the document id it already computes: it becomes the record key
-- (and the indexer's _id), so a replay overwrites instead of duplicating, and compaction keeps one
-- record per id. The key is not repeated in the value (EXCEPT_KEY): the value is the document.
-- At-least-once without transactions: records are readable as soon as Kafka has them, not at the
-- next checkpoint; what a restart writes again carries the same ids.

CREATE TABLE kafka_enriched (
  doc_id STRING,
  activity_id STRING, customer_id INT, offer_id INT, activity_type STRING, channel STRING,
  propensity_to_churn DOUBLE, ip_hash STRING, event_time TIMESTAMP(3), customer_known BOOLEAN,
  email_hash STRING, gender STRING, income INT, fico INT, years_active INT, income_band STRING,
  fico_band STRING, tenure_band STRING, offer_known BOOLEAN, offer_name STRING, offer_url STRING,
  product_line STRING, monthly_premium DOUBLE,
  PRIMARY KEY (doc_id) NOT ENFORCED
) WITH (${result_options:options}, 'topic' = '${topic_enriched}');

CREATE TABLE kafka_segments (
  doc_id STRING,
  window_id STRING, window_start TIMESTAMP(3), window_end TIMESTAMP(3), dimension STRING, segment STRING,
  events BIGINT, avg_propensity DOUBLE, max_propensity DOUBLE, high_risk_share DOUBLE,
  PRIMARY KEY (doc_id) NOT ENFORCED
) WITH (${result_options:options}, 'topic' = '${topic_segments}');

CREATE TABLE kafka_customers (
  doc_id STRING,
  customer_id INT, last_activity_id STRING, last_activity_type STRING, last_activity_time TIMESTAMP(3),
  rolling_propensity DOUBLE, recent_events BIGINT, risk_tier STRING, value_risk_quadrant STRING,
  evaluated_at TIMESTAMP(3), monthly_premium DOUBLE, cltv DOUBLE, value_at_risk DOUBLE, recency_days DOUBLE,
  activities_30d INT, sessions_30d INT, engagement_score DOUBLE, engagement_segment STRING,
  engagement_status STRING, engagement_decile INT, high_risk INT, value_engagement_quadrant STRING,
  PRIMARY KEY (doc_id) NOT ENFORCED
) WITH (${result_options:options}, 'topic' = '${topic_customers}');

CREATE TABLE kafka_inactivity (
  doc_id STRING,
  alert_id STRING, customer_id INT, alert_time TIMESTAMP(3), last_activity_time TIMESTAMP(3),
  last_activity_type STRING, inactive_days DOUBLE, monthly_premium DOUBLE, value_at_risk DOUBLE,
  rolling_propensity DOUBLE, risk_tier STRING,
  PRIMARY KEY (doc_id) NOT ENFORCED
) WITH (${result_options:options}, 'topic' = '${topic_inactivity}');

CREATE TABLE kafka_alerts (
  doc_id STRING,
  alert_id STRING, customer_id INT, alert_time TIMESTAMP(3), previous_propensity DOUBLE, rolling_propensity DOUBLE,
  PRIMARY KEY (doc_id) NOT ENFORCED
) WITH (${result_options:options}, 'topic' = '${topic_alerts}');

CREATE TABLE kafka_sessions (
  doc_id STRING,
  session_id STRING, customer_id INT, session_start TIMESTAMP(3), session_end TIMESTAMP(3),
  duration_seconds INT, events BIGINT, avg_propensity DOUBLE,
  PRIMARY KEY (doc_id) NOT ENFORCED
) WITH (${result_options:options}, 'topic' = '${topic_sessions}');

-- The dead-letter topic keeps the raw payload with its reason, for replay after a fix, and is the
-- dead-letters index's result topic. An upsert table: the duplicate report (transform.sql) is
-- planned as updating.
CREATE TABLE kafka_dead_letters (
  doc_id STRING,
  dead_letter_id STRING, reason STRING, source_topic STRING, source_partition INT, source_offset BIGINT,
  kafka_time TIMESTAMP(3), payload STRING, late_by_ms BIGINT,
  PRIMARY KEY (doc_id) NOT ENFORCED
) WITH (${result_options:options}, 'topic' = '${topic_dead_letters}');
