package io.churnstream.udf;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Base64;
import java.util.Collection;
import java.util.HashMap;
import java.util.Map;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericEnumSymbol;
import org.apache.avro.generic.GenericFixed;
import org.apache.avro.generic.IndexedRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.ScalarFunction;
import org.apache.flink.types.Row;

/**
 * Decodes a Kafka record value in the Confluent Avro wire format (0x00, 4-byte big-endian schema
 * id, Avro binary) into JSON text, so the job's JSON validation SQL can check it. Records that
 * cannot be decoded are reported in {@code error} instead of thrown, so they become dead letters;
 * only a registry that cannot be asked (down, 5xx, timeout) throws, because then the record is
 * not known to be bad and the job must fail and restart rather than misroute it.
 *
 * <p>Compiled against org.apache.avro; the build relocates those references to the Avro that
 * flink-sql-avro-confluent-registry bundles (org.apache.flink.avro.shaded.org.apache.avro).
 */
public class AvroDecode extends ScalarFunction {
    private static final long serialVersionUID = 1L;
    private static final Duration TIMEOUT = Duration.ofSeconds(5);
    /** An id unknown now may be registered later, so a 404 is trusted this long only. */
    private static final long NEGATIVE_TTL_NANOS = Duration.ofSeconds(10).toNanos();
    /** Cached for ids whose registered schema is not Avro (e.g. schemaType PROTOBUF): permanent. */
    private static final Schema NOT_AVRO = Schema.create(Schema.Type.NULL);

    // One instance per parallel task, called from one thread: plain maps suffice.
    private transient HttpClient http;
    private transient ObjectMapper mapper;
    private transient Map<Integer, Schema> schemas;   // ids are immutable: cached forever
    private transient Map<Integer, Long> unknownUntil; // id -> System.nanoTime() deadline
    // A reader per writer schema and one reused decoder: building them per record costs more
    // than decoding a small record.
    private transient Map<Schema, GenericDatumReader<Object>> readers;
    private transient BinaryDecoder decoder;
    /**
     * The SQL calls eval several times per record with the same array (payload, error, event
     * time), from two operators: the source's watermark generator and the chained Calc after it.
     * Both run in the task's thread and see the same array (object reuse), so one cache per thread,
     * shared by all instances, decodes each record once. Identity is enough: each Kafka record
     * brings a fresh array, never refilled in place.
     */
    private static final ThreadLocal<Object[]> LAST = ThreadLocal.withInitial(() -> new Object[2]);

    @Override
    public void open(FunctionContext context) {
        init();
    }

    private void init() {
        if (http == null) {
            http = HttpClient.newBuilder().connectTimeout(TIMEOUT).build();
            mapper = new ObjectMapper();
            schemas = new HashMap<>();
            unknownUntil = new HashMap<>();
            readers = new HashMap<>();
        }
    }

    /**
     * Same bytes give the same result; the one exception is the 10 s negative cache (an id that
     * was unknown may decode once registered), which is acceptable for a streaming decode.
     */
    @Override
    public boolean isDeterministic() {
        return true;
    }

    /** payload: the record as JSON text; error: why it could not be decoded; event_time: its
     * top-level long field of that name, if any (so the event-time column needs no JSON parsing). */
    public @DataTypeHint("ROW<payload STRING, error STRING, event_time BIGINT>") Row eval(
            byte[] value, String registryUrl) {
        Object[] last = LAST.get();
        if (value != null && value == last[0]) {
            return (Row) last[1];
        }
        Row result = decode(value, registryUrl);
        last[0] = value;
        last[1] = result;
        return result;
    }

    private Row decode(byte[] value, String registryUrl) {
        if (value == null || value.length == 0) {
            return Row.of(null, null, null); // the SQL reports empty payloads itself
        }
        if (value.length < 5 || value[0] != 0) {
            return failed(value, "not_avro_wire_format");
        }
        init();
        int id = ByteBuffer.wrap(value, 1, 4).getInt();
        Schema schema = schema(id, registryUrl);
        if (schema == null) {
            return failed(value, "unknown_schema_id");
        }
        if (schema == NOT_AVRO) {
            return failed(value, "malformed_avro"); // the bytes cannot be Avro of that id
        }
        Object datum;
        try {
            decoder = DecoderFactory.get().binaryDecoder(value, 5, value.length - 5, decoder);
            datum = readers.computeIfAbsent(schema, GenericDatumReader::new).read(null, decoder);
            if (!decoder.isEnd()) {
                return failed(value, "malformed_avro"); // trailing bytes: not the schema's record
            }
        } catch (IOException | RuntimeException e) {
            // EOF on truncation, bad union/enum index, negative lengths, lengths above the Avro
            // limits the job sets (SystemLimitException; without them a length prefix near 2^31
            // would make Avro allocate that much and fail the task with an OutOfMemoryError) ...
            return failed(value, "malformed_avro");
        }
        StringBuilder json = new StringBuilder(value.length * 2);
        writeJson(datum, json);
        Long eventTime = null;
        if (datum instanceof IndexedRecord) {
            Schema.Field f = ((IndexedRecord) datum).getSchema().getField("event_time");
            Object t = f == null ? null : ((IndexedRecord) datum).get(f.pos());
            if (t instanceof Long || t instanceof Integer) {
                eventTime = ((Number) t).longValue();
            }
        }
        return Row.of(json.toString(), null, eventTime);
    }

    private static Row failed(byte[] value, String error) {
        return Row.of(Base64.getEncoder().encodeToString(value), error, null);
    }

