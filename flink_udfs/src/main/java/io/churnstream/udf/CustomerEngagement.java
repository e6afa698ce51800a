package io.churnstream.udf;

import org.apache.flink.table.annotation.ArgumentHint;
import org.apache.flink.table.annotation.ArgumentTrait;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.StateHint;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.ProcessTableFunction;
import org.apache.flink.types.Row;

/**
 * customer_engagement(input => TABLE t PARTITION BY customer_id, on_time => DESCRIPTOR(rowtime)):
 * each customer's state over event time, with the timers that make time pass for a quiet customer.
 * sql/transform.sql step 8 turns its rows into the customers index and the inactivity alerts; the
 * scores, bands and formulas are SQL there, with the catalog's numbers. This function only keeps
 * what needs state and time:
 *
 * <ul>
 *   <li>the last row's fields (the rolling propensity and tier of step 5, the customer's tenure);
 *   <li>the premium: an accept_offer of a known offer makes its monthly premium the customer's, as
 *       of the event time (rows come from the OVER window of step 5, in event-time order, so the
 *       last acceptance by event time wins);
 *   <li>activities and web/mobile session starts per bucket of window/30 (30 buckets: a day each
 *       with the default 30-day window), counted over the current bucket and the 29 before; a
 *       session starts at a digital event more than the session gap after the previous one, as in
 *       the SESSION windows of step 7;
 *   <li>timers: "emit" at the end of each customer-state interval with an event (one document per
 *       customer per interval, as the tumbling window before it); "refresh" every refresh
 *       interval after the last event until the window has drained (a quiet customer's recency
 *       and frequency fall without any event of theirs); "inactive" at last event + gap: one
 *       inactivity row per silence. A silence that ends before its timer fired (the watermark
 *       jumped past it and the next event together) is reported when that next event arrives.
 * </ul>
 *
 * <p>Rows out: kind "customer" (the document, evaluated at the timer's time) or "inactivity".
 *
 * <p>End of a bounded input: Flink then advances event time to the end of time, which would fire
 * every customer's refresh and inactivity timers as if the stream had gone on for ever, and every
 * customer would end inactive. Time-passing timers fire only up to the event time where the input
 * ends: {@code endMs}, the newest event time of the whole bounded input less the watermark's
 * out-of-orderness (what the data's own watermark reached; the job reads it before it starts,
 * flink_jobs/bounded.py), the same for every parallel instance, so the documents do not depend on
 * the parallelism. The watermark never passes it while the input is read, so which timers fire
 * does not depend on timing either. "emit" timers always fire (they only publish events already
 * seen). Without {@code endMs} (an unbounded job stopped with --drain) the bound is the newest
 * event time this instance saw less the out-of-orderness; it is not state (a restored job learns
 * it from its next rows).
 */
@DataTypeHint("ROW<kind STRING, last_activity_id STRING, last_activity_type STRING, last_activity_ms BIGINT, "
        + "rolling_propensity DOUBLE, recent_events BIGINT, risk_tier STRING, value_risk_quadrant STRING, "
        + "years_active INT, has_policy BOOLEAN, monthly_premium DOUBLE, evaluated_ms BIGINT, idle_ms BIGINT, "
        + "activities_30d INT, sessions_30d INT>")
public class CustomerEngagement extends ProcessTableFunction<Row> {
    private static final long serialVersionUID = 1L;
    public static final int BUCKETS = 30;
    private static final String EMIT = "emit", REFRESH = "refresh", INACTIVE = "inactive";   // emit: unnamed

    /** endMs for an input with no known end. */
    public static final long NO_END = Long.MIN_VALUE;

    private final long gapMs, windowMs, refreshMs, emitMs, sessionGapMs, lateMs, bucketMs, endMs;
    private transient long newestMs;

