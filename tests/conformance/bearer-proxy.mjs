// Loopback proxy that adds `Authorization: Bearer $TOKEN` to every request, so the MCP
// conformance runner (`conformance server`, which sends no Authorization header and has no option
// to add one) can reach mailconnect's bearer-protected /mcp. The auth path stays in the loop: the
// server checks the token exactly as it does for a real client.
//
// usage: TOKEN=... node bearer-proxy.mjs [--exit-on-stdin-eof] <upstream-origin> [listen-port]
//   <upstream-origin>     e.g. http://127.0.0.1:8080 (must be loopback: nothing leaves the machine)
//   [listen-port]         0 or omitted = a free port
//   --exit-on-stdin-eof   exit when stdin closes, so the proxy never outlives the process that
//                         started it with a pipe on stdin (tests/it/conformance.rs does)
// Listens on 127.0.0.1 only. Prints one line `listening http://127.0.0.1:<port>` on stdout once
// it accepts connections; logs errors on stderr. Exits on SIGTERM/SIGINT.
//
// Headers are forwarded as sent, `Host` and `Origin` included: the `dns-rebinding-protection`
// scenario sets them to foreign names on purpose and must reach the server's checks. Only the
// Host the runner sends by default (this proxy's own address) is rewritten to the upstream's, so
// the server sees its own name on ordinary requests. Hop-by-hop headers are dropped. Bodies are
// streamed both ways, so SSE responses arrive event by event.
import http from 'node:http';

const args = process.argv.slice(2);
const exitOnStdinEof = args[0] === '--exit-on-stdin-eof';
if (exitOnStdinEof) args.shift();
const [upstreamArg, portArg = '0'] = args;
const token = process.env.TOKEN;
if (!upstreamArg || !token) {
  console.error('usage: TOKEN=... node bearer-proxy.mjs [--exit-on-stdin-eof] <upstream-origin> [listen-port]');
  process.exit(2);
}
const upstream = new URL(upstreamArg);
if (upstream.protocol !== 'http:' || !['127.0.0.1', 'localhost', '[::1]'].includes(upstream.hostname)) {
  console.error(`bearer-proxy: upstream must be http on loopback, got ${upstream.origin}`);
  process.exit(2);
}

// RFC 9110 §7.6.1 hop-by-hop headers: meaningful for one connection only.
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection',
  'te', 'trailer', 'transfer-encoding', 'upgrade',
]);

function forwardHeaders(raw, ownHosts) {
  const headers = {};
  const connectionListed = new Set(
    String(raw.connection ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean),
  );
  for (const [name, value] of Object.entries(raw)) {
    if (!HOP_BY_HOP.has(name) && !connectionListed.has(name)) headers[name] = value;
  }
  if (headers.host === undefined || ownHosts.has(String(headers.host).toLowerCase())) {
    headers.host = upstream.host;
  }
  headers.authorization = `Bearer ${token}`;
  return headers;
}

const agent = new http.Agent({ keepAlive: true });
let ownHosts = new Set();

const server = http.createServer((req, res) => {
  const proxied = http.request(
    {
      protocol: upstream.protocol,
      hostname: upstream.hostname.replace(/^\[|\]$/g, ''),
      port: upstream.port || 80,
      method: req.method,
      path: req.url,
      headers: forwardHeaders(req.headers, ownHosts),
      agent,
    },
    (up) => {
      const headers = {};
      for (const [name, value] of Object.entries(up.headers)) {
        if (!HOP_BY_HOP.has(name)) headers[name] = value;
      }
      res.writeHead(up.statusCode ?? 502, up.statusMessage, headers);
      // Flush headers now: an SSE stream may not send its first event for a while.
      res.flushHeaders();
      up.pipe(res);
      up.on('error', () => res.destroy());
    },
  );
  proxied.on('error', (e) => {
    console.error(`bearer-proxy: ${req.method} ${req.url}: ${e.message}`);
    if (!res.headersSent) {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`bearer-proxy: upstream error: ${e.message}\n`);
    } else {
      res.destroy();
    }
  });
  // The client went away (e.g. closed an SSE stream): close the upstream request too.
  res.on('close', () => {
    if (!res.writableFinished) proxied.destroy();
  });
  req.pipe(proxied);
});
// Long-lived SSE streams: no idle timeouts on the proxy side.
server.requestTimeout = 0;
server.headersTimeout = 60_000;
server.keepAliveTimeout = 5_000;

server.listen(Number(portArg), '127.0.0.1', () => {
  const { port } = server.address();
  ownHosts = new Set([`127.0.0.1:${port}`, `localhost:${port}`]);
  process.stdout.write(`listening http://127.0.0.1:${port}\n`);
});

const stop = () => process.exit(0);
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (exitOnStdinEof) {
  process.stdin.on('end', stop);
  process.stdin.on('close', stop);
  process.stdin.resume();
}
