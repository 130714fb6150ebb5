#!/usr/bin/env node
// mailconnect's send-approval review page (/approve/:id, src/inbound/approve.rs + approve.js) in
// a real browser: headless Chromium (Debian's /usr/bin/chromium) driven by playwright-core
// (pinned in package.json; no browser download, ever). Same launch flags as consent.mjs.
//
// usage: node review.mjs <scenario> --base http://127.0.0.1:PORT --link LINK|-
//            [--sign-in link|settings] [--out DIR] [--chromium /usr/bin/chromium] [--timeout-ms 15000]
//
// LINK is a send_draft result's approval_url ({base}/approve/{id}#k={key}). The browser starts
// signed out and signs in through the app's upstream (the stand-in, which approves at once):
//   --sign-in link      (default) from the review page: opens the link signed out
//                       (-> review-1-signed-out.png, approve only), clicks its Sign in button
//                       and must come back to the review page;
//   --sign-in settings  at /settings first, then opens the link (a person already signed in).
// Scenarios, once signed in on the review page:
//   approve    reads the draft (-> review-2-draft.png); opens the whole link in a phone-sized
//              tab of the same session (-> review-2-draft-phone.png); clicks Approve
//              (-> review-3-approved.png); opens the link once more.
//   no-key     (the link without its fragment) reads the error (-> review-no-key.png); opens the
//              link with a wrong key (-> review-wrong-key.png); clicks Don't send.
//   frame      a page on another origin frames the whole link (and, as a control, a harmless
//              page of a third origin with a form) (-> review-framed.png).
//   other      (the test made the upstream sign in another mailbox) reads the refusal
//              (-> review-other-mailbox.png); posts the approve form with that session's own
//              CSRF token from /settings.
//   csrf       pages of another origin (127.0.0.1, another port: same site), another site
//              (localhost) and a data: URL each auto-submit decision=approve to /approve/:id;
//              then opens the link again.
//   expire     (--link - --sign-in settings) signed in, prints {"ready":true} and reads
//              "LINK NOT_BEFORE_MS" from stdin; opens the link, waits until NOT_BEFORE_MS (epoch
//              ms, past the approval's expiry), clicks Approve on the open page
//              (-> review-expired.png), then opens the link again.
// A sign-in that does not end where it should stops the scenario there (out.stopped); the
// test reports it with what Chromium said (out.sign_in.csp_console, navigation_error).
// Prints one JSON line of observations to stdout (last); the Rust test
// (tests/it/browser_review.rs) judges them. Exit 0 when the observations were gathered, 1 when
// the harness itself failed (a selector not found, a timeout), 2 on a usage error. With --out,
// screenshots are written there. Logs go to stderr. All traffic stays on loopback.

import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { launch, DESKTOP, PHONE } from './chromium.mjs';

const SCENARIOS = ['approve', 'no-key', 'frame', 'other', 'csrf', 'expire'];

function log(msg) {
  process.stderr.write(`browser-review: ${msg}\n`);
}

function usage(msg) {
  if (msg) log(msg);
  log(`usage: node review.mjs <${SCENARIOS.join('|')}> --base URL --link LINK|- [--sign-in link|settings] [--out DIR] [--chromium PATH] [--timeout-ms N]`);
  process.exit(2);
}