    /** All in milliseconds: inactivity gap, frequency window, refresh interval, customer-state
     * interval, session gap, watermark out-of-orderness; endMs: the event time where a bounded
     * input ends (epoch ms), or NO_END. */
    public CustomerEngagement(long gapMs, long windowMs, long refreshMs, long emitMs, long sessionGapMs, long lateMs,
                              long endMs) {
        if (gapMs <= 0 || windowMs < BUCKETS || refreshMs <= 0 || emitMs <= 0 || sessionGapMs <= 0 || lateMs < 0) {
            throw new IllegalArgumentException("customer_engagement: durations must be positive");
        }
        this.gapMs = gapMs;
        this.windowMs = windowMs;
        this.refreshMs = refreshMs;
        this.emitMs = emitMs;
        this.sessionGapMs = sessionGapMs;
        this.lateMs = lateMs;
        this.bucketMs = windowMs / BUCKETS;
        this.endMs = endMs;
    }

    @Override
    public void open(FunctionContext context) {
        newestMs = Long.MIN_VALUE;   // transient: a deserialized instance would start at 0
    }

    /** One customer's state (a POJO: Flink stores it as a structured type). */
    public static class Memory {
        public boolean seen;
        public String lastActivityId;
        public String lastActivityType;
        public long lastMs;
        public double rollingPropensity;
        public long recentEvents;
        public String riskTier;
        public String quadrant;
        public Integer yearsActive;
        public boolean hasPolicy;
        public double premium;
        public boolean anyDigital;
        public long lastDigitalMs;
        public long alertedForMs = Long.MIN_VALUE;   // the last event whose silence was reported
        public long[] bucketIds;
        public int[] activities;
        public int[] sessions;
    }

    // ttl "0 ms": no TTL. Without a ttl Flink 2.3 gives PTF state a TTL of Long.MAX_VALUE ms when
    // table.exec.state.ttl is 0 (StreamExecProcessTableFunction.deriveStateTimeToLive), and every
    // state access then pays the TTL wrapper and incremental cleanup for nothing (6% of the job's
    // CPU in a bench profile). One document per customer: the state is bounded by the customers.
    public void eval(Context ctx, @StateHint(ttl = "0 ms") Memory m,
                     @ArgumentHint({ArgumentTrait.SET_SEMANTIC_TABLE, ArgumentTrait.REQUIRE_ON_TIME}) Row input) {
        TimeContext<Long> time = ctx.timeContext(Long.class);
        long t = time.time();
        if (t > newestMs) {
            newestMs = t;
        }
        if (m.seen && t - m.lastMs >= gapMs && m.alertedForMs != m.lastMs) {
            collect(row("inactivity", m, m.lastMs + gapMs));
            m.alertedForMs = m.lastMs;
        }
        // Timers are lazy: an event moves none that is still pending; a pending timer that fires
        // too early for the newest event re-arms itself (onTimer). Re-registering two named timers
        // per event cost a delete and an insert in the timer queue each. A timer is registered
        // here only when none is pending: the first event, or the previous chain has run out.
        boolean first = !m.seen;
        boolean newInterval = first || Math.floorDiv(t, emitMs) != Math.floorDiv(m.lastMs, emitMs);
        boolean noInactive = first || t - m.lastMs >= gapMs;
        boolean noRefresh = first || t >= lastRefresh(m.lastMs);
        if (m.bucketIds == null) {
            m.bucketIds = new long[BUCKETS];
            java.util.Arrays.fill(m.bucketIds, Long.MIN_VALUE);
            m.activities = new int[BUCKETS];
            m.sessions = new int[BUCKETS];
        }
        m.seen = true;
        m.lastMs = t;
        m.lastActivityId = input.getFieldAs("activity_id");
        m.lastActivityType = input.getFieldAs("activity_type");
        m.rollingPropensity = input.<Double>getFieldAs("rolling_propensity");
        m.recentEvents = input.<Long>getFieldAs("recent_events");
        m.riskTier = input.getFieldAs("risk_tier");
        m.quadrant = input.getFieldAs("value_risk_quadrant");
        m.yearsActive = input.getFieldAs("years_active");
        Double premium = input.getFieldAs("monthly_premium");
        if ("accept_offer".equals(m.lastActivityType) && premium != null) {
            m.hasPolicy = true;
            m.premium = premium;
        }
        int slot = slot(m, t);
        m.activities[slot]++;
        String channel = input.getFieldAs("channel");
        if ("web".equals(channel) || "mobile".equals(channel)) {
            if (!m.anyDigital || t - m.lastDigitalMs > sessionGapMs) {
                m.sessions[slot]++;
            }
            m.anyDigital = true;
            m.lastDigitalMs = t;
        }
        // Unnamed: one timer per interval end, so that a customer active in every interval still
        // gets a document per interval (a named timer would be pushed back by each event).
        if (newInterval) {
            time.registerOnTime((Math.floorDiv(t, emitMs) + 1) * emitMs);
        }
        if (noRefresh) {
            time.registerOnTime(REFRESH, t + refreshMs);
        }
        if (noInactive) {
            time.registerOnTime(INACTIVE, t + gapMs);
        }
    }

