package io.churnstream.udf;

import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;

import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;

import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.ScalarFunction;

/**
 * pseudonymise(STRING) -> STRING: the first 32 hex digits of HMAC-SHA256(key, UTF-8 bytes), the
 * same value as foundation/pii.py's pseudonym() (tests compare the two on literal rows).
 *
 * <p>In the JVM rather than as a Python function: a Python function sends every row to a Python
 * worker and back, which cost the job more CPU than all of its SQL operators together. The key is
 * given to the constructor by the job (never written into SQL, a plan or the job's configuration)
 * and travels inside the serialized function, as the Python function's closure did before.
 */
public class Pseudonymise extends ScalarFunction {
    private static final long serialVersionUID = 1L;
    private static final char[] HEX = "0123456789abcdef".toCharArray();

    private final byte[] key;
    private transient Mac mac;

    public Pseudonymise(byte[] key) {
        this.key = key.clone();
    }

    @Override
    public void open(FunctionContext context) throws Exception {
        mac = newMac();
    }

    private Mac newMac() throws GeneralSecurityException {
        Mac m = Mac.getInstance("HmacSHA256");
        m.init(new SecretKeySpec(key, "HmacSHA256"));
        return m;
    }

    public String eval(String value) throws GeneralSecurityException {
        if (value == null) {
            return null;
        }
        if (mac == null) {   // constant folding by the planner calls eval without open()
            mac = newMac();
        }
        byte[] digest = mac.doFinal(value.getBytes(StandardCharsets.UTF_8));
        char[] out = new char[32];
        for (int i = 0; i < 16; i++) {
            out[2 * i] = HEX[(digest[i] >> 4) & 0xf];
            out[2 * i + 1] = HEX[digest[i] & 0xf];
        }
        return new String(out);
    }

    @Override
    public boolean isDeterministic() {
        return true;
    }
}
