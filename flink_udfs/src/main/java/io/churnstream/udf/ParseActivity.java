package io.churnstream.udf;

import java.util.Map;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.DeserializationFeature;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectReader;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.SerializationFeature;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.ScalarFunction;
import org.apache.flink.types.Row;

/**
 * parse_activity(payload STRING): the activity's fields in one parse, each exactly what
 * {@code JSON_VALUE(payload, '$.<field>')} returns, and {@code payload IS JSON OBJECT}.
 *
 * <p>Flink 2.3 parses the payload again for every JSON_VALUE call (and for IS JSON): eleven parses
 * per activity, the largest single cost of the job in its profile. This parses it once, with the
 * same Jackson configuration as Flink's SqlJsonUtils (big decimals for floats; an object is a Map),
 * and applies the same lax-mode rules: a missing field, a JSON null, an object or an array give
 * NULL; a scalar gives its text (numbers as Java prints the parsed Integer, Long, BigInteger or
 * BigDecimal). tests/test_transform_sql.py compares the two on literal payloads.
 *
 * <p>The event-time column of the source (its watermark generator) and the Calc after it both call
 * this with the same record, in the task's thread: the last payload and its fields are kept per
 * thread, so each record is parsed once.
 */
public class ParseActivity extends ScalarFunction {
    private static final long serialVersionUID = 1L;

    /** The fields, in the order of the result row after is_json. */
    private static final String[] FIELDS = {
        "activity_id", "customer_id", "offer_id", "activity_type", "channel",
        "propensity_to_churn", "ip_address", "event_time"
    };

    private static final ObjectReader READER =
            new ObjectMapper(new JsonFactory())
                    .configure(SerializationFeature.ORDER_MAP_ENTRIES_BY_KEYS, true)
                    .configure(DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS, true)
                    .readerFor(Object.class);

    private static final ThreadLocal<Object[]> LAST = ThreadLocal.withInitial(() -> new Object[2]);

    @Override
    public boolean isDeterministic() {
        return true;
    }

    public @DataTypeHint(
            "ROW<is_json BOOLEAN, activity_id STRING, customer_id STRING, offer_id STRING, "
                    + "activity_type STRING, channel STRING, propensity_to_churn STRING, "
                    + "ip_address STRING, event_time STRING>")
    Row eval(String payload) {
        if (payload == null) {
            return Row.of(false, null, null, null, null, null, null, null, null);   // as IS JSON OBJECT on NULL
        }
        Object[] last = LAST.get();
        if (payload.equals(last[0])) {
            return (Row) last[1];
        }
        Row result = parse(payload);
        last[0] = payload;
        last[1] = result;
        return result;
    }

    private static Row parse(String payload) {
        Object root;
        try {
            root = READER.readValue(payload);
        } catch (Exception e) {
            root = null;   // not JSON: IS JSON OBJECT is false and every JSON_VALUE is NULL (NULL ON ERROR)
        }
        Row row = new Row(FIELDS.length + 1);
        row.setField(0, root instanceof Map);
        if (root instanceof Map) {
            Map<?, ?> object = (Map<?, ?>) root;
            for (int i = 0; i < FIELDS.length; i++) {
                row.setField(i + 1, scalarText(object.get(FIELDS[i])));
            }
        }
        return row;
    }

    /** What JSON_VALUE returns for a value in lax mode: the text of a scalar, else NULL. */
    private static String scalarText(Object value) {
        if (value instanceof String) {
            return (String) value;
        }
        if (value instanceof Number || value instanceof Boolean) {
            return value.toString();
        }
        return null;
    }
}
