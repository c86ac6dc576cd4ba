package main
import ("crypto/tls"; "crypto/x509"; "fmt"; "os")
func main() {
  pool := x509.NewCertPool(); b, _ := os.ReadFile(os.Args[4]); pool.AppendCertsFromPEM(b)
  max := uint16(tls.VersionTLS13); if os.Getenv("MAXV") == "1.2" { max = tls.VersionTLS12 }
  c, err := tls.Dial("tcp", os.Args[1]+":"+os.Args[2], &tls.Config{ServerName: os.Args[3], RootCAs: pool, MaxVersion: max})
  if err != nil { fmt.Println("ERR", err); os.Exit(1) }
  c.Write([]byte("GET / HTTP/1.0\r\n\r\n")); buf := make([]byte, 100); c.Read(buf); fmt.Println("OK"); c.Close()
}
