package io.churnstream.source;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Objects;

import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.table.connector.ChangelogMode;
import org.apache.flink.table.connector.source.DynamicTableSource;
import org.apache.flink.table.connector.source.ScanTableSource;
import org.apache.flink.table.connector.source.abilities.SupportsReadingMetadata;
import org.apache.flink.table.connector.source.abilities.SupportsWatermarkPushDown;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.types.DataType;

/**
 * The Kafka source with every call passed through, except the watermark strategy the planner
 * pushes down: it is wrapped in {@link QuietPartitionIdleness} when an idle timeout is set.
 */
final class QuietPartitionSource implements ScanTableSource, SupportsReadingMetadata, SupportsWatermarkPushDown {
    private final DynamicTableSource kafka;
    private final Duration idleTimeout;   // null: no partition is ever idle
    private final Duration readerIdleTimeout;

    QuietPartitionSource(DynamicTableSource kafka, Duration idleTimeout, Duration readerIdleTimeout) {
        this.kafka = kafka;
        this.idleTimeout = idleTimeout;
        this.readerIdleTimeout = readerIdleTimeout;
    }

    @Override
    public ChangelogMode getChangelogMode() {
        return ((ScanTableSource) kafka).getChangelogMode();
    }

    @Override
    public ScanRuntimeProvider getScanRuntimeProvider(ScanContext context) {
        return ((ScanTableSource) kafka).getScanRuntimeProvider(context);
    }

    @Override
    public Map<String, DataType> listReadableMetadata() {
        return ((SupportsReadingMetadata) kafka).listReadableMetadata();
    }

    @Override
    public void applyReadableMetadata(List<String> metadataKeys, DataType producedDataType) {
        ((SupportsReadingMetadata) kafka).applyReadableMetadata(metadataKeys, producedDataType);
    }

    @Override
    public boolean supportsMetadataProjection() {
        return ((SupportsReadingMetadata) kafka).supportsMetadataProjection();
    }

    @Override
    public void applyWatermark(WatermarkStrategy<RowData> watermarkStrategy) {
        ((SupportsWatermarkPushDown) kafka).applyWatermark(idleTimeout == null
                ? watermarkStrategy : new QuietPartitionIdleness<>(watermarkStrategy, idleTimeout, readerIdleTimeout));
    }

    @Override
    public DynamicTableSource copy() {
        return new QuietPartitionSource(kafka.copy(), idleTimeout, readerIdleTimeout);
    }

    @Override
    public String asSummaryString() {
        return kafka.asSummaryString() + (idleTimeout == null ? ""
                : " (idle timeouts: partition " + idleTimeout + ", reader " + readerIdleTimeout + ")");
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof QuietPartitionSource && kafka.equals(((QuietPartitionSource) o).kafka)
                && Objects.equals(idleTimeout, ((QuietPartitionSource) o).idleTimeout)
                && Objects.equals(readerIdleTimeout, ((QuietPartitionSource) o).readerIdleTimeout);
    }

    @Override
    public int hashCode() {
        return Objects.hash(kafka, idleTimeout, readerIdleTimeout);
    }
}
