#!/usr/bin/env node
// A tiny headless "browser" for mailconnect's consent screen (Node >= 20, no dependencies).
//
// Given an authorization URL of ours it does what a person in a browser does:
//   1. GET the authorize URL (cookie jar on) → 200 HTML consent page with one
//      <form method="post" action="/authorize/decision"> and its hidden request_id/csrf_token;
//   2. POST the form with decision=approve (or deny) → 303 to the upstream's authorize URL;
//   3. follow the redirects (the upstream's 302 to our /auth/callback, our 303 onward) until one
//      points at the client's redirect_uri (the authorize URL's redirect_uri parameter).
// Every hop must stay on a loopback address; nothing else is ever contacted.
//
// Module use:
//   import { consent } from './consent-bot.mjs';
//   const { url, params } = await consent(authorizeUrl);          // url: the client's redirect
//   await consent(authorizeUrl, { decision: 'deny' });
// CLI use (the $BROWSER contract, e.g. BROWSER="node consent-bot.mjs"):
//   node consent-bot.mjs <authorize-url>
//   walks the flow, then GETs the final loopback redirect so that the waiting client's callback
//   listener receives it. Exit 0 when the listener answered 2xx/3xx, 1 otherwise.
//   CONSENT_BOT_DECISION=deny clicks Deny instead.
// Logs go to stderr only (codes, tokens and cookie values are never logged).

import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const DEFAULT_TIMEOUT_MS = 20_000;
const MAX_HOPS = 10;

function defaultLog(msg) {
  process.stderr.write(`consent-bot: ${msg}\n`);
}

/** Whether `url`'s host is a loopback address (127.0.0.0/8, ::1, localhost). */
export function isLoopback(url) {
  const host = new URL(url).hostname;
  return host === 'localhost' || host === '[::1]' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}

/** `url` for a log line: origin and path, the names of the query parameters only. */
function redact(url) {
  const u = new URL(url);
  const names = [...u.searchParams.keys()];
  return `${u.origin}${u.pathname}${names.length ? `?{${names.join(',')}}` : ''}`;
}

// ---------------------------------------------------------------- cookies

/**
 * A cookie jar with a browser's scoping: per host (ports share cookies, as in browsers,
 * RFC 6265 §8.5), `Path` prefix match, `Max-Age`/`Expires` deletion. No domain cookies.
 */
export class CookieJar {
  constructor() {
    this.cookies = []; // {host, name, value, path, expires}
  }

  store(url, setCookieHeaders) {
    const u = new URL(url);
    for (const header of setCookieHeaders) {
      const [pair, ...attrs] = header.split(';');
      const eq = pair.indexOf('=');
      if (eq < 1) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      let path = u.pathname.replace(/\/[^/]*$/, '') || '/';
      let expires = Infinity;
      for (const attr of attrs) {
        const [k, v = ''] = attr.split('=').map((s) => s.trim());
        const key = k.toLowerCase();
        if (key === 'path' && v.startsWith('/')) path = v;
        else if (key === 'max-age' && /^-?\d+$/.test(v)) expires = Date.now() + Number(v) * 1000;
        else if (key === 'expires' && expires === Infinity && !Number.isNaN(Date.parse(v))) expires = Date.parse(v);
      }
      this.cookies = this.cookies.filter((c) => !(c.host === u.hostname && c.name === name && c.path === path));
      if (value !== '' && expires > Date.now()) {
        this.cookies.push({ host: u.hostname, name, value, path, expires });
      }
    }
  }

