-- Transformations only: no connectors here, so tests can run them on literal rows.
-- Inputs: activity_raw (raw payload as JSON text, decode_error, Kafka metadata, rowtime), customers,
-- offers (versioned), entity_dead_letters (customer/offer records that did not decode).
-- Functions (Java, flink_udfs/, registered by the job): pseudonymise(STRING) -> STRING, a keyed
-- hash (the key never appears in SQL, plans or logs); parse_activity(STRING) -> ROW, the payload's
-- fields in one parse; customer_engagement(TABLE ...), a process table function with state and
-- timers (step 8).

-- 1. Parse once. JSON_VALUE parses the payload again on every call, and the planner inlines a
-- view's expressions wherever the next view references them (the checks below would parse ~30
-- times). parse_activity (flink_udfs/ParseActivity.java) parses it once and gives each field as
-- JSON_VALUE would, and IS JSON OBJECT; UNNEST of a one-element array is a boundary the planner does
-- not merge across, so it is called once per record.
CREATE TEMPORARY VIEW activity_parsed AS
SELECT
  r.record_key, r.payload, r.decode_error, r.kafka_partition, r.kafka_offset, r.kafka_ts, r.rowtime, r.proc_time,
  p.is_json, p.activity_id, p.customer_id_text, p.offer_id_text, p.activity_type, p.channel,
  p.propensity_text, p.ip_address, p.event_time_text
FROM activity_raw AS r
CROSS JOIN UNNEST(ARRAY[parse_activity(r.payload)]) AS p (is_json, activity_id, customer_id_text, offer_id_text,
                                                      activity_type, channel, propensity_text, ip_address,
                                                      event_time_text);

-- 2. Check. The first failing rule names the reason; NULL means valid.
CREATE TEMPORARY VIEW activity_checked AS
SELECT *,
  CASE
    -- Avro records that could not be decoded (sources_avro.sql); always NULL for JSON.
    WHEN decode_error IS NOT NULL                                         THEN decode_error
    WHEN payload IS NULL OR CHAR_LENGTH(payload) = 0                      THEN 'empty_payload'
    WHEN CHAR_LENGTH(payload) > ${max_payload_chars}                      THEN 'oversize_payload'
    -- The raw format keeps the record's bytes; decoding replaces invalid UTF-8 with U+FFFD, so the
    -- re-encoded text differs from the bytes exactly when they were not UTF-8 (IS JSON accepts them).
    WHEN ENCODE(payload, 'UTF-8') <> CAST(payload AS BYTES)               THEN 'invalid_utf8'
    WHEN NOT is_json                                                      THEN 'malformed_json'
    WHEN activity_id IS NULL OR CHAR_LENGTH(activity_id) = 0              THEN 'missing_activity_id'
    WHEN customer_id_text IS NULL                                         THEN 'missing_customer_id'
    WHEN TRY_CAST(customer_id_text AS INT) IS NULL                        THEN 'customer_id_not_integer'
    WHEN record_key IS NULL                                               THEN 'missing_key'
    WHEN record_key <> customer_id_text                                   THEN 'key_mismatch'
    WHEN offer_id_text IS NOT NULL AND TRY_CAST(offer_id_text AS INT) IS NULL THEN 'offer_id_not_integer'
    WHEN activity_type IS NULL OR activity_type NOT IN (${activity_types:list}) THEN 'unknown_activity_type'
    WHEN channel IS NULL OR channel NOT IN (${channels:list})             THEN 'unknown_channel'
    WHEN propensity_text IS NULL                                          THEN 'missing_propensity'
    WHEN TRY_CAST(propensity_text AS DOUBLE) IS NULL                      THEN 'propensity_not_a_number'
    -- "NaN" casts to a DOUBLE NaN, and the planner rewrites NOT (x >= 0 AND x <= 1) as x < 0 OR x > 1,
    -- which NaN passes: name it explicitly.
    WHEN UPPER(propensity_text) LIKE '%NAN%'                              THEN 'propensity_out_of_range'
    WHEN NOT (TRY_CAST(propensity_text AS DOUBLE) >= 0 AND TRY_CAST(propensity_text AS DOUBLE) <= 1)
                                                                          THEN 'propensity_out_of_range'
    WHEN event_time_text IS NULL                                          THEN 'missing_event_time'
    WHEN TRY_CAST(event_time_text AS BIGINT) IS NULL                      THEN 'event_time_not_integer'
    WHEN NOT (TO_TIMESTAMP_LTZ(TRY_CAST(event_time_text AS BIGINT), 3)
              BETWEEN kafka_ts - INTERVAL '${max_clock_skew_hours}' HOUR
                  AND kafka_ts + INTERVAL '${max_clock_skew_hours}' HOUR) THEN 'event_time_out_of_range'
    ELSE CAST(NULL AS STRING)
  END AS dlq_reason
