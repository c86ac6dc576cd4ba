// Minimal JSSE client playing the Message Processor (a JVM) in the handshake-failure scenarios.
//
// usage: java TlsClient --host IP --port N [--servername NAME] [--protocols TLSv1.2,TLSv1.3]
//            [--ciphers SUITE,SUITE] [--truststore FILE --storepass PW] [--keystore FILE]
//            [--no-verify]
//
// Connects by IP; when --servername is given, it is sent as SNI (SSLParameters.setServerNames)
// and used for HTTPS endpoint identification. -Djsse.enableSNIExtension=false suppresses SNI
// exactly as on a Message Processor with conf_system_jsse.enableSNIExtension=false.
// Sends "GET /" and prints the status line. Exit 0 on a response, 1 on failure.
//
// --script (the TLS 1.3 scenarios, generate_tls13.py): one connection per stdin line of key=value
// words (host, port, servername, protocols, ciphers, keystore, truststore, noverify=1, source_port,
// path, mode=http|handshake|tcp, ctx=NAME); prints one "RESULT {json}" line per connection. A
// connection uses the SSLContext named by ctx (made on first use from that line's stores), so its
// client session cache -- and with it TLS 1.2 session and TLS 1.3 ticket resumption -- lives as long
// as this JVM: a new ctx name means a full handshake.
import java.io.FileInputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.security.KeyStore;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import javax.net.ssl.KeyManager;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SNIHostName;
import javax.net.ssl.SNIServerName;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManager;
import javax.net.ssl.TrustManagerFactory;
import javax.net.ssl.X509TrustManager;

public class TlsClient {
    /** One connection's settings (command line, or one --script line over the command line's). */
    static final class Opts implements Cloneable {
        String host, servername, protocols, ciphers, truststore, keystore, path = "/", mode = "http";
        String storepass = "changeit", ctx = "default";
        int port = 443, sourcePort = 0;
        boolean noVerify = false, script = false;

        Opts copy() {
            try {
                return (Opts) clone();
            } catch (CloneNotSupportedException e) {
                throw new AssertionError(e);
            }
        }

        void set(String k, String v) {
            switch (k) {
                case "host": host = v; break;
                case "port": port = Integer.parseInt(v); break;
                case "servername": servername = v; break;
                case "protocols": protocols = v; break;
                case "ciphers": ciphers = v; break;
                case "truststore": truststore = v; break;
                case "keystore": keystore = v; break;
                case "storepass": storepass = v; break;
                case "noverify": noVerify = "1".equals(v); break;
                case "source_port": sourcePort = Integer.parseInt(v); break;
                case "path": path = v; break;
                case "mode": mode = v; break;
                case "ctx": ctx = v; break;
                default: throw new IllegalArgumentException("unknown key " + k);
            }
        }
    }

    public static void main(String[] argv) {
        Opts o = new Opts();
        for (int i = 0; i < argv.length; i++) {
            switch (argv[i]) {
                case "--host": o.host = argv[++i]; break;
                case "--port": o.port = Integer.parseInt(argv[++i]); break;
                case "--servername": o.servername = argv[++i]; break;
                case "--protocols": o.protocols = argv[++i]; break;
                case "--ciphers": o.ciphers = argv[++i]; break;
                case "--truststore": o.truststore = argv[++i]; break;
                case "--keystore": o.keystore = argv[++i]; break;
                case "--storepass": o.storepass = argv[++i]; break;
                case "--no-verify": o.noVerify = true; break;
                case "--source-port": o.sourcePort = Integer.parseInt(argv[++i]); break;
                case "--path": o.path = argv[++i]; break;
                case "--mode": o.mode = argv[++i]; break;
                case "--script": o.script = true; break;
                default:
                    System.err.println("TlsClient: unknown argument " + argv[i]);
                    System.exit(2);
            }
        }
        if (o.script) {
            System.exit(script(o));
        }
        if (o.host == null) {
            System.err.println("TlsClient: --host is required");
            System.exit(2);
        }
        try {
            String resp = connect(context(o), o, new Result());
            String first = resp.isEmpty() ? "(no response)" : resp.split("\r\n", 2)[0];
            System.out.println("TlsClient: " + first);
            System.exit(resp.startsWith("HTTP/") ? 0 : 1);
        } catch (Exception e) {
            System.err.println("TlsClient: failed: " + e);
            System.exit(1);
        }
    }

    static SSLContext context(Opts o) throws Exception {
        TrustManager[] tms = null;
        if (o.noVerify) {
            tms = new TrustManager[] {new X509TrustManager() {
                public void checkClientTrusted(X509Certificate[] c, String a) { }
                public void checkServerTrusted(X509Certificate[] c, String a) { }
                public X509Certificate[] getAcceptedIssuers() { return new X509Certificate[0]; }
            }};
        } else if (o.truststore != null) {
            KeyStore ts = KeyStore.getInstance("PKCS12");
            try (InputStream in = new FileInputStream(o.truststore)) {
                ts.load(in, o.storepass.toCharArray());
            }
            TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            tmf.init(ts);
            tms = tmf.getTrustManagers();
        }
        KeyManager[] kms = null;
        if (o.keystore != null) {
            KeyStore ks = KeyStore.getInstance("PKCS12");
            try (InputStream in = new FileInputStream(o.keystore)) {
                ks.load(in, o.storepass.toCharArray());
            }
            KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
            kmf.init(ks, o.storepass.toCharArray());
            kms = kmf.getKeyManagers();
        }
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(kms, tms, null);
        return ctx;
    }

