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
    private static final long READER_TIMEOUT = 300 * S;

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
    private final QuietPartitionIdleness.ReaderActivity reader =
            new QuietPartitionIdleness.ReaderActivity(TIMEOUT, READER_TIMEOUT, 0);

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
    void aReaderSilentEverywhereKeepsItsWatermarkUntilTheReaderTimeout() {
        at(0);
        QuietPartitionIdleness.Generator<String> first = split(), second = split();
        Output f = new Output(), s = new Output();
        at(1);
        first.onEvent("x", 1_000, f);
        second.onEvent("x", 1_000, s);
        // A broker outage or a stalled producer: nothing from either. Neither goes idle, so no other
        // input of a join can move event time past what this reader has still to deliver.
        for (long t = 2; t <= 300; t++) {
            at(t);
            first.onPeriodicEmit(f);
            second.onPeriodicEmit(s);
            assertEquals("wm -4000", f.last(), "at " + t + " s");
            assertEquals("wm -4000", s.last(), "at " + t + " s");
        }
        at(301);   // silent for the reader timeout: the reader goes idle
        first.onPeriodicEmit(f);
        second.onPeriodicEmit(s);
        assertEquals("idle", f.last());
        assertEquals("idle", s.last());
    }

    @Test
    void afterEveryPartitionWasSilentTheFirstRecordBackReArmsThemAll() {
        at(0);
        QuietPartitionIdleness.Generator<String> first = split(), second = split();
        Output f = new Output(), s = new Output();
        at(1);
        first.onEvent("x", 1_000, f);
        second.onEvent("x", 1_000, s);
        at(400);   // silent longer than the reader timeout: both idle
        first.onPeriodicEmit(f);
        second.onPeriodicEmit(s);
        assertEquals("idle", s.last());
        // The first partition back: the second, still silent, holds the watermark at its last value
        // again (active, no new watermark) instead of letting the first one move it.
        at(401);
        first.onEvent("x", 401_000, f);
        first.onPeriodicEmit(f);
        second.onPeriodicEmit(s);
        assertEquals("wm 396000", f.last());
        assertEquals(List.of("active", "wm -4000"), s.calls.subList(s.calls.size() - 2, s.calls.size()));
        // Still silent a whole partition timeout after the reader came back (the first partition
        // delivering every second): idle again.
        for (long t = 402; t <= 431; t++) {
            at(t);
            first.onEvent("x", t * 1000, f);
            second.onPeriodicEmit(s);
            assertEquals(t < 431 ? "wm -4000" : "idle", s.last(), "at " + t + " s");
        }
    }

    @Test
    void aPartitionAlreadyIdleStaysIdleWhenTheWholeReaderFallsSilent() {
        at(0);
        QuietPartitionIdleness.Generator<String> busy = split(), quiet = split();
        Output b = new Output(), q = new Output();
        for (long t = 1; t <= 40; t++) {
            at(t);
            busy.onEvent("x", t * 1000, b);
            busy.onPeriodicEmit(b);
            quiet.onPeriodicEmit(q);
        }
        assertEquals("idle", q.last());
        at(100);   // the busy one silent for 60 s: it keeps the reader's watermark, the quiet one stays idle
        busy.onPeriodicEmit(b);
        quiet.onPeriodicEmit(q);
        assertEquals("wm 35000", b.last());
        assertEquals("idle", q.last());
    }

    @Test
    void aReaderThatNeverDeliversGoesIdleAfterTheReaderTimeout() {
        at(0);
        QuietPartitionIdleness.Generator<String> only = split();
        Output o = new Output();
        at(299);
        only.onPeriodicEmit(o);
        assertEquals("none", o.last());
        at(300);
        only.onPeriodicEmit(o);
        assertEquals("idle", o.last());
    }

    @Test
    void partitionsFallingSilentTogetherStayActiveThoughOneStoppedALittleEarlier() {
        at(0);
        QuietPartitionIdleness.Generator<String> a = split(), b = split();
        Output oa = new Output(), ob = new Output();
        at(1);
        a.onEvent("x", 1_000, oa);
        at(2);
        b.onEvent("x", 2_000, ob);   // the outage starts: b's last record a second after a's
        for (long t = 3; t <= 120; t++) {
            at(t);
            a.onPeriodicEmit(oa);
            b.onPeriodicEmit(ob);
            assertEquals("wm -4000", oa.last(), "at " + t + " s");   // a holds the watermark
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
        for (long t = 51; t <= 80; t++) {   // the old partition goes on delivering
            at(t);
            old.onEvent("x", t * 1000, o);
            added.onPeriodicEmit(n);
            // Active from its assignment (it holds the watermark), idle a partition timeout later.
            assertEquals(t < 80 ? "none" : "idle", n.last(), "at " + t + " s");
        }
    }
}
