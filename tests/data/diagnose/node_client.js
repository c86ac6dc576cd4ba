const tls = require('tls');
const [host, port, name, ca] = process.argv.slice(2);
const s = tls.connect({host, port: +port, servername: name, ca: require('fs').readFileSync(ca), maxVersion: process.env.MAXV || 'TLSv1.3'}, () => {
  s.write('GET / HTTP/1.0\r\n\r\n');
});
s.on('error', e => { console.log('ERR', e.code); process.exit(1); });
s.on('data', d => { console.log('OK'); s.end(); });
