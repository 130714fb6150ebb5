#!/usr/bin/env node
// mailconnect's settings page (and, for the screenshots, a consent page) in a real browser:
// headless Chromium (Debian's /usr/bin/chromium) driven by playwright-core (pinned in
// package.json; no browser download, ever). Same launch flags as consent.mjs.
//
// usage: node settings.mjs --base http://127.0.0.1:PORT --grant-a ID --grant-b ID
//            --consent AUTHORIZE_URL --out DIR [--chromium /usr/bin/chromium] [--timeout-ms 15000]
//
// The app's user must have exactly the two connections A and B (grant ids), both read-only.
// As a person would, at a desktop viewport:
//   1. opens /settings signed out                            -> settings-1-signed-out.png
//   2. clicks Sign in; the browser goes through the upstream and back to /settings, signed in
//                                                            -> settings-2-signed-in.png
//      (and the same page at a phone viewport, 390x844)      -> settings-2-signed-in-phone.png
//   3. ticks A's "Organize mail" checkbox and clicks A's Save -> settings-3-organize-enabled.png
//   4. clicks B's Revoke                                     -> settings-4-revoked.png
//   5. opens the consent URL at a phone viewport (390x844)   -> consent-phone.png
//      and at a desktop viewport (1280x800)                  -> consent-desktop.png
// Each <details> (the activity lists) is opened before a screenshot, so it shows.
// Prints one JSON line of observations to stdout; the Rust test (tests/it/browser_settings.rs)
// judges them. Exit 0 when the observations were gathered, 1 when the harness itself failed
// (a step's selector not found, a timeout), 2 on a usage error. Logs go to stderr.
// All traffic stays on 127.0.0.1.

import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { launch, DESKTOP, PHONE } from './chromium.mjs';


function log(msg) {
  process.stderr.write(`browser-settings: ${msg}\n`);
}

function usage(msg) {
  if (msg) log(msg);
  log('usage: node settings.mjs --base URL --grant-a ID --grant-b ID --consent URL --out DIR [--chromium PATH] [--timeout-ms N]');
  process.exit(2);
}

const opts = { chromium: '/usr/bin/chromium', timeoutMs: 15_000 };
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i += 2) {
  const key = {
    '--base': 'base',
    '--grant-a': 'grantA',
    '--grant-b': 'grantB',
    '--consent': 'consent',
    '--out': 'out',
    '--chromium': 'chromium',
    '--timeout-ms': 'timeoutMs',
  }[args[i]];
  if (!key || args[i + 1] === undefined) usage(`bad argument ${args[i]}`);
  opts[key] = key === 'timeoutMs' ? Number(args[i + 1]) : args[i + 1];
}
for (const k of ['base', 'grantA', 'grantB', 'consent', 'out']) if (!opts[k]) usage(`--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} is required`);
const base = opts.base.replace(/\/$/, '');
if (!/^http:\/\/127\.0\.0\.1:\d+$/.test(base)) usage(`--base must be http://127.0.0.1:PORT, got ${base}`);
if (!opts.consent.startsWith(`${base}/authorize?`)) usage(`--consent must be ${base}/authorize?..., got ${opts.consent}`);
for (const g of [opts.grantA, opts.grantB]) if (!/^[A-Za-z0-9_-]+$/.test(g)) usage(`bad grant id ${g}`);
mkdirSync(opts.out, { recursive: true });

const PLAYWRIGHT_VERSION = JSON.parse(
  readFileSync(new URL('./node_modules/playwright-core/package.json', import.meta.url), 'utf8'),
).version;
const out = { base, grant_a: opts.grantA, grant_b: opts.grantB, playwright_core: PLAYWRIGHT_VERSION, screenshots: [], steps: [] };
// Everything any page did that a script-free page should never do.
const seen = { dialogs: [], console: [], page_errors: [] };

// ---------------------------------------------------------------- browser helpers

async function newPage(browser, device) {
  const context = await browser.newContext(device);
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

/** Opens every <details> as a person would (a click on its summary), so screenshots show them. */
async function openDetails(page) {
  const closed = page.locator('details:not([open]) > summary');
  for (let n = await closed.count(); n > 0; n -= 1) await closed.first().click();
}

async function screenshot(page, name) {
  await openDetails(page);
  const path = join(opts.out, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  out.screenshots.push(path);
}

/** The URLs (without query) a navigation went through: each redirect, then where it ended. */
function chain(response) {
  const urls = [];
  for (let r = response?.request(); r; r = r.redirectedFrom()) urls.unshift(`${r.method()} ${r.url().split('?')[0]}`);
  return urls;
}

/** Clicks and waits for the navigation it starts to load; returns what it went through. */
async function clickAndFollow(page, locator) {
  const [response] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), locator.click()]);
  return { status: response?.status() ?? null, chain: chain(response), final_url: page.url() };
}

