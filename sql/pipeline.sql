-- The whole churn pipeline as one job (one statement set: sources are read once).
EXECUTE STATEMENT SET
BEGIN
  INSERT INTO kafka_enriched
  SELECT activity_id, activity_id, customer_id, offer_id, activity_type, channel, propensity_to_churn, ip_hash,
         CAST(rowtime AS TIMESTAMP(3)), customer_known, email_hash, gender, income, fico, years_active,
         income_band, fico_band, tenure_band, offer_known, offer_name, offer_url, product_line, monthly_premium
  FROM enriched;

  INSERT INTO kafka_segments SELECT window_id, * FROM segment_windows;

  INSERT INTO kafka_customers SELECT CAST(customer_id AS STRING), * FROM customer_state;

  INSERT INTO kafka_alerts SELECT alert_id, * FROM churn_alerts;

  INSERT INTO kafka_inactivity SELECT alert_id, * FROM inactivity_alerts;

  INSERT INTO kafka_sessions SELECT session_id, * FROM sessions;

  INSERT INTO kafka_dead_letters SELECT dead_letter_id, * FROM dead_letters;
END;
