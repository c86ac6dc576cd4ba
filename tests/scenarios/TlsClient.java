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
import java.io.FileInputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.security.KeyStore;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.List;
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
    public static void main(String[] argv) {
        String host = null, servername = null, protocols = null, ciphers = null;
        String truststore = null, keystore = null, storepass = "changeit";
        int port = 443;
        boolean noVerify = false;
        for (int i = 0; i < argv.length; i++) {
            switch (argv[i]) {
                case "--host": host = argv[++i]; break;
                case "--port": port = Integer.parseInt(argv[++i]); break;
                case "--servername": servername = argv[++i]; break;
                case "--protocols": protocols = argv[++i]; break;
                case "--ciphers": ciphers = argv[++i]; break;
                case "--truststore": truststore = argv[++i]; break;
                case "--keystore": keystore = argv[++i]; break;
                case "--storepass": storepass = argv[++i]; break;
                case "--no-verify": noVerify = true; break;
                default:
                    System.err.println("TlsClient: unknown argument " + argv[i]);
                    System.exit(2);
            }
        }
        if (host == null) {
            System.err.println("TlsClient: --host is required");
            System.exit(2);
        }
        try {
            TrustManager[] tms = null;
            if (noVerify) {
                tms = new TrustManager[] {new X509TrustManager() {
                    public void checkClientTrusted(X509Certificate[] c, String a) { }
                    public void checkServerTrusted(X509Certificate[] c, String a) { }
                    public X509Certificate[] getAcceptedIssuers() { return new X509Certificate[0]; }
                }};
            } else if (truststore != null) {
                KeyStore ts = KeyStore.getInstance("PKCS12");
                try (InputStream in = new FileInputStream(truststore)) {
                    ts.load(in, storepass.toCharArray());
                }
                TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
                tmf.init(ts);
                tms = tmf.getTrustManagers();
            }
            KeyManager[] kms = null;
            if (keystore != null) {
                KeyStore ks = KeyStore.getInstance("PKCS12");
                try (InputStream in = new FileInputStream(keystore)) {
                    ks.load(in, storepass.toCharArray());
                }
                KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
                kmf.init(ks, storepass.toCharArray());
                kms = kmf.getKeyManagers();
            }
            SSLContext ctx = SSLContext.getInstance("TLS");
            ctx.init(kms, tms, null);

            Socket raw = new Socket();
            raw.connect(new InetSocketAddress(host, port), 10000);
            raw.setSoTimeout(10000);
            String peerName = servername != null ? servername : host;
            SSLSocket s = (SSLSocket) ctx.getSocketFactory().createSocket(raw, peerName, port, true);
            SSLParameters p = s.getSSLParameters();
            if (protocols != null) p.setProtocols(protocols.split(","));
            if (ciphers != null) p.setCipherSuites(ciphers.split(","));
            boolean sniEnabled = !"false".equalsIgnoreCase(System.getProperty("jsse.enableSNIExtension", "true"));
            if (servername != null && sniEnabled) {
                List<SNIServerName> names = new ArrayList<>();
                names.add(new SNIHostName(servername));
                p.setServerNames(names);
            }
            if (!noVerify && servername != null) p.setEndpointIdentificationAlgorithm("HTTPS");
            s.setSSLParameters(p);
            s.startHandshake();
            System.out.println("TlsClient: handshake ok " + s.getSession().getProtocol() + " "
                    + s.getSession().getCipherSuite());
            OutputStream out = s.getOutputStream();
            out.write(("GET / HTTP/1.0\r\nHost: " + peerName + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
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
            String first = resp.isEmpty() ? "(no response)" : resp.split("\r\n", 2)[0];
            System.out.println("TlsClient: " + first);
            System.exit(resp.startsWith("HTTP/") ? 0 : 1);
        } catch (Exception e) {
            System.err.println("TlsClient: failed: " + e);
            System.exit(1);
        }
    }
}