const [scenario, ...rest] = process.argv.slice(2);
if (!SCENARIOS.includes(scenario)) usage(`unknown scenario ${scenario ?? '(none)'}`);
const opts = { chromium: '/usr/bin/chromium', timeoutMs: 15_000, signIn: 'link' };
for (let i = 0; i < rest.length; i += 2) {
  const key = {
    '--base': 'base',
    '--link': 'link',
    '--sign-in': 'signIn',
    '--out': 'out',
    '--chromium': 'chromium',
    '--timeout-ms': 'timeoutMs',
  }[rest[i]];
  if (!key || rest[i + 1] === undefined) usage(`bad argument ${rest[i]}`);
  opts[key] = key === 'timeoutMs' ? Number(rest[i + 1]) : rest[i + 1];
}
for (const k of ['base', 'link']) if (!opts[k]) usage(`--${k} is required`);
const base = opts.base.replace(/\/$/, '');
if (!/^http:\/\/127\.0\.0\.1:\d+$/.test(base)) usage(`--base must be http://127.0.0.1:PORT, got ${base}`);
if ((opts.link === '-') !== (scenario === 'expire')) usage('--link - (from stdin) is for expire, and only for it');
if (!['link', 'settings'].includes(opts.signIn)) usage(`--sign-in must be link or settings, got ${opts.signIn}`);
if (scenario === 'expire' && opts.signIn !== 'settings') usage('expire signs in first: --sign-in settings');
if (opts.out) mkdirSync(opts.out, { recursive: true });

const PLAYWRIGHT_VERSION = JSON.parse(
  readFileSync(new URL('./node_modules/playwright-core/package.json', import.meta.url), 'utf8'),
).version;
const out = { scenario, base, playwright_core: PLAYWRIGHT_VERSION, screenshots: [], steps: [] };
// Every dialog, console message and page error of every page.
const seen = { dialogs: [], console: [], page_errors: [] };

/** A review link's parts: the path (/approve/ID), the id and the key from the fragment. */
function parseLink(link) {
  const [url, fragment = ''] = link.split('#');
  if (!url.startsWith(`${base}/approve/`)) throw new Error(`not a review link of ${base}: ${link}`);
  const id = url.slice(`${base}/approve/`.length);
  if (!/^[A-Za-z0-9_-]+$/.test(id)) throw new Error(`bad approval id in ${link}`);
  return { link, url, id, key: new URLSearchParams(fragment).get('k') };
}

// ---------------------------------------------------------------- browser helpers

async function newPage(browser, device, extra = {}) {
  const context = await browser.newContext({ ...device, ...extra });
  const page = await context.newPage();
  page.on('dialog', async (d) => {
    seen.dialogs.push(`${d.type()}: ${d.message()}`);
    await d.dismiss().catch(() => {});
  });
  page.on('console', (m) => seen.console.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => seen.page_errors.push(String(e)));
  page.setDefaultTimeout(opts.timeoutMs);
  page.setDefaultNavigationTimeout(opts.timeoutMs);
  return { context, page };
}

function step(name) {
  out.steps.push(name);
  log(name);
}

