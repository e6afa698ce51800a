package io.churnstream.source;

import java.time.Duration;

import org.apache.flink.api.common.eventtime.TimestampAssigner;
import org.apache.flink.api.common.eventtime.TimestampAssignerSupplier;
import org.apache.flink.api.common.eventtime.WatermarkAlignmentParams;
import org.apache.flink.api.common.eventtime.WatermarkGenerator;
import org.apache.flink.api.common.eventtime.WatermarkGeneratorSupplier;
import org.apache.flink.api.common.eventtime.WatermarkOutput;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.util.clock.RelativeClock;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Per-partition idleness that tells a quiet partition from an outage.
 *
 * <p>Flink's own idleness ({@code withIdleness}) marks a split idle after a timeout without
 * records, whatever the reason. After a broker outage or a stall longer than the timeout every
 * partition is idle, and the first one back moves the watermark alone: the others' backlog then
 * arrives behind it and windows, rolling state and alerts drop it as late.
 *
 * <p>Here a partition is idle when it has been silent for the partition timeout <em>while the
 * other partitions of its reader (the source subtask) went on delivering</em>: the silence is
 * counted from the later of its own last record and the moment its reader last came back from a
 * silence of every partition. So:
 *
 * <ul>
 *   <li>a quiet partition next to busy ones is idle after the partition timeout: results wait at
 *       most that long;
 *   <li>when every partition of the reader falls silent (a broker outage, a stalled producer,
 *       nothing written anywhere) no further partition goes idle until the reader has been silent
 *       for the reader timeout: the reader keeps its watermark, so no other input (the customer and
 *       offer tables in a join) can move event time past its backlog. The first record afterwards
 *       re-arms every partition: each holds the watermark at its last value until it has delivered
 *       its own backlog or been silent for another partition timeout. The first partition back
 *       cannot overtake the others;
 *   <li>a reader silent for the reader timeout (one whose partitions all stay quiet, with more
 *       source subtasks than busy partitions) goes idle, so it holds results back at most that long;
 *   <li>a partition added while the job runs holds the watermark from the moment it is assigned,
 *       for at most the partition timeout, so its first records are not behind the others.
 * </ul>
 *
 * <p>Time is the split's input-activity clock, which Flink pauses while the task is back-pressured
 * or busy downstream: a partition that is not read because the task is busy is not silent.
 * Flink logs each transition ("[topic-partition] Marking split idle" / "not idle"); this class
 * logs each re-arm of a reader.
 */
public final class QuietPartitionIdleness<T> implements WatermarkStrategy<T> {
    private static final long serialVersionUID = 1L;
    private static final Logger LOG = LoggerFactory.getLogger(QuietPartitionIdleness.class);

    private final WatermarkStrategy<T> inner;
    private final long timeoutNanos;
    private final long readerTimeoutNanos;
    // One per deserialized strategy: a source subtask deserializes its own copy and creates every
    // split's generator (and its main output's) from it, so this is the reader's shared state.
    private transient ReaderActivity reader;

    public QuietPartitionIdleness(WatermarkStrategy<T> inner, Duration timeout, Duration readerTimeout) {
        if (timeout.isNegative() || timeout.isZero() || readerTimeout.compareTo(timeout) < 0) {
            throw new IllegalArgumentException("the partition idle timeout must be positive and the reader's "
                    + "at least as long, got " + timeout + " and " + readerTimeout);
        }
        this.inner = inner;
        this.timeoutNanos = timeout.toNanos();
        this.readerTimeoutNanos = readerTimeout.toNanos();
    }

    @Override
    public WatermarkGenerator<T> createWatermarkGenerator(WatermarkGeneratorSupplier.Context context) {
        if (reader == null) {
            reader = new ReaderActivity(timeoutNanos, readerTimeoutNanos, context.getInputActivityClock().relativeTimeNanos());
        }
        // Asking for the clock also tells Flink to pause it while downstream operators run.
        return new Generator<>(inner.createWatermarkGenerator(context), context.getInputActivityClock(),
                timeoutNanos, reader);
    }

    @Override
    public TimestampAssigner<T> createTimestampAssigner(TimestampAssignerSupplier.Context context) {
        return inner.createTimestampAssigner(context);
    }

    @Override
    public WatermarkAlignmentParams getAlignmentParameters() {
        return inner.getAlignmentParameters();
    }

    /** When the reader (all partitions of one source subtask) last delivered, and since when it is live. */
    static final class ReaderActivity {
        private final long timeoutNanos;
        private final long readerTimeoutNanos;
        private final long created;
        private long lastRecord = Long.MIN_VALUE;
        private long liveSince = Long.MIN_VALUE;

        ReaderActivity(long timeoutNanos, long readerTimeoutNanos, long now) {
            this.timeoutNanos = timeoutNanos;
            this.readerTimeoutNanos = readerTimeoutNanos;
            this.created = now;
        }

        /**
         * May a partition silent since {@code since} go idle now: other partitions of the reader went
         * on delivering for a whole timeout after it fell silent, or the reader has been silent on
         * every partition for the reader timeout. (Partitions that fall silent together, as in an
         * outage, keep the watermark where it was.)
         */
        boolean mayIdle(long now, long since) {
            if (lastRecord != Long.MIN_VALUE && lastRecord - since >= timeoutNanos) {
                return true;
            }
            return now - (lastRecord == Long.MIN_VALUE ? created : lastRecord) >= readerTimeoutNanos;
        }

        void onRecord(long now) {
            if (lastRecord != Long.MIN_VALUE && now - lastRecord >= timeoutNanos) {
                LOG.info("partition idleness: records again after {} s of silence on every partition of "
                        + "this reader; every partition holds the watermark until it has delivered or "
                        + "been silent for another {} s", (now - lastRecord) / 1_000_000_000L,
                        timeoutNanos / 1_000_000_000L);
                liveSince = now;
            } else if (lastRecord == Long.MIN_VALUE) {
                liveSince = now;
            }
            lastRecord = now;
        }

        long liveSince() {
            return liveSince;
        }
    }

    /** One partition's (or the reader's main output's) watermarks, idle by the rule above. */
    static final class Generator<T> implements WatermarkGenerator<T> {
        private final WatermarkGenerator<T> inner;
        private final RelativeClock clock;
        private final long timeoutNanos;
        private final ReaderActivity reader;
        private long lastActivity;   // its own last record, or when it was assigned
        private boolean idle;

        Generator(WatermarkGenerator<T> inner, RelativeClock clock, long timeoutNanos, ReaderActivity reader) {
            this.inner = inner;
            this.clock = clock;
            this.timeoutNanos = timeoutNanos;
            this.reader = reader;
            this.lastActivity = clock.relativeTimeNanos();
        }

        @Override
        public void onEvent(T event, long eventTimestamp, WatermarkOutput output) {
            long now = clock.relativeTimeNanos();
            lastActivity = now;
            reader.onRecord(now);
            inner.onEvent(event, eventTimestamp, output);
        }

        @Override
        public void onPeriodicEmit(WatermarkOutput output) {
            long now = clock.relativeTimeNanos();
            long since = Math.max(lastActivity, reader.liveSince());
            // Quiet, and idle already or allowed to be (see ReaderActivity.mayIdle).
            if (now - since >= timeoutNanos && (idle || reader.mayIdle(now, since))) {
                idle = true;
                output.markIdle();
                return;
            }
            if (idle) {
                // Re-armed (records of its own, or its reader came back from a silence): it holds the
                // combined watermark at its last value again, even before it emits a new one.
                idle = false;
                output.markActive();
            }
            inner.onPeriodicEmit(output);
        }
    }
}