    /** The writer schema of {@code id}, or null if the registry says it does not exist (404). */
    private Schema schema(int id, String registryUrl) {
        Schema cached = schemas.get(id);
        if (cached != null) {
            return cached;
        }
        Long until = unknownUntil.get(id);
        if (until != null && System.nanoTime() - until < 0) {
            return null;
        }
        String base = registryUrl.endsWith("/") ? registryUrl.substring(0, registryUrl.length() - 1) : registryUrl;
        String url = base + "/schemas/ids/" + id;
        HttpResponse<String> response;
        try {
            HttpRequest request = HttpRequest.newBuilder(URI.create(url))
                    .timeout(TIMEOUT)
                    .header("Accept", "application/vnd.schemaregistry.v1+json, application/json")
                    .GET()
                    .build();
            response = http.send(request, HttpResponse.BodyHandlers.ofString());
        } catch (IOException e) {
            throw new RuntimeException("schema registry GET " + url + " failed: " + e, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new RuntimeException("schema registry GET " + url + " interrupted", e);
        }
        int status = response.statusCode();
        if (status == 404 && errorCode(response.body()) == 40403) {
            // Confluent's "schema not found". A 404 without that code (wrong URL path, a proxy)
            // would dead-letter every record, so it fails the job like any other status.
            unknownUntil.put(id, System.nanoTime() + NEGATIVE_TTL_NANOS);
            return null;
        }
        if (status != 200) {
            throw new RuntimeException("schema registry GET " + url + " answered HTTP " + status + ": "
                    + abbreviate(response.body()));
        }
        JsonNode text;
        try {
            text = mapper.readTree(response.body()).get("schema");
        } catch (IOException e) {
            text = null;
        }
        if (text == null || !text.isTextual()) {
            // A 200 we cannot understand is a registry (or proxy) problem, not a bad record.
            throw new RuntimeException("schema registry GET " + url + " answered without a \"schema\" string: "
                    + abbreviate(response.body()));
        }
        Schema schema;
        try {
            schema = new Schema.Parser().parse(text.asText());
        } catch (RuntimeException e) {
            // The id is registered but not as Avro: the producer's fault, a dead letter, never
            // going to change (ids are immutable), so not a reason to fail the job.
            schema = NOT_AVRO;
        }
        schemas.put(id, schema);
        unknownUntil.remove(id);
        return schema;
    }

    private int errorCode(String body) {
        try {
            JsonNode code = mapper.readTree(body).get("error_code");
            return code == null ? -1 : code.asInt(-1);
        } catch (IOException | RuntimeException e) {
            return -1;
        }
    }

    private static String abbreviate(String body) {
        return body.length() > 300 ? body.substring(0, 300) + "..." : body;
    }

    /** Plain JSON of a generic datum: unions as the bare value, logical types raw, bytes base64. */
    private static void writeJson(Object d, StringBuilder out) {
        if (d == null) {
            out.append("null");
        } else if (d instanceof IndexedRecord) {
            IndexedRecord r = (IndexedRecord) d;
            out.append('{');
            for (Schema.Field f : r.getSchema().getFields()) {
                if (f.pos() > 0) {
                    out.append(',');
                }
                writeString(f.name(), out);
                out.append(':');
                writeJson(r.get(f.pos()), out);
            }
            out.append('}');
        } else if (d instanceof Boolean || d instanceof Integer || d instanceof Long) {
            out.append(d);
        } else if (d instanceof Float || d instanceof Double) {
            double v = ((Number) d).doubleValue();
            if (Double.isFinite(v)) {
                // Float.toString keeps 0.1f as 0.1; both always give a valid JSON number
                // (1.0, 1.0E20, 1.0E-5: a digit on each side of the point).
                out.append(d instanceof Float ? Float.toString((Float) d) : Double.toString(v));
            } else {
                // Text the SQL casts back to DOUBLE and rejects as out of range.
                out.append(Double.isNaN(v) ? "\"NaN\"" : v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
            }
        } else if (d instanceof CharSequence || d instanceof GenericEnumSymbol) {
            writeString(d.toString(), out);
        } else if (d instanceof ByteBuffer) {
            ByteBuffer b = ((ByteBuffer) d).duplicate();
            byte[] bytes = new byte[b.remaining()];
            b.get(bytes);
            writeString(Base64.getEncoder().encodeToString(bytes), out);
        } else if (d instanceof GenericFixed) {
            writeString(Base64.getEncoder().encodeToString(((GenericFixed) d).bytes()), out);
        } else if (d instanceof Collection) {
            out.append('[');
            boolean first = true;
            for (Object item : (Collection<?>) d) {
                if (!first) {
                    out.append(',');
                }
                first = false;
                writeJson(item, out);
            }
            out.append(']');
        } else if (d instanceof Map) {
            out.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : ((Map<?, ?>) d).entrySet()) {
                if (!first) {
                    out.append(',');
                }
                first = false;
                writeString(String.valueOf(e.getKey()), out);
                out.append(':');
                writeJson(e.getValue(), out);
            }
            out.append('}');
        } else {
            writeString(d.toString(), out); // not produced by GenericDatumReader
        }
    }

    private static void writeString(String s, StringBuilder out) {
        out.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '"' || c == '\\') {
                out.append('\\').append(c);
            } else if (c < 0x20) {
                out.append(String.format("\\u%04x", (int) c));
            } else {
                out.append(c);
            }
        }
        out.append('"');
    }
}