    /** What --script reports per connection. */
    static final class Result {
        boolean ok;
        int status = -1, sport = -1;
        String version, cipher, error;
    }

    /** One connection: returns the response (empty if none); fills r as far as it got. */
    static String connect(SSLContext ctx, Opts o, Result r) throws Exception {
        Socket raw = new Socket();
        if (o.sourcePort != 0) raw.bind(new InetSocketAddress(o.sourcePort));
        raw.connect(new InetSocketAddress(o.host, o.port), 10000);
        r.sport = raw.getLocalPort();
        if (o.mode.equals("tcp")) {
            raw.close();
            r.ok = true;
            return "";
        }
        raw.setSoTimeout(10000);
        String peerName = o.servername != null ? o.servername : o.host;
        SSLSocket s = (SSLSocket) ctx.getSocketFactory().createSocket(raw, peerName, o.port, true);
        SSLParameters p = s.getSSLParameters();
        if (o.protocols != null) p.setProtocols(o.protocols.split(","));
        if (o.ciphers != null) p.setCipherSuites(o.ciphers.split(","));
        boolean sniEnabled = !"false".equalsIgnoreCase(System.getProperty("jsse.enableSNIExtension", "true"));
        if (o.servername != null && sniEnabled) {
            List<SNIServerName> names = new ArrayList<>();
            names.add(new SNIHostName(o.servername));
            p.setServerNames(names);
        }
        if (!o.noVerify && o.servername != null) p.setEndpointIdentificationAlgorithm("HTTPS");
        s.setSSLParameters(p);
        s.startHandshake();
        r.version = s.getSession().getProtocol();
        r.cipher = s.getSession().getCipherSuite();
        System.out.println("TlsClient: handshake ok " + r.version + " " + r.cipher);
        if (o.mode.equals("handshake")) {
            s.close();
            r.ok = true;
            return "";
        }
        OutputStream out = s.getOutputStream();
        out.write(("GET " + o.path + " HTTP/1.0\r\nHost: " + peerName + "\r\n\r\n")
                .getBytes(StandardCharsets.US_ASCII));
        out.flush();
        InputStream in = s.getInputStream();
        byte[] buf = new byte[4096];
        StringBuilder sb = new StringBuilder();
        int n;
        try {
            while ((n = in.read(buf)) > 0) {
                sb.append(new String(buf, 0, n, StandardCharsets.ISO_8859_1));
            }
        } catch (java.net.SocketException e) {
            // a server that resets after its response is fine for our purpose
        }
        s.close();
        String resp = sb.toString();
        if (resp.startsWith("HTTP/")) {
            r.ok = true;
            String[] parts = resp.split(" ", 3);
            if (parts.length > 1) r.status = Integer.parseInt(parts[1]);
        } else {
            r.error = "no HTTP response";
        }
        return resp;
    }

    static int script(Opts base) {
        Map<String, SSLContext> contexts = new HashMap<>();
        try (BufferedReader rd = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.US_ASCII))) {
            String line;
            while ((line = rd.readLine()) != null) {
                if (line.isBlank()) continue;
                Opts o = base.copy();
                for (String w : line.trim().split("\\s+")) {
                    int eq = w.indexOf('=');
                    o.set(w.substring(0, eq), w.substring(eq + 1));
                }
                Result r = new Result();
                long t0 = System.currentTimeMillis();
                try {
                    SSLContext ctx = contexts.get(o.ctx);
                    if (ctx == null) {
                        ctx = context(o);
                        contexts.put(o.ctx, ctx);
                    }
                    connect(ctx, o, r);
                } catch (Exception e) {
                    r.error = e.toString();
                }
                System.out.println("RESULT {\"ok\": " + r.ok + ", \"status\": " + (r.status < 0 ? "null" : r.status)
                        + ", \"version\": " + quote(r.version) + ", \"cipher\": " + quote(r.cipher)
                        + ", \"sport\": " + (r.sport < 0 ? "null" : r.sport) + ", \"mode\": " + quote(o.mode)
                        + ", \"error\": " + quote(r.error) + ", \"t\": " + (t0 / 1000.0) + "}");
                System.out.flush();
            }
        } catch (java.io.IOException e) {
            System.err.println("TlsClient: stdin: " + e);
            return 1;
        }
        return 0;
    }

    static String quote(String v) {
        if (v == null) return "null";
        StringBuilder sb = new StringBuilder("\"");
        for (char c : v.toCharArray()) {
            if (c == '"' || c == '\\') sb.append('\\').append(c);
            else if (c < 0x20) sb.append(String.format("\\u%04x", (int) c));
            else sb.append(c);
        }
        return sb.append('"').toString();
    }
}
