#!/usr/bin/env node
// The official MCP TypeScript SDK (@modelcontextprotocol/sdk, pinned in package.json) as an
// OAuth client of mailconnect, headless: an OAuthClientProvider whose state lives in a JSON
// file, dynamic client registration (or a Client ID Metadata Document), PKCE, and the consent
// screen clicked through by consent-bot.mjs.
//
// usage: node ts-oauth-client.mjs <connect|call> --url <mcp-url> --state <file>
//            [--client-name e2e-ts] [--expect-username alice@example.test]
//            [--cimd <metadata-url>] [--timeout-ms 60000]
//
//   connect  the whole flow from nothing (an existing state file is discarded): 401 →
//            discovery → registration → authorize (consent bot approves) → finishAuth(code) →
//            reconnect; then tools/list must include get_identity, get_identity must answer
//            structuredContent.username == --expect-username, and list_mailboxes must list some.
//   call     the same calls with the saved client and tokens only: the SDK must get by on its
//            own (refresh with the saved refresh token when the access token was refused).
//            Needing a new authorization in this phase is a failure.
//
//   --cimd <url>  identify the client by a Client ID Metadata Document at <url> instead of
//            registering. For a loopback http(s) URL the script serves the document itself
//            (port 0: a free one; the URL actually used is saved in the state file, and `call`
//            serves it again there). SDK 1.32.2 takes only https URLs as `clientMetadataUrl`
//            (isHttpsUrl): for an https URL the SDK's own CIMD branch is used; for an http
//            loopback URL (tests) the provider hands the SDK the same client information the
//            SDK's branch would ({client_id: <url>}), after the same check that the
//            authorization server advertises client_id_metadata_document_supported.
//
// Prints exactly one JSON line to stdout: {"ok": true, "phase": ..., ...results} or
// {"ok": false, "phase": ..., "error": "..."}; logs go to stderr. Exit 0 ok, 1 failure,
// 2 usage. No token, code or secret is ever printed.

import { createServer } from 'node:http';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

import { consent, isLoopback } from './consent-bot.mjs';

const SDK_VERSION = JSON.parse(
  readFileSync(new URL('./node_modules/@modelcontextprotocol/sdk/package.json', import.meta.url), 'utf8'),
).version;

function log(msg) {
  process.stderr.write(`ts-oauth-client: ${msg}\n`);
}

// ---------------------------------------------------------------- arguments

function usage(msg) {
  if (msg) log(msg);
  log('usage: node ts-oauth-client.mjs <connect|call> --url <mcp-url> --state <file> ' +
    '[--client-name NAME] [--expect-username USER] [--cimd <metadata-url>] [--timeout-ms N]');
  process.exit(2);
}

