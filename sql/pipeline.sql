-- The whole churn pipeline as one job (one statement set: sources are read once).
EXECUTE STATEMENT SET
BEGIN
  INSERT INTO es_enriched
  SELECT activity_id, customer_id, offer_id, activity_type, channel, propensity_to_churn, ip_hash,
         CAST(rowtime AS TIMESTAMP(3)), customer_known, email_hash, gender, income, fico, years_active,
         income_band, fico_band, tenure_band, offer_known, offer_name, offer_url, product_line, monthly_premium
  FROM enriched;

  INSERT INTO es_segments SELECT * FROM segment_windows;

  INSERT INTO es_customers SELECT * FROM customer_state;

  INSERT INTO es_alerts SELECT * FROM churn_alerts;

  INSERT INTO es_sessions SELECT * FROM sessions;

  INSERT INTO es_dead_letters SELECT * FROM dead_letters;

  INSERT INTO kafka_dead_letters SELECT * FROM dead_letters;
END;
