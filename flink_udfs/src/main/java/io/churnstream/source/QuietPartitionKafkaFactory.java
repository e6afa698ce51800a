package io.churnstream.source;

import java.time.Duration;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;

import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;
import org.apache.flink.table.catalog.ResolvedCatalogTable;
import org.apache.flink.table.connector.source.DynamicTableSource;
import org.apache.flink.table.connector.source.ScanTableSource;
import org.apache.flink.table.connector.source.abilities.SupportsReadingMetadata;
import org.apache.flink.table.connector.source.abilities.SupportsWatermarkPushDown;
import org.apache.flink.table.factories.DynamicTableSourceFactory;
import org.apache.flink.table.factories.FactoryUtil;
import org.apache.flink.util.TimeUtils;

/**
 * 'connector' = 'kafka-quiet-partitions': Flink's Kafka table source, every option and ability
 * unchanged, whose watermarks treat quiet partitions by {@link QuietPartitionIdleness}.
 *
 * <p>Options of its own: {@code partition.idle-timeout}, how long a partition may be silent while
 * its reader is live before it stops holding the watermark back, and {@code reader.idle-timeout}
 * (default: ten times that), how long a reader silent on every partition keeps its watermark.
 * Without the first the source is Flink's Kafka source exactly (no partition is ever idle).
 */
public final class QuietPartitionKafkaFactory implements DynamicTableSourceFactory {
    public static final String IDENTIFIER = "kafka-quiet-partitions";

    public static final ConfigOption<Duration> PARTITION_IDLE_TIMEOUT =
            ConfigOptions.key("partition.idle-timeout").durationType().noDefaultValue()
                    .withDescription("A partition silent for this long while other partitions of its "
                            + "reader deliver stops holding the watermark back.");

    public static final ConfigOption<Duration> READER_IDLE_TIMEOUT =
            ConfigOptions.key("reader.idle-timeout").durationType().noDefaultValue()
                    .withDescription("A source subtask silent on every partition for this long goes idle "
                            + "(default: ten times partition.idle-timeout).");

    private static DynamicTableSourceFactory kafka(ClassLoader loader) {
        return FactoryUtil.discoverFactory(loader, DynamicTableSourceFactory.class, "kafka");
    }

    @Override
    public String factoryIdentifier() {
        return IDENTIFIER;
    }

    @Override
    public Set<ConfigOption<?>> requiredOptions() {
        return kafka(Thread.currentThread().getContextClassLoader()).requiredOptions();
    }

    @Override
    public Set<ConfigOption<?>> optionalOptions() {
        Set<ConfigOption<?>> options = new HashSet<>(
                kafka(Thread.currentThread().getContextClassLoader()).optionalOptions());
        options.add(PARTITION_IDLE_TIMEOUT);
        options.add(READER_IDLE_TIMEOUT);
        return options;
    }

    @Override
    public DynamicTableSource createDynamicTableSource(Context context) {
        ResolvedCatalogTable table = context.getCatalogTable();
        Map<String, String> options = new HashMap<>(table.getOptions());
        String timeout = options.remove(PARTITION_IDLE_TIMEOUT.key());
        String readerTimeout = options.remove(READER_IDLE_TIMEOUT.key());
        options.put(FactoryUtil.CONNECTOR.key(), "kafka");
        DynamicTableSource source = FactoryUtil.createDynamicTableSource(
                kafka(context.getClassLoader()), context.getObjectIdentifier(), table.copy(options),
                context.getEnrichmentOptions(), context.getConfiguration(), context.getClassLoader(),
                context.isTemporary());
        if (!(source instanceof ScanTableSource && source instanceof SupportsReadingMetadata
                && source instanceof SupportsWatermarkPushDown)) {
            throw new IllegalStateException("the kafka connector's source no longer reads metadata and "
                    + "takes watermarks: " + source.getClass().getName());
        }
        Duration idle = timeout == null ? null : TimeUtils.parseDuration(timeout);
        Duration readerIdle = readerTimeout != null ? TimeUtils.parseDuration(readerTimeout)
                : idle == null ? null : idle.multipliedBy(10);
        return new QuietPartitionSource(source, idle, readerIdle);
    }
}