/**
 * How the page fits the device's width. On a phone (isMobile) Chromium widens the layout
 * viewport to whatever sticks out and shows the page zoomed out, so the device width is
 * passed in rather than read from window.innerWidth.
 */
async function fit(page, device) {
  return page.evaluate((deviceWidth) => {
    const describe = (el, r) =>
      `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''} [${Math.round(r.left)}..${Math.round(r.right)}] ${(el.innerText ?? '').slice(0, 60)}`;
    // The column the text is set in: the body's content box.
    const b = document.body.getBoundingClientRect();
    const bs = getComputedStyle(document.body);
    const column = b.right - parseFloat(bs.paddingRight) - parseFloat(bs.borderRightWidth);
    const sticking = [];
    const pastColumn = [];
    for (const el of document.body.querySelectorAll('*')) {
      const r = el.getBoundingClientRect();
      if (r.width === 0) continue;
      if (r.right > deviceWidth + 1 || r.left < -1) sticking.push(describe(el, r));
      // The element's text runs past its own box or past the column.
      if (r.right > column + 1 || el.scrollWidth > el.clientWidth + 1) pastColumn.push(describe(el, r));
    }
    return {
      device_width: deviceWidth,
      layout_width: window.innerWidth,
      scroll_width: document.documentElement.scrollWidth,
      overflows: document.documentElement.scrollWidth > deviceWidth,
      sticking_out: sticking.slice(0, 10),
      past_column: pastColumn.slice(0, 10),
      body_font_size: getComputedStyle(document.body).fontSize,
      page_height: document.documentElement.scrollHeight,
    };
  }, device.viewport.width);
}

/** The settings page as a person reads it. */
async function settingsView(page) {
  const body = await page.locator('body').innerText();
  const account = await page
    .locator('p', { hasText: 'Signed in as' })
    .locator('strong')
    .first()
    .innerText({ timeout: 1000 })
    .catch(() => null);
  const sections = await page.locator('section[id^="connection-"]').evaluateAll((ss) =>
    ss.map((s) => {
      const organize = s.querySelector('form[action$="/capabilities"] input[type=checkbox][name=organize]');
      return {
        id: s.id,
        grant: s.id.replace(/^connection-/, ''),
        name: s.querySelector('h2')?.innerText ?? null,
        name_html: s.querySelector('h2')?.innerHTML ?? null,
        returns_to: s.querySelector('p strong')?.innerText ?? null,
        summary: s.querySelector('p')?.innerText ?? null,
        organize_checked: organize ? organize.checked : null,
        capabilities_action: s.querySelector('form[action$="/capabilities"]')?.getAttribute('action') ?? null,
        revoke_action: s.querySelector('form[action$="/revoke"]')?.getAttribute('action') ?? null,
        csrf_fields: [...s.querySelectorAll('input[type=hidden][name=csrf_token]')].filter((i) => i.value.length > 0).length,
        buttons: [...s.querySelectorAll('button')].map((b) => b.innerText.trim()),
        activity: [...s.querySelectorAll('details ul li')].map((li) => li.textContent),
      };
    }),
  );
  return {
    url: page.url(),
    title: await page.title(),
    h1: await page.locator('h1').first().innerText({ timeout: 1000 }).catch(() => null),
    account,
    signed_in: /Signed in as/.test(body),
    sign_in_button: await page.locator('form[action="/settings/sign-in"] button[name="sign_in"]').count(),
    sections,
    // Disconnected assistants, if the page lists them (reported, not judged here).
    ended: await page.locator('section[id^="ended-"]').evaluateAll((ss) => ss.map((s) => s.id.replace(/^ended-/, ''))),
    script_elements: await page.evaluate(() => document.scripts.length),
    body_text: body.slice(0, 2000),
  };
}

function section(view, grant) {
  return view.sections.find((s) => s.grant === grant) ?? null;
}

