// spymemcached scenario for tests/clients/test_client_spymemcached.py.
// Usage: java -cp spymemcached.jar:CLASSES SpyCheck PORT ascii|binary
// Prints "ok <check>" per passed check, exits 1 at the first failure. Expects key "from_python"
// (written by python) and leaves "spy:str" for the caller to read back.
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.TimeUnit;

import net.spy.memcached.AddrUtil;
import net.spy.memcached.BinaryConnectionFactory;
import net.spy.memcached.CASResponse;
import net.spy.memcached.CASValue;
import net.spy.memcached.ConnectionFactory;
import net.spy.memcached.DefaultConnectionFactory;
import net.spy.memcached.MemcachedClient;

public final class SpyCheck {
    private static void check(String name, Object got, Object want) {
        if (!Objects.equals(got, want)) {
            System.err.println("FAIL " + name + ": got " + got + ", want " + want);
            System.exit(1);
        }
        System.out.println("ok " + name);
        System.out.flush();
    }

    private static <T> T await(java.util.concurrent.Future<T> f) throws Exception {
        return f.get(5, TimeUnit.SECONDS);
    }

    public static void main(String[] args) throws Exception {
        String port = args[0];
        boolean binary = args[1].equals("binary");
        ConnectionFactory factory = binary ? new BinaryConnectionFactory() : new DefaultConnectionFactory();
        MemcachedClient mc = new MemcachedClient(factory, AddrUtil.getAddresses("127.0.0.1:" + port));
        try {
            check("factory", factory.getOperationFactory().getClass().getSimpleName(),
                  binary ? "BinaryOperationFactory" : "AsciiOperationFactory");

            // set / get
            check("set string", await(mc.set("spy:str", 0, "hello from spymemcached")), true);
            check("get string", mc.get("spy:str"), "hello from spymemcached");
            check("get missing", mc.get("spy:missing"), null);
            check("set int", await(mc.set("spy:int", 0, 12345)), true);
            check("get int", mc.get("spy:int"), 12345);
            byte[] bytes = new byte[256];
            for (int i = 0; i < 256; i++) bytes[i] = (byte) i;
            check("set bytes", await(mc.set("spy:bytes", 0, bytes)), true);
            check("get bytes", java.util.Arrays.equals((byte[]) mc.get("spy:bytes"), bytes), true);
            check("set empty", await(mc.set("spy:empty", 0, "")), true);
            check("get empty", mc.get("spy:empty"), "");
            check("add existing", await(mc.add("spy:str", 0, "x")), false);
            check("add new", await(mc.add("spy:added", 0, "y")), true);
            check("replace missing", await(mc.replace("spy:nope", 0, "x")), false);
            check("append", await(mc.append(0, "spy:added", "z")), true);
            check("after append", mc.get("spy:added"), "yz");

            // a key another client wrote (flags 0 = a plain string for spymemcached)
            check("read python key", mc.get("from_python"), "written by python");

            // bulk get
            Map<String, Object> want = new LinkedHashMap<>();
            for (int i = 0; i < 100; i++) {
                want.put("spy:bulk:" + i, "value-" + i);
                await(mc.set("spy:bulk:" + i, 0, "value-" + i));
            }
            List<String> keys = new ArrayList<>(want.keySet());
            keys.add("spy:bulk:absent");
            check("bulk get", mc.getBulk(keys), want);

            // cas
            CASValue<Object> cv = mc.gets("spy:str");
            check("gets", cv.getValue(), "hello from spymemcached");
            check("cas", mc.cas("spy:str", cv.getCas(), "cas-updated"), CASResponse.OK);
            check("cas stale", mc.cas("spy:str", cv.getCas(), "lost"), CASResponse.EXISTS);
            check("cas missing", mc.cas("spy:cas-absent", 1L, "x"), CASResponse.NOT_FOUND);
            check("after cas", mc.get("spy:str"), "cas-updated");
            await(mc.set("spy:str", 0, "hello from spymemcached"));

            // incr / decr
            check("incr missing", mc.incr("spy:ctr", 1), -1L);
            check("incr with default", mc.incr("spy:ctr", 1, 10L), 10L);
            check("incr", mc.incr("spy:ctr", 5), 15L);
            check("decr", mc.decr("spy:ctr", 20), 0L);
            check("incr again", mc.incr("spy:ctr", 7), 7L);
            check("counter as text", String.valueOf(mc.get("spy:ctr")).trim(), "7");

            // delete
            check("delete", await(mc.delete("spy:added")), true);
            check("after delete", mc.get("spy:added"), null);
            check("delete missing", await(mc.delete("spy:added")), false);
            System.out.println("done");
        } finally {
            mc.shutdown(5, TimeUnit.SECONDS);
        }
    }
}
