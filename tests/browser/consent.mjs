#!/usr/bin/env node
// mailconnect's consent page in a real browser: headless Chromium (Debian's /usr/bin/chromium)
// driven by playwright-core (pinned in package.json; no browser download, ever).
//
// usage: node consent.mjs <approve|deny|frame> --issuer http://127.0.0.1:PORT
//            [--chromium /usr/bin/chromium] [--out DIR] [--timeout-ms 15000]
//
// Each scenario registers a client named `<script>alert(1)</script> Evil` (DCR) with the
// redirect URI of a loopback listener run here, builds an S256 authorize URL and:
//   approve  opens it, reads the page as a person sees it (client name as text, the redirect
//            host, the loopback warning, the framing headers), clicks Approve and waits for the
//            browser to land on the client's redirect URI; the code is then exchanged at
//            /token to prove it is real.
//   deny     opens it and clicks Deny; the browser must land on the redirect URI with
//            error=access_denied.
//   frame    opens a page on another loopback origin that frames the authorize URL (and, as a
//            control, a harmless cross-origin page with a form), and reports what rendered.
// Prints one JSON line of observations to stdout; the Rust test (tests/it/browser_consent.rs)
// judges them. Exit 0 when the observations were gathered, 1 when the harness itself failed,
// 2 on a usage error. With --out, screenshots are written there. Logs go to stderr.
// All traffic stays on 127.0.0.1.

import { createServer } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { launch } from './chromium.mjs';

const EVIL_NAME = '<script>alert(1)</script> Evil';

function log(msg) {
  process.stderr.write(`browser-consent: ${msg}\n`);
}

function usage(msg) {
  if (msg) log(msg);
  log('usage: node consent.mjs <approve|deny|frame> --issuer URL [--chromium PATH] [--out DIR] [--timeout-ms N]');
  process.exit(2);
}

const [scenario, ...rest] = process.argv.slice(2);
if (!['approve', 'deny', 'frame'].includes(scenario)) usage(`unknown scenario ${scenario ?? '(none)'}`);
const opts = { chromium: '/usr/bin/chromium', timeoutMs: 15_000 };
for (let i = 0; i < rest.length; i += 2) {
  const key = { '--issuer': 'issuer', '--chromium': 'chromium', '--out': 'out', '--timeout-ms': 'timeoutMs' }[rest[i]];
  if (!key || rest[i + 1] === undefined) usage(`bad argument ${rest[i]}`);
  opts[key] = key === 'timeoutMs' ? Number(rest[i + 1]) : rest[i + 1];
}
if (!opts.issuer) usage('--issuer is required');
const issuer = opts.issuer.replace(/\/$/, '');
if (!/^http:\/\/127\.0\.0\.1:\d+$/.test(issuer)) usage(`--issuer must be http://127.0.0.1:PORT, got ${issuer}`);

const PLAYWRIGHT_VERSION = JSON.parse(
  readFileSync(new URL('./node_modules/playwright-core/package.json', import.meta.url), 'utf8'),
).version;
const out = { scenario, issuer, playwright_core: PLAYWRIGHT_VERSION };

// ---------------------------------------------------------------- loopback servers

function listen(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server.address().port));
  });
}

/** The client's side: its redirect URI records what arrives; /control is a frameable page. */
const arrivals = [];
let arrived;
const arrival = new Promise((resolve) => {
  arrived = resolve;
});
const clientServer = createServer((req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (url.pathname === '/callback') {
    arrivals.push(Object.fromEntries(url.searchParams));
    arrived();
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>client</title><p id="client-callback">The client got the answer.</p>');
  } else if (url.pathname === '/control') {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>control</title><form method="post" action="/x"><button>Control</button></form>');
  } else {
    res.writeHead(404).end();
  }
});

/** Another origin that frames whatever it is asked to (the clickjacking attempt). */
let framePage = '';
const evilServer = createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/html' });
  res.end(framePage);
});

// ---------------------------------------------------------------- OAuth helpers