  header(url) {
    const u = new URL(url);
    const now = Date.now();
    const matching = this.cookies.filter(
      (c) =>
        c.host === u.hostname &&
        c.expires > now &&
        (u.pathname === c.path || u.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`)),
    );
    return matching.length ? matching.map((c) => `${c.name}=${c.value}`).join('; ') : undefined;
  }

  names(url) {
    return (this.header(url) ?? '').split('; ').filter(Boolean).map((p) => p.split('=')[0]);
  }
}

// ---------------------------------------------------------------- HTML

function decodeEntities(s) {
  return s.replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos);/gi, (_, e) => {
    const k = e.toLowerCase();
    if (k === 'amp') return '&';
    if (k === 'lt') return '<';
    if (k === 'gt') return '>';
    if (k === 'quot') return '"';
    if (k === 'apos') return "'";
    return String.fromCodePoint(k.startsWith('#x') ? parseInt(k.slice(2), 16) : parseInt(k.slice(1), 10));
  });
}

function attributes(tag) {
  const attrs = {};
  const re = /([^\s=/>]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?/g;
  const inner = tag.replace(/^<\s*[a-z]+/i, '').replace(/\/?>$/, '');
  for (const m of inner.matchAll(re)) {
    attrs[m[1].toLowerCase()] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return attrs;
}

/**
 * The page's forms: [{method, action, hidden: {name: value}, buttons: [{name, value}]}].
 */
export function parseForms(html) {
  const forms = [];
  for (const m of html.matchAll(/<form\b[^>]*>([\s\S]*?)<\/form\s*>/gi)) {
    const open = m[0].match(/^<form\b[^>]*>/i)[0];
    const a = attributes(open);
    const hidden = {};
    const buttons = [];
    for (const input of m[1].matchAll(/<input\b[^>]*>/gi)) {
      const ia = attributes(input[0]);
      if ((ia.type ?? 'text').toLowerCase() === 'hidden' && ia.name) hidden[ia.name] = ia.value ?? '';
      if ((ia.type ?? '').toLowerCase() === 'submit' && ia.name) buttons.push({ name: ia.name, value: ia.value ?? '' });
    }
    for (const button of m[1].matchAll(/<button\b[^>]*>/gi)) {
      const ba = attributes(button[0]);
      if ((ba.type ?? 'submit').toLowerCase() === 'submit' && ba.name) buttons.push({ name: ba.name, value: ba.value ?? '' });
    }
    forms.push({ method: (a.method ?? 'get').toLowerCase(), action: a.action ?? '', hidden, buttons });
  }
  return forms;
}

/** A page's text, for error messages: no markup, styles or scripts. */
export function pageText(html, max = 500) {
  const text = decodeEntities(
    html
      .replace(/<(style|script)\b[\s\S]*?<\/\1\s*>/gi, ' ')
      .replace(/<[^>]*>/g, ' '),
  ).replace(/\s+/g, ' ').trim();
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

// ---------------------------------------------------------------- the walk

function sameTarget(url, redirectUri) {
  const a = new URL(url);
  const b = new URL(redirectUri);
  return a.origin === b.origin && a.pathname === b.pathname;
}

/**
 * Walks from our authorize URL, through consent and the upstream, to the client's redirect.
 * Resolves to {url, params, hops}: `url` is the client's redirect URL (not fetched),
 * `params` its query, `hops` the redirect chain (redacted). Rejects with a readable error when
 * a step answers something unexpected.
 */
export async function consent(authorizeUrl, options = {}) {
  const decision = options.decision ?? 'approve';
  const log = options.log ?? defaultLog;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const jar = options.jar ?? new CookieJar();
  const start = new URL(authorizeUrl);
  const redirectUri = start.searchParams.get('redirect_uri');
  if (!redirectUri) throw new Error(`the authorize URL has no redirect_uri: ${redact(authorizeUrl)}`);
  const hops = [];

  async function request(method, url, body, origin) {
    if (!isLoopback(url)) throw new Error(`refusing to leave loopback: ${redact(url)}`);
    const headers = { accept: 'text/html,application/xhtml+xml;q=0.9,*/*;q=0.8', 'user-agent': 'mailconnect-consent-bot' };
    const cookie = jar.header(url);
    const sent = cookie ? ` [cookies: ${jar.names(url).join(',')}]` : '';
    if (cookie) headers.cookie = cookie;
    if (body) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers.origin = origin; // a browser sends Origin with a form POST
    }
    const res = await fetch(url, { method, headers, body, redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
    jar.store(url, res.headers.getSetCookie());
    const text = await res.text();
    const location = res.headers.get('location');
    const loc = location ? new URL(location, url).href : undefined;
    log(`${method} ${redact(url)}${sent} → ${res.status}${loc ? ` → ${redact(loc)}` : ''}`);
    hops.push({ method, url: redact(url), status: res.status });
    return { status: res.status, headers: res.headers, text, location: loc };
  }

  function done(url) {
    const params = Object.fromEntries(new URL(url).searchParams);
    log(`back at the client's redirect_uri with ${Object.keys(params).join(', ') || 'no parameters'}`);
    return { url, params, hops };
  }

  let page = await request('GET', authorizeUrl);
  if (page.status >= 300 && page.status < 400 && page.location && sameTarget(page.location, redirectUri)) {
    return done(page.location); // an error answered straight to the client (e.g. invalid_scope)
  }
  if (page.status !== 200) {
    throw new Error(`GET /authorize answered ${page.status}, not a consent page: ${pageText(page.text)}`);
  }
  const forms = parseForms(page.text);
  if (forms.length !== 1) throw new Error(`the consent page has ${forms.length} forms, want exactly 1`);
  const [form] = forms;
  if (form.method !== 'post') throw new Error(`the consent form's method is ${form.method}, want post`);
  const action = new URL(form.action, authorizeUrl).href;
  for (const name of ['request_id', 'csrf_token']) {
    if (!form.hidden[name]) throw new Error(`the consent form has no hidden ${name}`);
  }
  const button = form.buttons.find((b) => b.name === 'decision' && b.value === decision);
  if (!button) {
    throw new Error(`the consent form has no decision=${decision} button (has ${JSON.stringify(form.buttons)})`);
  }
  const body = new URLSearchParams({ ...form.hidden, [button.name]: button.value }).toString();
  page = await request('POST', action, body, start.origin);

  for (let hop = 0; hop < MAX_HOPS; hop++) {
    if (page.status < 300 || page.status >= 400 || !page.location) {
      throw new Error(`expected a redirect, got ${page.status}: ${pageText(page.text)}`);
    }
    if (sameTarget(page.location, redirectUri)) return done(page.location);
    page = await request('GET', page.location);
  }
  throw new Error(`no redirect to the client after ${MAX_HOPS} hops`);
}

// ---------------------------------------------------------------- CLI

async function main(argv) {
  const [url] = argv;
  if (!url || argv.length !== 1) {
    defaultLog('usage: node consent-bot.mjs <authorize-url>   (CONSENT_BOT_DECISION=approve|deny)');
    return 2;
  }
  const decision = process.env.CONSENT_BOT_DECISION || 'approve';
  defaultLog(`opening ${new URL(url).origin}${new URL(url).pathname} (decision: ${decision})`);
  const { url: back } = await consent(url, { decision });
  if (!isLoopback(back)) {
    defaultLog(`the client's redirect ${redact(back)} is not on loopback; not delivering it`);
    return 1;
  }
  // Hand the redirect to the client's callback listener, as the browser's last navigation.
  const res = await fetch(back, { redirect: 'manual', signal: AbortSignal.timeout(DEFAULT_TIMEOUT_MS) });
  const text = await res.text();
  defaultLog(`delivered to ${redact(back)} → ${res.status} ${text.replace(/\s+/g, ' ').slice(0, 200)}`);
  return res.status < 400 ? 0 : 1;
}

function isMain() {
  if (!process.argv[1]) return false;
  try {
    return import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
  } catch {
    return false;
  }
}

if (isMain()) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      defaultLog(`error: ${err?.message ?? err}`);
      process.exit(1);
    },
  );
}
