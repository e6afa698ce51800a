-- A bounded run's end of event time (flink_jobs/bounded.py runs this before the job starts, over
-- the same source table and the same offsets): the newest event time of every activity record the
-- run will read, as its watermark reads it (sources.sql, rowtime), valid or not. Less the
-- out-of-orderness it is where the data's own watermark ends: customer_engagement (transform.sql
-- step 8) fires its time-passing timers up to there and no further, in every parallel instance
-- alike; a bounded input's last watermark (end of time) would fire them all.
SELECT CAST(MAX(rowtime) AS STRING) AS newest FROM activity_raw;