async function register(redirectUri) {
  const res = await fetch(`${issuer}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ client_name: EVIL_NAME, redirect_uris: [redirectUri], token_endpoint_auth_method: 'none' }),
  });
  const body = await res.json();
  if (res.status !== 201) throw new Error(`registration refused (${res.status}): ${JSON.stringify(body)}`);
  return body;
}

function authorizeUrl(clientId, redirectUri) {
  const verifier = randomBytes(32).toString('base64url');
  const state = randomBytes(12).toString('base64url');
  const u = new URL(`${issuer}/authorize`);
  u.search = new URLSearchParams({
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirectUri,
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
    state,
    scope: 'mail',
    resource: `${issuer}/mcp`,
  }).toString();
  return { url: u.href, verifier, state };
}

// ---------------------------------------------------------------- browser helpers

/** A fresh context and page that record dialogs, console messages and page errors. */
async function newPage(browser, name) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const seen = { dialogs: [], console: [], page_errors: [] };
  page.on('dialog', async (d) => {
    seen.dialogs.push(`${d.type()}: ${d.message()}`);
    await d.dismiss().catch(() => {});
  });
  page.on('console', (m) => seen.console.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => seen.page_errors.push(String(e)));
  page.setDefaultTimeout(opts.timeoutMs);
  return { context, page, seen, name };
}

async function screenshot(page, name) {
  if (!opts.out) return;
  await page.screenshot({ path: join(opts.out, `${name}.png`), fullPage: true }).catch((e) => log(`screenshot ${name}: ${e.message}`));
}

/** Clicks the decision button and waits for the client's listener (or a CSP refusal). */
async function decide(page, seen, decision) {
  const before = arrivals.length;
  const blocked = new Promise((resolve) => {
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) setTimeout(() => resolve('csp'), 1000);
    });
  });
  const timeout = new Promise((resolve) => setTimeout(() => resolve('timeout'), opts.timeoutMs));
  await page.click(`button[name="decision"][value="${decision}"]`);
  const how = await Promise.race([arrival.then(() => 'arrived'), blocked, timeout]);
  // Let the navigation settle on whatever page the browser ended on.
  await page.waitForLoadState('load', { timeout: 3000 }).catch(() => {});
  return {
    ended: how,
    arrivals: arrivals.slice(before),
    final_url: page.url(),
    final_text: (await page.locator('body').innerText({ timeout: 2000 }).catch(() => '')).slice(0, 300),
    csp_console: seen.console.filter((c) => /Content Security Policy/i.test(c)),
  };
}

// ---------------------------------------------------------------- scenarios

async function consentPage(page, url) {
  const response = await page.goto(url);
  const headers = await response.allHeaders();
  const h1 = await page.locator('h1').innerText();
  const body = await page.locator('body').innerText();
  return {
    status: response.status(),
    x_frame_options: headers['x-frame-options'] ?? null,
    content_security_policy: headers['content-security-policy'] ?? null,
    title: await page.title(),
    h1,
    // The name as text a person reads: the literal characters, not markup.
    name_shown_as_text: (await page.getByText(EVIL_NAME, { exact: false }).count()) > 0 && h1.includes(EVIL_NAME),
    script_elements: await page.evaluate(() => document.scripts.length),
    redirect_host: await page.locator('#redirect-host').innerText({ timeout: 2000 }).catch(() => null),
    mentions_redirect_host: body.includes('127.0.0.1'),
    loopback_warning: /loopback/i.test(body),
    forms: await page.locator('form').count(),
    buttons: await page.locator('form button[name="decision"]').evaluateAll((bs) => bs.map((b) => b.value)),
    body_text: body.slice(0, 1500),
  };
}

async function exchange(clientId, redirectUri, code, verifier) {
  const res = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: redirectUri,
      code_verifier: verifier,
      client_id: clientId,
      resource: `${issuer}/mcp`,
    }),
  });
  const body = await res.json().catch(() => ({}));
  return { status: res.status, token_type: body.token_type ?? null, has_access_token: Boolean(body.access_token), error: body.error ?? null };
}

async function run(browser, redirectUri, client) {
  const { url, verifier, state } = authorizeUrl(client.client_id, redirectUri);
  out.state = state;
  if (scenario === 'approve' || scenario === 'deny') {
    const { page, seen } = await newPage(browser, scenario);
    out.page = await consentPage(page, url);
    await screenshot(page, `${scenario}-consent`);
    out.decision = await decide(page, seen, scenario);
    await screenshot(page, `${scenario}-after`);
    out.dialogs = seen.dialogs;
    out.page_errors = seen.page_errors;
    out.console = seen.console;
    const back = out.decision.arrivals[0];
    if (scenario === 'approve' && back?.code) {
      out.token = await exchange(client.client_id, redirectUri, back.code, verifier);
    }
  } else {
    const evilPort = await listen(evilServer);
    const control = `${new URL(redirectUri).origin}/control`;
    framePage =
      '<!doctype html><title>framing</title><h1>Totally not a clickjacking page</h1>' +
      `<iframe id="victim" src="${url.replace(/&/g, '&amp;')}" width="800" height="600"></iframe>` +
      `<iframe id="control" src="${control}" width="300" height="100"></iframe>`;
    const { page, seen } = await newPage(browser, 'frame');
    const responses = [];
    page.on('response', (r) => responses.push({ url: r.url().split('?')[0], status: r.status() }));
    await page.goto(`http://127.0.0.1:${evilPort}/`);
    await page.waitForLoadState('load');
    await page.waitForTimeout(500);
    const inspect = async (id) => {
      const handle = await page.$(`iframe#${id}`);
      const frame = handle && (await handle.contentFrame());
      if (!frame) return { frame: false };
      const forms = await frame.evaluate(() => document.querySelectorAll('form').length).catch(() => null);
      const text = await frame.evaluate(() => document.body?.innerText ?? '').catch(() => null);
      return { frame: true, url: frame.url(), forms, text: (text ?? '').slice(0, 200) };
    };
    out.framing_origin = `http://127.0.0.1:${evilPort}`;
    out.victim = await inspect('victim');
    out.control = await inspect('control');
    out.responses = responses;
    out.console = seen.console;
    out.dialogs = seen.dialogs;
    await screenshot(page, 'frame');
  }
}

async function main() {
  const clientPort = await listen(clientServer);
  const redirectUri = `http://127.0.0.1:${clientPort}/callback`;
  out.redirect_uri = redirectUri;
  const client = await register(redirectUri);
  out.client_id = client.client_id;
  out.registered_name = client.client_name;
  const started = Date.now();
  const browser = await launch(opts.chromium);
  out.chromium = browser.version();
  out.launch_ms = Date.now() - started;
  try {
    await run(browser, redirectUri, client);
  } finally {
    await browser.close();
  }
  out.elapsed_ms = Date.now() - started;
}

const watchdog = setTimeout(() => {
  out.error = 'timed out';
  process.stdout.write(`${JSON.stringify(out)}\n`);
  process.exit(1);
}, opts.timeoutMs * 4);
watchdog.unref();

main().then(
  () => {
    process.stdout.write(`${JSON.stringify(out)}\n`);
    process.exit(0);
  },
  (e) => {
    out.error = e?.message ?? String(e);
    log(`error: ${out.error}`);
    process.stdout.write(`${JSON.stringify(out)}\n`);
    process.exit(1);
  },
);