FROM activity_parsed;

CREATE TEMPORARY VIEW activity_valid AS
SELECT
  activity_id,
  CAST(customer_id_text AS INT)                 AS customer_id,
  record_key                                    AS customer_key,
  TRY_CAST(offer_id_text AS INT)                AS offer_id,
  offer_id_text                                 AS offer_key,
  activity_type,
  channel,
  CAST(propensity_text AS DOUBLE)               AS propensity_to_churn,
  ip_address,
  rowtime,
  proc_time,
  payload,
  kafka_partition,
  kafka_offset,
  kafka_ts
FROM activity_checked
WHERE dlq_reason IS NULL;

-- 2b. Duplicates. A re-sent activity would be counted twice by every window and by the rolling
-- state, so only the first copy of an activity id to arrive goes on: keep-first deduplication on
-- arrival time, which emits at once, adds no latency and keeps the event-time attribute. The later
-- copies come from a first-N on arrival time over the same rows (it keeps only a count per id);
-- they become dead letters. Both forget an id after the dedup horizon: the job sets their state
-- TTLs in its compiled plan (flink_jobs/compiled_plan.py; a global TTL would also expire the
-- versioned customers in the temporal joins).
CREATE TEMPORARY VIEW activity_unique AS
SELECT activity_id, customer_id, customer_key, offer_id, offer_key, activity_type, channel,
       propensity_to_churn, ip_address, rowtime, payload, kafka_partition, kafka_offset, kafka_ts
FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY activity_id ORDER BY proc_time ASC) AS copy_number
  FROM activity_valid
)
WHERE copy_number = 1;

-- (The planner marks a Top-N's output as updating, although a first-N on arrival time only ever
-- inserts: the dead-letter sinks are upsert sinks keyed by dead-letter id.)
CREATE TEMPORARY VIEW duplicates AS
SELECT kafka_partition, kafka_offset, kafka_ts, payload
FROM (
  SELECT kafka_partition, kafka_offset, kafka_ts, payload,
         ROW_NUMBER() OVER (PARTITION BY activity_id ORDER BY proc_time ASC) AS copy_number
  FROM activity_valid
)
WHERE copy_number BETWEEN 2 AND 1000000000;

-- 3. Enrich as of the event time (event-time temporal joins): replays give the same answer.
-- LEFT joins keep activities whose customer/offer is not known yet; customer_known marks them.
CREATE TEMPORARY VIEW enriched_joined AS
SELECT
  a.activity_id,
  a.customer_id,
  a.offer_id,
  a.activity_type,
  a.channel,
  a.propensity_to_churn,
  pseudonymise(a.ip_address)                    AS ip_hash,
  a.rowtime,
  c.customer_key IS NOT NULL                    AS customer_known,
  pseudonymise(c.email)                         AS email_hash,
  COALESCE(c.gender, 'unknown')                 AS gender,
  c.income,
  c.fico,
  c.years_active,
  -- The bands' edges and labels are the catalog's (churnstream/catalog.py): CASE expressions here.
  ${income_bands:bands(c.income)}              AS income_band,
  ${fico_bands:bands(c.fico)}                  AS fico_band,
  ${tenure_bands:bands(c.years_active)}        AS tenure_band,
  o.offer_key IS NOT NULL                       AS offer_known,
  o.offer_name,
  o.offer_url,
  o.product_line,
  o.monthly_premium,
  a.payload,
  a.kafka_partition,
  a.kafka_offset,
  a.kafka_ts
FROM activity_unique AS a
LEFT JOIN customers FOR SYSTEM_TIME AS OF a.rowtime AS c ON a.customer_key = c.customer_key
LEFT JOIN offers FOR SYSTEM_TIME AS OF a.rowtime AS o ON a.offer_key = o.offer_key;