function parseArgs(argv) {
  const [phase, ...rest] = argv;
  if (phase !== 'connect' && phase !== 'call') usage(`unknown phase ${phase ?? '(none)'}`);
  const opts = { phase, clientName: 'e2e-ts', expectUsername: 'alice@example.test', timeoutMs: 60_000 };
  const names = {
    '--url': 'url', '--state': 'state', '--client-name': 'clientName',
    '--expect-username': 'expectUsername', '--cimd': 'cimd', '--timeout-ms': 'timeoutMs',
  };
  for (let i = 0; i < rest.length; i += 2) {
    const key = names[rest[i]];
    if (!key || rest[i + 1] === undefined) usage(`bad argument ${rest[i]}`);
    opts[key] = key === 'timeoutMs' ? Number(rest[i + 1]) : rest[i + 1];
  }
  if (!opts.url || !opts.state) usage('--url and --state are required');
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const result = { ok: false, phase: opts.phase, sdk: SDK_VERSION };

function finish(ok, extra = {}) {
  Object.assign(result, extra, { ok });
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(ok ? 0 : 1);
}

function fail(message) {
  log(`FAILED: ${message}`);
  finish(false, { error: message });
}

setTimeout(() => fail(`timed out after ${opts.timeoutMs} ms`), opts.timeoutMs).unref();

// ---------------------------------------------------------------- the state file

function loadState() {
  try {
    return JSON.parse(readFileSync(opts.state, 'utf8'));
  } catch (e) {
    if (e.code === 'ENOENT') return {};
    throw new Error(`cannot read the state file ${opts.state}: ${e.message}`);
  }
}

function saveState() {
  const tmp = `${opts.state}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(state, null, 2), { mode: 0o600 });
  renameSync(tmp, opts.state);
}

let state;
if (opts.phase === 'connect') {
  rmSync(opts.state, { force: true });
  state = {};
} else {
  state = loadState();
  if (!state.tokens || !state.client_information || !state.redirect_url) {
    fail(`phase call needs the tokens and client saved by phase connect in ${opts.state}`);
  }
}

// ---------------------------------------------------------------- HTTP record

/** What the SDK sent, as "METHOD /path status" counts (token requests by grant type). */
const requests = {};
let tokenRequests = { authorization_code: 0, refresh_token: 0 };
const errors = [];

async function recordingFetch(input, init = {}) {
  const url = new URL(input instanceof Request ? input.url : String(input));
  const method = (init.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
  if (!isLoopback(url.href)) throw new Error(`refusing to leave loopback: ${url.origin}`);
  const res = await fetch(input, init);
  let key = `${method} ${url.pathname} ${res.status}`;
  if (method === 'POST' && url.pathname.endsWith('/token')) {
    const body = init.body instanceof URLSearchParams ? init.body : new URLSearchParams(String(init.body ?? ''));
    const grant = body.get('grant_type') ?? '?';
    tokenRequests[grant] = (tokenRequests[grant] ?? 0) + 1;
    key += ` ${grant}`;
  }
  requests[key] = (requests[key] ?? 0) + 1;
  if (res.status >= 400) {
    // What the server said, for the report (error bodies and challenges carry no secrets).
    const body = await res.clone().text().catch(() => '');
    const challenge = res.headers.get('www-authenticate');
    errors.push(`${key}: ${challenge ? `WWW-Authenticate: ${challenge} ` : ''}${body.slice(0, 300)}`);
  }
  return res;
}

// ---------------------------------------------------------------- loopback servers

function listen(server, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server.address().port));
  });
}

/** The redirect URI's port: held by a listener for the whole run, as a real client does. */
const callbackServer = createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end('ts-oauth-client: you can close this window\n');
});

// The Client ID Metadata Document, when we serve it.
let metadataServer;
let metadataFetches = 0;

function metadataDocument(url) {
  return {
    client_id: url,
    client_name: opts.clientName,
    redirect_uris: [state.redirect_url],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  };
}

async function serveMetadata(wanted) {
  const u = new URL(wanted);
  if (u.pathname === '/' || u.pathname === '') throw new Error(`--cimd ${wanted}: the document needs a path`);
  metadataServer = createServer((req, res) => {
    if (req.method === 'GET' && new URL(req.url, 'http://x').pathname === u.pathname) {
      metadataFetches++;
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=60' });
      res.end(JSON.stringify(metadataDocument(state.cimd_url)));
    } else {
      res.writeHead(404).end();
    }
  });
  const port = await listen(metadataServer, Number(u.port || 80));
  u.port = String(port);
  return u.href;
}

// ---------------------------------------------------------------- the provider

let discovery; // the SDK's discovery result for this run (authorization server, its metadata)
let pendingCode;
let redirects = 0;
let tokensSaved = 0;
let registered = false;
let sdkClientMetadataUrl;

const provider = {
  get redirectUrl() {
    return state.redirect_url;
  },
  get clientMetadata() {
    return {
      client_name: opts.clientName,
      redirect_uris: [state.redirect_url],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  },
  get clientMetadataUrl() {
    return sdkClientMetadataUrl;
  },
  state() {
    state.oauth_state = randomBytes(16).toString('base64url');
    saveState();
    return state.oauth_state;
  },
  clientInformation() {
    if (state.client_information) return state.client_information;
    if (state.cimd_url && !sdkClientMetadataUrl) {
      // The SDK's CIMD branch, for the http loopback URL it will not take (see the header).
      if (discovery?.authorizationServerMetadata?.client_id_metadata_document_supported !== true) {
        throw new Error('--cimd: the authorization server does not advertise client_id_metadata_document_supported');
      }
      state.client_information = { client_id: state.cimd_url, issuer: discovery.authorizationServerUrl };
      saveState();
      return state.client_information;
    }
    return undefined;
  },
  saveClientInformation(info) {
    if (!state.client_information && info.client_id !== state.cimd_url) registered = true;
    state.client_information = info;
    saveState();
  },
  tokens() {
    return state.tokens;
  },
  saveTokens(tokens) {
    tokensSaved++;
    state.tokens = tokens;
    saveState();
  },
  saveCodeVerifier(verifier) {
    state.code_verifier = verifier;
    saveState();
  },
  codeVerifier() {
    if (!state.code_verifier) throw new Error('no code verifier saved');
    return state.code_verifier;
  },
  saveDiscoveryState(d) {
    discovery = d;
  },
  discoveryState() {
    return discovery;
  },
  invalidateCredentials(scope) {
    log(`the SDK invalidates credentials: ${scope}`);
    if (scope === 'all' || scope === 'client') delete state.client_information;
    if (scope === 'all' || scope === 'tokens') delete state.tokens;
    if (scope === 'all' || scope === 'verifier') delete state.code_verifier;
    if (scope === 'all' || scope === 'discovery') discovery = undefined;
    saveState();
  },
  async redirectToAuthorization(authorizationUrl) {
    redirects++;
    if (opts.phase !== 'connect') {
      throw new Error('the SDK asked for a new authorization in phase call (its saved tokens and refresh did not do)');
    }
    const metadata = discovery?.authorizationServerMetadata;
    const expectedEndpoint = metadata?.authorization_endpoint;
    if (expectedEndpoint && `${authorizationUrl.origin}${authorizationUrl.pathname}` !== expectedEndpoint) {
      throw new Error(`the SDK opened ${authorizationUrl.origin}${authorizationUrl.pathname}, not ${expectedEndpoint}`);
    }
    log(`opening the authorization URL (scope=${authorizationUrl.searchParams.get('scope')}, resource=${authorizationUrl.searchParams.get('resource')})`);
    const back = await consent(authorizationUrl.href, { log: (m) => log(`browser: ${m}`) });
    const p = back.params;
    if (p.error) throw new Error(`authorization refused: ${p.error} ${p.error_description ?? ''}`);
    if (p.state !== state.oauth_state) throw new Error('the state that came back is not the one sent');
    // RFC 9207 (the SDK does not check it): iss must be the authorization server's issuer.
    if (metadata?.authorization_response_iss_parameter_supported && p.iss !== metadata.issuer) {
      throw new Error(`iss ${p.iss} is not the issuer ${metadata.issuer}`);
    }
    if (!p.code) throw new Error('no code came back');
    result.authorization = {
      scope: authorizationUrl.searchParams.get('scope'),
      resource: authorizationUrl.searchParams.get('resource'),
      code_challenge_method: authorizationUrl.searchParams.get('code_challenge_method'),
      iss: p.iss,
    };
    pendingCode = p.code;
  },
};

// ---------------------------------------------------------------- MCP

function newTransport() {
  return new StreamableHTTPClientTransport(new URL(opts.url), { authProvider: provider, fetch: recordingFetch });
}

function newClient() {
  return new Client({ name: opts.clientName, version: '0.1.0' });
}

async function useTools(client) {
  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name).sort();
  if (!names.includes('get_identity')) throw new Error(`tools/list has no get_identity: ${names.join(', ')}`);
  const identity = await client.callTool({ name: 'get_identity', arguments: {} });
  if (identity.isError) throw new Error(`get_identity failed: ${JSON.stringify(identity.content)}`);
  const username = identity.structuredContent?.username;
  if (username !== opts.expectUsername) {
    throw new Error(`get_identity: username ${JSON.stringify(username)}, want ${opts.expectUsername}`);
  }
  const boxes = await client.callTool({ name: 'list_mailboxes', arguments: {} });
  if (boxes.isError) throw new Error(`list_mailboxes failed: ${JSON.stringify(boxes.content)}`);
  const mailboxes = boxes.structuredContent?.mailboxes;
  if (!Array.isArray(mailboxes) || mailboxes.length === 0) {
    throw new Error(`list_mailboxes: no mailboxes in ${JSON.stringify(boxes.structuredContent)}`);
  }
  return { tools: names, username, mailboxes: mailboxes.length };
}

async function main() {
  if (opts.phase === 'connect') {
    const port = await listen(callbackServer, 0);
    state.mcp_url = opts.url;
    state.redirect_url = `http://127.0.0.1:${port}/callback`;
    if (opts.cimd) {
      const u = new URL(opts.cimd);
      state.cimd_url = isLoopback(u.href) ? await serveMetadata(u.href) : u.href;
      if (u.protocol === 'https:') sdkClientMetadataUrl = state.cimd_url;
      result.cimd = {
        url: state.cimd_url,
        served_here: Boolean(metadataServer),
        client_id_via: sdkClientMetadataUrl ? 'sdk clientMetadataUrl' : 'provider (SDK 1.32.2 takes only https clientMetadataUrl)',
      };
    }
    saveState();

    // 1. Unauthenticated: the SDK meets the 401, discovers, registers, and "opens the browser".
    let client = newClient();
    let transport = newTransport();
    try {
      await client.connect(transport);
      throw new Error('connected without authorization: expected a 401 from the server first');
    } catch (e) {
      if (!(e instanceof UnauthorizedError)) throw e;
      if (!pendingCode) throw new Error(`unauthorized, but no authorization code came back: ${e.message}`);
    }
    // 2. The code the browser brought back: exchange it, then connect again.
    await transport.finishAuth(pendingCode);
    await client.close().catch(() => {});
    client = newClient();
    transport = newTransport();
    await client.connect(transport);
    Object.assign(result, await useTools(client));
    result.server = client.getServerVersion();
    result.protocol_version = transport.protocolVersion;
    await client.close();
  } else {
    if (state.cimd_url) {
      const u = new URL(state.cimd_url);
      if (isLoopback(u.href)) await serveMetadata(u.href);
      if (u.protocol === 'https:') sdkClientMetadataUrl = state.cimd_url;
      result.cimd = { url: state.cimd_url, served_here: Boolean(metadataServer) };
    }
    const client = newClient();
    const transport = newTransport();
    await client.connect(transport);
    Object.assign(result, await useTools(client));
    result.server = client.getServerVersion();
    result.protocol_version = transport.protocolVersion;
    await client.close();
  }
  result.client_id = state.client_information?.client_id;
  result.registered = registered;
  result.authorized = redirects > 0;
  result.refreshed = opts.phase === 'call' ? tokensSaved > 0 : tokensSaved > 1;
  result.token_requests = tokenRequests;
  result.requests = requests;
  result.http_errors = errors;
  if (metadataServer) result.cimd.fetches = metadataFetches;
  if (callbackServer.listening) callbackServer.close();
  metadataServer?.close();
  finish(true);
}

main().catch((e) => {
  result.token_requests = tokenRequests;
  result.requests = requests;
  result.http_errors = errors;
  fail(e?.stack && process.env.TS_OAUTH_CLIENT_DEBUG ? e.stack : (e?.message ?? String(e)));
});