    /** The event time a bounded input ends at: the given end, else this instance's newest less the
     * out-of-orderness (nothing seen: no end, so no time-passing timer fires). */
    private long end() {
        if (endMs != NO_END) {
            return endMs;
        }
        return newestMs == Long.MIN_VALUE ? Long.MIN_VALUE : newestMs - lateMs;
    }

    /** The last refresh timer of the chain after an event at last. */
    private long lastRefresh(long last) {
        return last + Math.max(1, windowMs / refreshMs) * refreshMs;
    }

    public void onTimer(OnTimerContext ctx, Memory m) {
        TimeContext<Long> time = ctx.timeContext(Long.class);
        long at = time.time();
        String timer = ctx.currentTimer() == null ? EMIT : ctx.currentTimer();
        if (!m.seen) {
            return;
        }
        // A lazy timer set for an older event: re-armed for the newest (events after it was set
        // have later times, so it is due at or before the newest event's own time).
        if (REFRESH.equals(timer) && at < m.lastMs + refreshMs) {
            time.registerOnTime(REFRESH, m.lastMs + refreshMs);
            return;
        }
        if (INACTIVE.equals(timer) && at < m.lastMs + gapMs) {
            time.registerOnTime(INACTIVE, m.lastMs + gapMs);
            return;
        }
        boolean endOfInput = time.currentWatermark() != null && time.currentWatermark() == Long.MAX_VALUE;
        if (!EMIT.equals(timer) && endOfInput && at > end()) {
            return;
        }
        if (INACTIVE.equals(timer) && m.alertedForMs != m.lastMs) {
            collect(row("inactivity", m, at));
            m.alertedForMs = m.lastMs;
        }
        // An emit timer may fire after newer events were taken in (the watermark released them
        // first): the document is then the newest state, as of its last event.
        collect(row("customer", m, Math.max(at, m.lastMs)));
        if (REFRESH.equals(timer) && at + refreshMs <= m.lastMs + windowMs) {
            time.registerOnTime(REFRESH, at + refreshMs);
        }
    }

    /** The bucket of time t, emptied first if it still holds an older bucket's counts. */
    private int slot(Memory m, long t) {
        long bucket = Math.floorDiv(t, bucketMs);
        int slot = (int) Math.floorMod(bucket, (long) BUCKETS);
        if (m.bucketIds[slot] != bucket) {
            m.bucketIds[slot] = bucket;
            m.activities[slot] = 0;
            m.sessions[slot] = 0;
        }
        return slot;
    }

    private Row row(String kind, Memory m, long at) {
        long current = Math.floorDiv(at, bucketMs);
        int activities = 0, sessions = 0;
        for (int i = 0; i < BUCKETS; i++) {
            if (m.bucketIds[i] > current - BUCKETS && m.bucketIds[i] <= current) {
                activities += m.activities[i];
                sessions += m.sessions[i];
            }
        }
        return Row.of(kind, m.lastActivityId, m.lastActivityType, m.lastMs, m.rollingPropensity, m.recentEvents,
                m.riskTier, m.quadrant, m.yearsActive, m.hasPolicy, m.hasPolicy ? m.premium : 0.0, at, at - m.lastMs,
                activities, sessions);
    }
}