-- 3b. Late. Every step below (the OVER window, MATCH_RECOGNIZE, the window aggregations and the
-- engagement function) drops a row that is behind its watermark, without a trace. The joins
-- above are the last steps that combine watermarks (an activity's with the customers' and
-- offers'), and they emit a row once their watermark has passed it: a row they emit behind the
-- watermark they had already passed on is one the steps below could drop. Such a row is a dead
-- letter with reason 'late' and how far behind it was, and in no result; every other row reaches
-- steps whose watermark is not ahead of it. With the default flags none is late (README, "Quiet
-- partitions and late records").
CREATE TEMPORARY VIEW enriched_checked AS
SELECT *,
  CASE WHEN rowtime <= CURRENT_WATERMARK(rowtime)
       -- (the watermark in epoch milliseconds, less the event time)
       THEN EXTRACT(EPOCH FROM CAST(CURRENT_WATERMARK(rowtime) AS TIMESTAMP(3))) * 1000
            + EXTRACT(MILLISECOND FROM CAST(CURRENT_WATERMARK(rowtime) AS TIMESTAMP(3)))
            - EXTRACT(EPOCH FROM CAST(rowtime AS TIMESTAMP(3))) * 1000
            - EXTRACT(MILLISECOND FROM CAST(rowtime AS TIMESTAMP(3)))
  END AS late_by_ms
FROM enriched_joined;

CREATE TEMPORARY VIEW enriched AS
SELECT activity_id, customer_id, offer_id, activity_type, channel, propensity_to_churn, ip_hash, rowtime,
       customer_known, email_hash, gender, income, fico, years_active, income_band, fico_band, tenure_band,
       offer_known, offer_name, offer_url, product_line, monthly_premium
FROM enriched_checked
WHERE late_by_ms IS NULL;

-- Every dead letter: rule broken (step 2), re-sent copy (step 2b), late (step 3b), and customer or
-- offer records that do not decode.
CREATE TEMPORARY VIEW dead_letters AS
SELECT
  CONCAT('${topic_activity}', '-', CAST(kafka_partition AS STRING), '-', CAST(kafka_offset AS STRING)) AS dead_letter_id,
  reason,
  '${topic_activity}'           AS source_topic,
  kafka_partition               AS source_partition,
  kafka_offset                  AS source_offset,
  CAST(kafka_ts AS TIMESTAMP(3)) AS kafka_time,
  payload,
  late_by_ms
FROM (
  SELECT dlq_reason AS reason, kafka_partition, kafka_offset, kafka_ts, payload, CAST(NULL AS BIGINT) AS late_by_ms
  FROM activity_checked
  WHERE dlq_reason IS NOT NULL
  UNION ALL
  SELECT 'duplicate_activity_id' AS reason, kafka_partition, kafka_offset, kafka_ts, payload,
         CAST(NULL AS BIGINT) AS late_by_ms
  FROM duplicates
  UNION ALL
  -- Behind the watermark after the joins (step 3b).
  SELECT 'late' AS reason, kafka_partition, kafka_offset, kafka_ts, payload, late_by_ms
  FROM enriched_checked
  WHERE late_by_ms IS NOT NULL
)
UNION ALL
-- Customer and offer records that do not decode (--format avro; none with JSON): sources*.sql.
SELECT * FROM entity_dead_letters;

-- 4. Rolling churn propensity per segment: sliding (HOP) windows over five dimensions at once.
CREATE TEMPORARY VIEW segment_events AS
SELECT e.rowtime, s.dimension, s.segment, e.propensity_to_churn
FROM enriched AS e
CROSS JOIN UNNEST(ARRAY[
  ROW(CAST('activity_type' AS STRING), e.activity_type),
  ROW(CAST('gender' AS STRING), e.gender),
  ROW(CAST('income_band' AS STRING), e.income_band),
  ROW(CAST('fico_band' AS STRING), e.fico_band),
  ROW(CAST('tenure_band' AS STRING), e.tenure_band)
]) AS s (dimension, segment);

CREATE TEMPORARY VIEW segment_windows AS
SELECT
  CONCAT(DATE_FORMAT(window_start, 'yyyy-MM-dd''T''HH:mm:ss'), '|', dimension, '|', segment) AS window_id,
  window_start,
  window_end,
  dimension,
  segment,
  COUNT(*)                                                         AS events,
  AVG(propensity_to_churn)                                         AS avg_propensity,
  MAX(propensity_to_churn)                                         AS max_propensity,
  AVG(CASE WHEN propensity_to_churn >= ${high_risk_threshold} THEN CAST(1 AS DOUBLE) ELSE CAST(0 AS DOUBLE) END) AS high_risk_share
FROM TABLE(HOP(TABLE segment_events, DESCRIPTOR(rowtime),
               INTERVAL '${window_slide_seconds}' SECOND, INTERVAL '${window_size_seconds}' SECOND))
GROUP BY window_start, window_end, dimension, segment;

-- 5. Per-customer rolling state over the customer's recent events (OVER window on event time).
-- 5a. One order per customer. The OVER window, the alerts and the engagement function take a
-- customer's events in event-time order, and events of the same millisecond in the order they
-- arrive, which depends on the parallelism and on restarts (they come through steps keyed by
-- activity id and by offer): the rolling propensity of a row whose window begins among such ties
-- would depend on it. MATCH_RECOGNIZE sorts each customer's events by event time and then by their
-- place in Kafka, and hands each one on as it is (a pattern of one row): every later step sees
-- one order at any parallelism, the order the recomputation takes.
CREATE TEMPORARY VIEW customer_ordered AS
SELECT *
FROM (SELECT customer_id, activity_id, activity_type, channel, income, years_active, monthly_premium,
             propensity_to_churn, rowtime, kafka_partition, kafka_offset
      FROM enriched_checked
      WHERE late_by_ms IS NULL)
MATCH_RECOGNIZE (
  PARTITION BY customer_id
  ORDER BY rowtime, kafka_partition, kafka_offset
  MEASURES
    A.activity_id            AS activity_id,
    A.activity_type          AS activity_type,
    A.channel                AS channel,
    A.income                 AS income,
    A.years_active           AS years_active,
    A.monthly_premium        AS monthly_premium,
    A.propensity_to_churn    AS propensity_to_churn,
    MATCH_ROWTIME(rowtime)   AS rowtime
  ONE ROW PER MATCH
  AFTER MATCH SKIP PAST LAST ROW
  PATTERN (A)
  DEFINE A AS TRUE
);

CREATE TEMPORARY VIEW customer_rolling AS
SELECT
  customer_id,
  activity_id,
  activity_type,
  channel,
  income,
  years_active,
  monthly_premium,
  rowtime,
  AVG(propensity_to_churn) OVER recent AS rolling_propensity,
  COUNT(*) OVER recent                 AS recent_events
FROM customer_ordered
WINDOW recent AS (PARTITION BY customer_id ORDER BY rowtime ROWS BETWEEN ${rolling_events_minus_one} PRECEDING AND CURRENT ROW);

CREATE TEMPORARY VIEW customer_events AS
SELECT
  customer_id,
  activity_id,
  activity_type,
  channel,
  years_active,
  monthly_premium,
  rowtime,
  rolling_propensity,
  recent_events,
  ${risk_tiers:bands(rolling_propensity)} AS risk_tier,
  CONCAT(CASE WHEN income >= ${high_value_income} THEN 'high-value' ELSE 'low-value' END, '/',
         CASE WHEN rolling_propensity >= ${high_risk_threshold} THEN 'high-risk' ELSE 'low-risk' END) AS value_risk_quadrant
FROM customer_rolling;

-- 6. Churn alerts: one per upward crossing of the threshold by the rolling propensity.
CREATE TEMPORARY VIEW churn_alerts AS
SELECT
  activity_id                          AS alert_id,
  customer_id,
  CAST(alert_time AS TIMESTAMP(3))     AS alert_time,
  previous_propensity,
  rolling_propensity
FROM customer_rolling
MATCH_RECOGNIZE (
  PARTITION BY customer_id
  ORDER BY rowtime
  MEASURES
    B.activity_id          AS activity_id,
    B.rowtime              AS alert_time,
    A.rolling_propensity   AS previous_propensity,
    B.rolling_propensity   AS rolling_propensity
  ONE ROW PER MATCH
  AFTER MATCH SKIP TO LAST B
  PATTERN (A B)
  DEFINE
    A AS A.rolling_propensity < ${alert_threshold},
    B AS B.rolling_propensity >= ${alert_threshold}
);

-- 7. Web/mobile sessions: a gap of inactivity closes a session (SESSION window TVF).
CREATE TEMPORARY VIEW digital_activity AS
SELECT customer_id, propensity_to_churn, rowtime
FROM enriched
WHERE channel IN ('web', 'mobile');

CREATE TEMPORARY VIEW sessions AS
SELECT
  CONCAT(CAST(customer_id AS STRING), '|', DATE_FORMAT(MIN(rowtime), 'yyyy-MM-dd''T''HH:mm:ss.SSS')) AS session_id,
  customer_id,
  CAST(MIN(rowtime) AS TIMESTAMP(3))                         AS session_start,
  CAST(MAX(rowtime) AS TIMESTAMP(3))                         AS session_end,
  TIMESTAMPDIFF(SECOND, MIN(rowtime), MAX(rowtime))          AS duration_seconds,
  COUNT(*)                                                   AS events,
  AVG(propensity_to_churn)                                   AS avg_propensity
FROM TABLE(SESSION(TABLE digital_activity PARTITION BY customer_id, DESCRIPTOR(rowtime),
                   INTERVAL '${session_gap_minutes}' MINUTE))
GROUP BY customer_id, window_start, window_end;

-- 8. Customer value and engagement. customer_engagement (flink_udfs/CustomerEngagement.java, a
-- process table function) keeps per customer what needs state and timers: the last row of step 5,
-- the premium of the last accepted offer, activities and session starts per bucket, and timers
-- that re-evaluate a quiet customer and report each silence of the inactivity gap. Its rows are
-- the customer's document, at most one per customer-state interval while the customer is active
-- and one per refresh interval while quiet (kind 'customer'), and one per silence (kind
-- 'inactivity'). The scores and labels are computed here, with the catalog's numbers.
CREATE TEMPORARY VIEW customer_timeline AS
SELECT * FROM customer_engagement(input => TABLE customer_events PARTITION BY customer_id,
                                  on_time => DESCRIPTOR(rowtime), uid => 'customer-engagement');

CREATE TEMPORARY VIEW customer_scored AS
SELECT
  customer_id,
  kind,
  last_activity_id,
  last_activity_type,
  CAST(TO_TIMESTAMP_LTZ(last_activity_ms, 3) AS TIMESTAMP(3))      AS last_activity_time,
  rolling_propensity,
  recent_events,
  risk_tier,
  value_risk_quadrant,
  CAST(TO_TIMESTAMP_LTZ(evaluated_ms, 3) AS TIMESTAMP(3))          AS evaluated_at,
  idle_ms,
  has_policy,
  -- No policy: a premium of 0, and the customer still counts.
  monthly_premium,
  -- Lifetime value: the premium over the customer's years with us (a first-year customer counts one).
  monthly_premium * 12 * GREATEST(COALESCE(years_active, 0), 1)    AS cltv,
  -- Revenue at risk: a year of premium, weighted by the rolling churn propensity.
  monthly_premium * 12 * rolling_propensity                        AS value_at_risk,
  CAST(idle_ms AS DOUBLE) / 86400000                               AS recency_days,
  activities_30d,
  sessions_30d,
  -- Each component in [0, 1] against a fixed scale (foundation/catalog.py says why).
  ${w_recency} * GREATEST(CAST(0 AS DOUBLE), 1 - CAST(idle_ms AS DOUBLE) / ${inactivity_gap_ms})
    + ${w_frequency} * (0.5 * LEAST(CAST(1 AS DOUBLE), CAST(activities_30d AS DOUBLE) / ${activity_scale})
                        + 0.5 * LEAST(CAST(1 AS DOUBLE), CAST(sessions_30d AS DOUBLE) / ${session_scale}))
    + ${w_monetary} * LEAST(CAST(1 AS DOUBLE), monthly_premium / ${premium_scale}) AS engagement_score
FROM customer_timeline;

CREATE TEMPORARY VIEW customer_state AS
SELECT
  customer_id, last_activity_id, last_activity_type, last_activity_time, rolling_propensity, recent_events,
  risk_tier, value_risk_quadrant, evaluated_at, monthly_premium, cltv, value_at_risk, recency_days,
  activities_30d, sessions_30d, engagement_score,
  ${engagement_segments:bands(engagement_score)}                  AS engagement_segment,
  CASE WHEN idle_ms >= ${inactivity_gap_ms}              THEN 'not_active'
       WHEN NOT has_policy AND sessions_30d > 0          THEN 'browsing_only'
       ELSE 'active' END                                 AS engagement_status,
  -- For the dashboards: the score's tenth (0-9, the distribution), 1 for the high and critical
  -- risk tiers (a sum counts them, an average is their share), value against engagement.
  CAST(LEAST(FLOOR(engagement_score * 10), 9) AS INT)    AS engagement_decile,
  CASE WHEN rolling_propensity >= ${high_risk_threshold} THEN 1 ELSE 0 END AS high_risk,
  CONCAT(CASE WHEN cltv >= ${high_value_cltv} THEN 'high-value' ELSE 'low-value' END, '/',
         CASE WHEN engagement_score >= ${engaged_score} THEN 'engaged' ELSE 'disengaged' END) AS value_engagement_quadrant
FROM customer_scored
WHERE kind = 'customer';

-- One alert per silence of the inactivity gap, at the instant it is reached.
CREATE TEMPORARY VIEW inactivity_alerts AS
SELECT
  CONCAT(CAST(customer_id AS STRING), '|', DATE_FORMAT(evaluated_at, 'yyyy-MM-dd''T''HH:mm:ss.SSS')) AS alert_id,
  customer_id,
  evaluated_at                                           AS alert_time,
  last_activity_time,
  last_activity_type,
  CAST(idle_ms AS DOUBLE) / 86400000                     AS inactive_days,
  monthly_premium,
  value_at_risk,
  rolling_propensity,
  risk_tier
FROM customer_scored
WHERE kind = 'inactivity';
