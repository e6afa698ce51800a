package io.churnstream.source;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.List;

import org.apache.flink.api.common.eventtime.Watermark;
import org.apache.flink.api.common.eventtime.WatermarkGenerator;
import org.apache.flink.api.common.eventtime.WatermarkOutput;
import org.apache.flink.util.clock.RelativeClock;
import org.junit.jupiter.api.Test;

/** The idleness rule on literal timelines: a clock set by hand, every output call recorded. */
class QuietPartitionIdlenessTest {
    private static final long S = 1_000_000_000L;
    private static final long TIMEOUT = 30 * S;

    /** A clock the test moves. */
    private static final class Clock implements RelativeClock {
        long now;

        @Override
        public long relativeTimeNanos() {
            return now;
        }

        @Override
        public long relativeTimeMillis() {
            return now / 1_000_000;
        }
    }

    /** What a split's output was last told: "idle", "active" or the last watermark. */
    private static final class Output implements WatermarkOutput {
        final List<String> calls = new ArrayList<>();

        @Override
        public void emitWatermark(Watermark watermark) {
            calls.add("wm " + watermark.getTimestamp());
        }

        @Override
        public void markIdle() {
            calls.add("idle");
        }

        @Override
        public void markActive() {
            calls.add("active");
        }

        String last() {
            return calls.isEmpty() ? "none" : calls.get(calls.size() - 1);
        }
    }

    /** The planner's generator, reduced: the newest event time less 5 s, once there is one. */
    private static final class Newest implements WatermarkGenerator<String> {
        long max = Long.MIN_VALUE;

        @Override
        public void onEvent(String event, long eventTimestamp, WatermarkOutput output) {
            max = Math.max(max, eventTimestamp);
        }

        @Override
        public void onPeriodicEmit(WatermarkOutput output) {
            if (max != Long.MIN_VALUE) {
                output.emitWatermark(new Watermark(max - 5_000));
            }
        }
    }

    private final Clock clock = new Clock();
    private final QuietPartitionIdleness.ReaderActivity reader = new QuietPartitionIdleness.ReaderActivity(TIMEOUT);

    private QuietPartitionIdleness.Generator<String> split() {
        return new QuietPartitionIdleness.Generator<>(new Newest(), clock, TIMEOUT, reader);
    }

    private void at(long seconds) {
        clock.now = seconds * S;
    }

    @Test
    void aQuietPartitionNextToABusyOneIsIdleAfterTheTimeoutNotBefore() {
        at(0);
        QuietPartitionIdleness.Generator<String> busy = split(), quiet = split();
        Output b = new Output(), q = new Output();
        for (long t = 1; t <= 40; t++) {
            at(t);
            busy.onEvent("x", t * 1000, b);
            busy.onPeriodicEmit(b);
            quiet.onPeriodicEmit(q);
            // Silent since it was assigned at 0, the reader live since its first record at 1.
            assertEquals(t < 31 ? "none" : "idle", q.last(), "at " + t + " s");
            assertEquals("wm " + (t * 1000 - 5_000), b.last());
        }
    }

    @Test
    void afterEveryPartitionWasSilentTheFirstRecordBackReArmsThemAll() {
        at(0);
        QuietPartitionIdleness.Generator<String> first = split(), second = split();
        Output f = new Output(), s = new Output();
        at(1);
        first.onEvent("x", 1_000, f);
        second.onEvent("x", 1_000, s);
        // An outage: nothing from either for 100 s. Both idle after the timeout, as in Flink.
        at(40);
        first.onPeriodicEmit(f);
        second.onPeriodicEmit(s);
        assertEquals("idle", f.last());
        assertEquals("idle", s.last());
        // The first partition back: the second, still silent, holds the watermark at its last value
        // again (active, no new watermark) instead of letting the first one move it.
        at(101);
        first.onEvent("x", 101_000, f);
        first.onPeriodicEmit(f);
        second.onPeriodicEmit(s);
        assertEquals("wm 96000", f.last());
        assertEquals(List.of("active", "wm -4000"), s.calls.subList(s.calls.size() - 2, s.calls.size()));
        // Still silent a whole timeout after the reader came back (the first partition delivering
        // every second): idle again.
        for (long t = 102; t <= 131; t++) {
            at(t);
            first.onEvent("x", t * 1000, f);
            second.onPeriodicEmit(s);
            assertEquals(t < 131 ? "wm -4000" : "idle", s.last(), "at " + t + " s");
        }
    }

    @Test
    void aSilenceShorterThanTheTimeoutChangesNothing() {
        at(0);
        QuietPartitionIdleness.Generator<String> a = split(), b = split();
        Output oa = new Output(), ob = new Output();
        at(1);
        a.onEvent("x", 1_000, oa);
        b.onEvent("x", 1_000, ob);
        at(29);   // both silent for 28 s (a leader's fail-over on a cluster)
        a.onPeriodicEmit(oa);
        b.onPeriodicEmit(ob);
        assertEquals("wm -4000", oa.last());
        assertEquals("wm -4000", ob.last());
    }

    @Test
    void aPartitionAddedWhileRunningHoldsFromItsAssignmentForAtMostTheTimeout() {
        at(0);
        QuietPartitionIdleness.Generator<String> old = split();
        Output o = new Output();
        for (long t = 1; t <= 50; t++) {
            at(t);
            old.onEvent("x", t * 1000, o);
        }
        at(50);
        QuietPartitionIdleness.Generator<String> added = split();
        Output n = new Output();
        at(79);
        added.onPeriodicEmit(n);
        assertEquals("none", n.last());   // active from its assignment: it holds the watermark
        at(80);
        added.onPeriodicEmit(n);
        assertEquals("idle", n.last());
    }
}