async function screenshot(page, name) {
  if (!opts.out) return;
  const path = join(opts.out, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  out.screenshots.push(path);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

/**
 * Waits until the review script is done: the draft or the error is shown (or the page has no
 * sealed copy to open). Polled from here: the page's CSP allows no script of ours in it.
 */
async function settle(page) {
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    const done = await page
      .evaluate(() => {
        const root = document.getElementById('review');
        if (!root || !root.dataset.sealed) return true;
        return !document.getElementById('draft').hidden || !document.getElementById('review-error').hidden;
      })
      .catch(() => false);
    if (done) return;
    await sleep(50);
  }
}

/** Opens `url` as a new document (never a same-document fragment change). */
async function open(page, url) {
  await page.goto('about:blank');
  const response = await page.goto(url, { waitUntil: 'load' });
  await settle(page);
  return response;
}

/** The URLs (without query) a navigation went through: each redirect, then where it ended. */
function chain(response) {
  const urls = [];
  for (let r = response?.request(); r; r = r.redirectedFrom()) urls.unshift(`${r.method()} ${r.url().split('?')[0]}`);
  return urls;
}

/**
 * Runs `action` (a click) and waits for the navigation it starts to load. A navigation the
 * browser refuses (e.g. a Content-Security-Policy form-action on a redirect) is reported, not
 * thrown, with what the console said.
 */
async function follow(page, action) {
  const from = seen.console.length;
  const nav = page.waitForNavigation({ waitUntil: 'load' }).then(
    (response) => ({ response }),
    (e) => ({ response: null, error: e.message.split('\n')[0] }),
  );
  await action();
  const { response, error } = await nav;
  await settle(page);
  return {
    response,
    status: response?.status() ?? null,
    chain: chain(response),
    final_url: page.url(),
    navigation_error: error ?? null,
    csp_console: seen.console.slice(from).filter((c) => /Content.Security.Policy/i.test(c)),
  };
}

const signInButton = (page) => page.locator('form[action="/settings/sign-in"] button[name="sign_in"]');

/** What a person sees (and what the page holds) on a review page, or on where it ended up. */
async function view(page, response, link) {
  const headers = response ? await response.allHeaders() : {};
  const v = await page.evaluate((slot) => {
    const $ = (id) => document.getElementById(id);
    const text = (id) => $(id)?.textContent ?? null;
    const shown = (id) => Boolean($(id)) && !$(id).hidden;
    const approve = $('approve');
    const decline = $('decline');
    return {
      url: location.href,
      title: document.title,
      h1: document.querySelector('h1')?.textContent ?? null,
      outcome: text('outcome'),
      review: Boolean($('review')),
      sealed: Boolean($('review')?.dataset.sealed),
      review_error: shown('review-error') ? text('review-error') : null,
      draft_shown: shown('draft'),
      fields: {
        from: text('f-from'),
        to: text('f-to'),
        cc: text('f-cc'),
        bcc: text('f-bcc'),
        reply_to: text('f-reply-to'),
        subject: text('f-subject'),
        send: text('f-send'),
        attachments: text('f-attachments'),
        text: text('f-text'),
        html_shown: shown('f-html-box'),
      },
      approve: approve
        ? {
            disabled: approve.disabled,
            form_action: approve.form?.getAttribute('action') ?? null,
            // How it looks: whether a disabled Approve looks any different from an enabled one.
            look: ['background-color', 'color', 'opacity', 'cursor'].map((p) => getComputedStyle(approve).getPropertyValue(p)).join('; '),
          }
        : null,
      decline: decline ? { disabled: decline.disabled } : null,
      csrf_field: Boolean(document.querySelector('input[name="csrf_token"]')?.value),
      sign_in_button: document.querySelectorAll('form[action="/settings/sign-in"] button[name="sign_in"]').length,
      next: document.querySelector('form[action="/settings/sign-in"] input[name="next"]')?.value ?? null,
      scripts: [...document.scripts].map((s) => s.getAttribute('src')),
      stored_key: slot ? sessionStorage.getItem(slot) : null,
      body_text: (document.body?.innerText ?? '').slice(0, 1500),
    };
  }, link ? `mc-approve-${link.id}` : null).catch((e) => ({ url: page.url(), evaluate_error: e.message }));
  const stored = v.stored_key;
  delete v.stored_key;
  return {
    status: response?.status() ?? null,
    x_frame_options: headers['x-frame-options'] ?? null,
    content_security_policy: headers['content-security-policy'] ?? null,
    cache_control: headers['cache-control'] ?? null,
    referrer_policy: headers['referrer-policy'] ?? null,
    ...v,
    // The key the script kept in this tab's sessionStorage (compared here, not printed).
    stored_key: stored === null || stored === undefined ? 'none' : link?.key && stored === link.key ? 'the link key' : 'another key',
  };
}

/** How the page fits the device's width (as settings.mjs measures it). */
async function fit(page, device) {
  return page.evaluate((deviceWidth) => {
    const describe = (el, r) =>
      `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''} [${Math.round(r.left)}..${Math.round(r.right)}] ${(el.innerText ?? '').slice(0, 60)}`;
    const b = document.body.getBoundingClientRect();
    const bs = getComputedStyle(document.body);
    const column = b.right - parseFloat(bs.paddingRight) - parseFloat(bs.borderRightWidth);
    const sticking = [];
    const pastColumn = [];
    for (const el of document.body.querySelectorAll('*')) {
      const r = el.getBoundingClientRect();
      if (r.width === 0) continue;
      if (r.right > deviceWidth + 1 || r.left < -1) sticking.push(describe(el, r));
      if (r.right > column + 1 || el.scrollWidth > el.clientWidth + 1) pastColumn.push(describe(el, r));
    }
    return {
      device_width: deviceWidth,
      scroll_width: document.documentElement.scrollWidth,
      overflows: document.documentElement.scrollWidth > deviceWidth,
      sticking_out: sticking.slice(0, 10),
      past_column: pastColumn.slice(0, 10),
    };
  }, device.viewport.width);
}

/**
 * Signs in, as --sign-in says: `link` opens `url` (a review link) signed out and clicks its
 * Sign in button, which must bring the browser back to the review page; `settings` signs in
 * at /settings first (a person already signed in) and then opens `url`. Returns the review
 * page's view, or null when the sign-in did not end where it should (out.stopped says why;
 * the test reports it with the browser's words in out.sign_in).
 */
async function reach(page, link, url, signedOutShot) {
  out.sign_in_mode = opts.signIn;
  if (opts.signIn === 'link') {
    step('signed out, the link');
    out.signed_out = await view(page, await open(page, url), link);
    out.signed_out.fit = await fit(page, DESKTOP);
    if (signedOutShot) await screenshot(page, signedOutShot);
    step('sign in from the review page');
    const { response, ...went } = await follow(page, () => signInButton(page).click());
    out.sign_in = went;
    if (went.navigation_error || !response || went.final_url !== link.url) {
      out.stopped = `signing in ended on ${went.final_url} (${went.navigation_error ?? `HTTP ${went.status}`}), not on the review page after the upstream`;
      return null;
    }
    return view(page, response, link);
  }
  step('sign in at /settings');
  await open(page, `${base}/settings`);
  const { response: _, ...went } = await follow(page, () => signInButton(page).click());
  out.sign_in = went;
  out.sign_in.account = await page
    .locator('p', { hasText: 'Signed in as' })
    .locator('strong')
    .first()
    .innerText({ timeout: 2000 })
    .catch(() => null);
  if (went.navigation_error || went.final_url !== `${base}/settings`) {
    out.stopped = `signing in ended on ${went.final_url} (${went.navigation_error ?? `HTTP ${went.status}`}), not on /settings`;
    return null;
  }
  if (!link) return null;
  step('the link, signed in');
  return view(page, await open(page, url), link);
}

/** A loopback server answering every request with `html(url)`. */
async function serve(html) {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(html(new URL(req.url, 'http://127.0.0.1')));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return { server, port: server.address().port };
}

const escapeAttr = (s) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

// ---------------------------------------------------------------- scenarios

async function approve(browser, link) {
  const { context, page } = await newPage(browser, DESKTOP);
  out.review = await reach(page, link, link.link, 'review-1-signed-out');
  if (!out.review) return;
  out.review.fit = await fit(page, DESKTOP);
  await screenshot(page, 'review-2-draft');

  step('the same session at a phone width, the whole link');
  {
    const phone = await newPage(browser, PHONE, { storageState: await context.storageState() });
    try {
      out.phone = await view(phone.page, await open(phone.page, link.link), link);
      out.phone.fit = await fit(phone.page, PHONE);
      await screenshot(phone.page, 'review-2-draft-phone');
    } finally {
      await phone.context.close();
    }
  }

  step('approve');
  const { response, ...went } = await follow(page, () => page.locator('button#approve').click());
  out.decide = { ...went, page: await view(page, response, link) };
  await screenshot(page, 'review-3-approved');

  step('the link again');
  out.again = await view(page, await open(page, link.link), link);
  await context.close();
}

async function noKey(browser, link) {
  const { context, page } = await newPage(browser, DESKTOP);
  out.review = await reach(page, link, link.url);
  if (!out.review) return;
  await screenshot(page, 'review-no-key');

  step('the link with a wrong key');
  const wrong = randomBytes(32).toString('base64url');
  out.wrong_key = await view(page, await open(page, `${link.url}#k=${wrong}`), link);
  await screenshot(page, 'review-wrong-key');

  step("don't send");
  const { response, ...went } = await follow(page, () => page.locator('button#decline').click());
  out.decide = { ...went, page: await view(page, response, link) };
  await context.close();
}

async function frame(browser, link) {
  const { context, page } = await newPage(browser, DESKTOP);
  out.review = await reach(page, link, link.link);
  if (!out.review) return;

  step('another origin frames the whole link');
  const control = await serve(
    () => '<!doctype html><title>control</title><form method="post" action="/x"><button>Control</button></form>',
  );
  const framing = await serve(
    () =>
      '<!doctype html><title>framing</title><h1>Totally not a clickjacking page</h1>' +
      `<iframe id="victim" src="${escapeAttr(link.link)}" width="900" height="600"></iframe>` +
      `<iframe id="control" src="http://127.0.0.1:${control.port}/control" width="300" height="100"></iframe>`,
  );
  try {
    const responses = [];
    page.on('response', (r) => responses.push({ url: r.url().split('?')[0], status: r.status() }));
    const from = seen.console.length;
    await page.goto(`http://127.0.0.1:${framing.port}/`, { waitUntil: 'load' });
    await sleep(500);
    const inspect = async (id) => {
      const handle = await page.$(`iframe#${id}`);
      const f = handle && (await handle.contentFrame());
      if (!f) return { frame: false };
      const got = await f
        .evaluate(() => ({
          forms: document.querySelectorAll('form').length,
          approve_buttons: document.querySelectorAll('#approve').length,
          draft_shown: Boolean(document.getElementById('draft')) && !document.getElementById('draft').hidden,
          text: (document.body?.innerText ?? '').slice(0, 200),
        }))
        .catch((e) => ({ evaluate_error: e.message.split('\n')[0] }));
      return { frame: true, url: f.url(), ...got };
    };
    out.framing_origin = `http://127.0.0.1:${framing.port}`;
    out.victim = await inspect('victim');
    out.control = await inspect('control');
    out.responses = responses;
    out.frame_console = seen.console.slice(from);
    await screenshot(page, 'review-framed');
  } finally {
    framing.server.close();
    control.server.close();
  }
  await context.close();
}

async function other(browser, link) {
  const { context, page } = await newPage(browser, DESKTOP);
  out.review = await reach(page, link, link.link);
  if (!out.review) return;
  await screenshot(page, 'review-other-mailbox');

  step("approve with this session's own CSRF token");
  await open(page, `${base}/settings`);
  const csrf = await page.locator('input[name="csrf_token"]').first().inputValue({ timeout: 2000 }).catch(() => '');
  out.settings_csrf = csrf.length > 0;
  const { response, ...went } = await follow(page, () =>
    page
      .evaluate(
        ([action, token]) => {
          const f = document.createElement('form');
          f.method = 'post';
          f.action = action;
          for (const [name, value] of [['csrf_token', token], ['decision', 'approve']]) {
            const i = document.createElement('input');
            i.type = 'hidden';
            i.name = name;
            i.value = value;
            f.append(i);
          }
          document.body.append(f);
          f.submit();
        },
        [`/approve/${link.id}`, csrf],
      )
      .catch(() => {}), // the navigation it starts may end this evaluation
  );
  out.forged = { ...went, page: await view(page, response, link) };
  await context.close();
}

async function csrf(browser, link) {
  const { context, page } = await newPage(browser, DESKTOP);
  out.review = await reach(page, link, link.link);
  if (!out.review) return;

  const attack =
    '<!doctype html><title>You won a prize</title><p>Loading your prize…</p>' +
    `<form id="f" method="post" action="${escapeAttr(`${base}/approve/${link.id}`)}">` +
    '<input type="hidden" name="decision" value="approve"><input type="hidden" name="csrf_token" value="guessed"></form>' +
    "<script>document.getElementById('f').submit()</script>";
  const evil = await serve(() => attack);
  try {
    out.attacks = {};
    for (const [name, url] of [
      ['same_site', `http://127.0.0.1:${evil.port}/prize`],
      ['cross_site', `http://localhost:${evil.port}/prize`],
      ['data_url', `data:text/html;charset=utf-8,${encodeURIComponent(attack)}`],
    ]) {
      step(`an approval auto-submitted from ${name}`);
      await page.goto('about:blank');
      const posted = page.waitForResponse(
        (r) => r.url() === `${base}/approve/${link.id}` && r.request().method() === 'POST',
      );
      await page.goto(url);
      const response = await posted;
      await page.waitForURL(`${base}/approve/${link.id}`, { waitUntil: 'load' }).catch(() => {});
      out.attacks[name] = {
        from: url.startsWith('data:') ? 'data:' : url,
        origin_header: (await response.request().headerValue('origin')) ?? null,
        sent_cookie: Boolean(await response.request().headerValue('cookie')),
        ...(await view(page, response, link)),
      };
    }
  } finally {
    evil.server.close();
  }

  step('the link again');
  out.after = await view(page, await open(page, link.link), link);
  await context.close();
}

/** The first line on stdin. */
async function readLine() {
  const rl = createInterface({ input: process.stdin });
  for await (const line of rl) {
    rl.close();
    return line;
  }
  throw new Error('stdin closed before the link came');
}

async function expire(browser) {
  const { context, page } = await newPage(browser, DESKTOP);
  await reach(page, null, null);
  if (out.stopped) return;
  process.stdout.write(`${JSON.stringify({ ready: true })}\n`);

  const [text, notBefore] = (await readLine()).trim().split(/\s+/);
  const link = parseLink(text);
  out.approval_id = link.id;
  step('the whole link, signed in');
  out.review = await view(page, await open(page, link.link), link);

  step('wait past the expiry, then approve on the open page');
  out.waited_ms = Math.max(0, Number(notBefore) - Date.now());
  await sleep(out.waited_ms);
  const { response, ...late } = await follow(page, () => page.locator('button#approve').click());
  out.decide = { ...late, page: await view(page, response, link) };
  await screenshot(page, 'review-expired');

  step('the link again');
  out.again = await view(page, await open(page, link.link), link);
  await context.close();
}

// ---------------------------------------------------------------- main

async function main() {
  const link = opts.link === '-' ? null : parseLink(opts.link);
  out.approval_id = link?.id ?? null;
  const started = Date.now();
  const browser = await launch(opts.chromium);
  out.chromium = browser.version();
  out.launch_ms = Date.now() - started;
  try {
    const run = { approve, 'no-key': noKey, frame, other, csrf, expire }[scenario];
    await run(browser, link);
  } finally {
    await browser.close();
  }
  out.elapsed_ms = Date.now() - started;
}

function finish(code) {
  out.dialogs = seen.dialogs;
  out.console = seen.console;
  out.page_errors = seen.page_errors;
  process.stdout.write(`${JSON.stringify(out)}\n`);
  process.exit(code);
}

const watchdog = setTimeout(() => {
  out.error = `timed out (after steps ${out.steps.join(', ')})`;
  finish(1);
}, opts.timeoutMs * 4);
watchdog.unref();

main().then(
  () => finish(0),
  (e) => {
    out.error = `${out.steps.at(-1) ?? 'launch'}: ${e?.message ?? String(e)}`;
    log(`error: ${out.error}`);
    finish(1);
  },
);