async function consentView(browser, device, name) {
  const { context, page } = await newPage(browser, device);
  try {
    const response = await page.goto(opts.consent, { waitUntil: 'load' });
    const headers = await response.allHeaders();
    const view = {
      status: response.status(),
      x_frame_options: headers['x-frame-options'] ?? null,
      content_security_policy: headers['content-security-policy'] ?? null,
      title: await page.title(),
      h1: await page.locator('h1').first().innerText({ timeout: 1000 }).catch(() => null),
      buttons: await page.locator('form button[name="decision"]').evaluateAll((bs) => bs.map((b) => b.value)),
      script_elements: await page.evaluate(() => document.scripts.length),
      fit: await fit(page, device),
    };
    await screenshot(page, name);
    return view;
  } finally {
    await context.close();
  }
}

// ---------------------------------------------------------------- the walk

async function run(browser) {
  const { context, page } = await newPage(browser, DESKTOP);

  step('1. signed out');
  const first = await page.goto(`${base}/settings`, { waitUntil: 'load' });
  const headers = await first.allHeaders();
  out.signed_out = {
    status: first.status(),
    x_frame_options: headers['x-frame-options'] ?? null,
    content_security_policy: headers['content-security-policy'] ?? null,
    ...(await settingsView(page)),
    fit: await fit(page, DESKTOP),
  };
  await screenshot(page, 'settings-1-signed-out');

  step('2. sign in');
  out.sign_in = await clickAndFollow(page, page.locator('form[action="/settings/sign-in"] button[name="sign_in"]'));
  out.signed_in = { ...(await settingsView(page)), fit: await fit(page, DESKTOP) };
  await screenshot(page, 'settings-2-signed-in');
  // The same session at a phone's width.
  {
    const phone = await newPage(browser, { ...PHONE, storageState: await context.storageState() });
    try {
      await phone.page.goto(`${base}/settings`, { waitUntil: 'load' });
      out.signed_in_phone = { ...(await settingsView(phone.page)), fit: await fit(phone.page, PHONE) };
      await screenshot(phone.page, 'settings-2-signed-in-phone');
    } finally {
      await phone.context.close();
    }
  }

  step('3. enable organize for A');
  const a = page.locator(`section[id="connection-${opts.grantA}"]`);
  await a.locator('form[action$="/capabilities"] input[name="organize"]').check();
  out.enable = await clickAndFollow(page, a.locator('form[action$="/capabilities"] button[type="submit"]'));
  out.after_enable = { ...(await settingsView(page)), fit: await fit(page, DESKTOP) };
  await screenshot(page, 'settings-3-organize-enabled');

  step('4. revoke B');
  const b = page.locator(`section[id="connection-${opts.grantB}"]`);
  out.revoke = await clickAndFollow(page, b.locator('form[action$="/revoke"] button[type="submit"]'));
  out.after_revoke = { ...(await settingsView(page)), fit: await fit(page, DESKTOP) };
  await screenshot(page, 'settings-4-revoked');
  await context.close();

  step('5. consent page, phone and desktop');
  out.consent = {
    phone: await consentView(browser, PHONE, 'consent-phone'),
    desktop: await consentView(browser, DESKTOP, 'consent-desktop'),
  };

  // Judged in Rust; summarised here for the log.
  out.summary = {
    signed_in_as: out.signed_in.account,
    listed: out.signed_in.sections.map((s) => s.grant),
    a_checked_after_save: section(out.after_enable, opts.grantA)?.organize_checked ?? null,
    b_listed_after_revoke: section(out.after_revoke, opts.grantB) !== null,
  };
}

async function main() {
  const started = Date.now();
  const browser = await launch(opts.chromium);
  out.chromium = browser.version();
  out.launch_ms = Date.now() - started;
  try {
    await run(browser);
  } finally {
    await browser.close();
  }
  out.dialogs = seen.dialogs;
  out.console = seen.console;
  out.page_errors = seen.page_errors;
  out.elapsed_ms = Date.now() - started;
}

const watchdog = setTimeout(() => {
  out.error = `timed out (after steps ${out.steps.join(', ')})`;
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
    out.error = `${out.steps.at(-1) ?? 'launch'}: ${e?.message ?? String(e)}`;
    out.dialogs = seen.dialogs;
    out.console = seen.console;
    out.page_errors = seen.page_errors;
    log(`error: ${out.error}`);
    process.stdout.write(`${JSON.stringify(out)}\n`);
    process.exit(1);
  },
);
