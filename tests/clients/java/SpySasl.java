// spymemcached with SASL PLAIN (AuthDescriptor) over the binary protocol, for
// tests/clients/test_client_auth.py.
// Usage: java -cp spymemcached.jar:CLASSES SpySasl PORT USER PASSWORD good|bad
// Prints "ok <check>" per passed check and "done" at the end; exits 1 at the first failure.
import java.util.Objects;
import java.util.concurrent.TimeUnit;

import net.spy.memcached.AddrUtil;
import net.spy.memcached.ConnectionFactory;
import net.spy.memcached.ConnectionFactoryBuilder;
import net.spy.memcached.MemcachedClient;
import net.spy.memcached.auth.AuthDescriptor;
import net.spy.memcached.auth.PlainCallbackHandler;

public final class SpySasl {
    private static void check(String name, Object got, Object want) {
        if (!Objects.equals(got, want)) {
            System.err.println("FAIL " + name + ": got " + got + ", want " + want);
            System.exit(1);
        }
        System.out.println("ok " + name);
        System.out.flush();
    }

    public static void main(String[] args) throws Exception {
        String port = args[0];
        boolean good = args[3].equals("good");
        AuthDescriptor auth = new AuthDescriptor(new String[] {"PLAIN"},
                new PlainCallbackHandler(args[1], args[2]));
        ConnectionFactory factory = new ConnectionFactoryBuilder()
                .setProtocol(ConnectionFactoryBuilder.Protocol.BINARY)
                .setAuthDescriptor(auth)
                .setOpTimeout(3000)
                .build();
        MemcachedClient mc = new MemcachedClient(factory, AddrUtil.getAddresses("127.0.0.1:" + port));
        try {
            if (good) {
                check("set", mc.set("spy:sasl", 0, "hello over sasl").get(5, TimeUnit.SECONDS), true);
                check("get", mc.get("spy:sasl"), "hello over sasl");
                check("incr", mc.incr("spy:sasl:ctr", 1, 10), 10L);
                check("delete", mc.delete("spy:sasl").get(5, TimeUnit.SECONDS), true);
            } else {
                // A refused login leaves the operation unanswered: it times out or fails.
                boolean stored;
                try {
                    stored = mc.set("spy:refused", 0, "x").get(4, TimeUnit.SECONDS);
                } catch (Exception e) {
                    stored = false;
                }
                check("set refused", stored, false);
            }
        } finally {
            mc.shutdown(2, TimeUnit.SECONDS);
        }
        System.out.println("done");
        System.exit(0);
    }
}
