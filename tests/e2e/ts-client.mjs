#!/usr/bin/env node
// End-to-end check of a running mailconnect server with the official MCP
// TypeScript SDK (Client + StreamableHTTPClientTransport).
//
// Reads MCP_URL (e.g. http://127.0.0.1:8911/mcp) and MCP_TOKEN (the Bearer
// token) from the environment, calls every tool over HTTP and compares the
// answers with the seeded testbed mailbox (docs/testbed.md). Prints one line
// per check ("ok - ..." / "not ok - ...") and exits 1 if any check failed.
//
// Ids are never hard-coded: mailboxes are looked up by name/role, emails by
// subject, so the checks survive testbed restarts.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const URL_ = process.env.MCP_URL;
const TOKEN = process.env.MCP_TOKEN;
if (!URL_ || !TOKEN) {
  console.error('ts-client: set MCP_URL (e.g. http://127.0.0.1:8911/mcp) and MCP_TOKEN (the Bearer token)');
  process.exit(2);
}

// ---------------------------------------------------------------- reporting

let passed = 0;
let failed = 0;

function show(value) {
  if (value === undefined) return 'undefined';
  let s;
  try {
    s = JSON.stringify(value);
  } catch {
    s = String(value);
  }
  return s.length > 600 ? s.slice(0, 600) + '…' : s;
}

function ok(name) {
  passed++;
  console.log(`ok - ${name}`);
}

function notOk(name, expected, got) {
  failed++;
  console.log(`not ok - ${name}\n    expected: ${expected}\n    got:      ${show(got)}`);
}

/** One check: `cond` true → ok; otherwise print what was expected and what came back. */
function check(name, cond, expected, got) {
  if (cond) ok(name);
  else notOk(name, expected, got);
  return cond;
}

function eq(name, got, want) {
  return check(name, deepEqual(got, want), show(want), got);
}

function deepEqual(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

function textOf(result) {
  return (result?.content ?? [])
    .filter((c) => c.type === 'text')
    .map((c) => c.text)
    .join('\n');
}

// ---------------------------------------------------------------- client

const transport = new StreamableHTTPClientTransport(new URL(URL_), {
  requestInit: { headers: { Authorization: 'Bearer ' + TOKEN } },
});
const client = new Client({ name: 'mailconnect-e2e-ts', version: '0.1.0' });

/**
 * Calls a tool and returns {result, error}. Protocol errors (JSON-RPC errors,
 * or the SDK rejecting structuredContent that does not match the tool's
 * outputSchema) come back as `error`.
 */
async function call(name, args) {
  try {
    return { result: await client.callTool({ name, arguments: args }) };
  } catch (error) {
    return { error };
  }
}

/**
 * Calls a tool that must succeed. Checks isError false, structuredContent
 * present, and a non-empty text block. Returns structuredContent (or null).
 */
async function callOk(label, name, args) {
  const { result, error } = await call(name, args);
  if (error) {
    notOk(`${label}: ${name} ${show(args)} succeeds`, 'a tool result (no protocol error)', String(error?.message ?? error));
    return null;
  }
  if (!check(`${label}: ${name} ${show(args)} succeeds`, result.isError !== true, 'isError false', result)) return null;
  const sc = result.structuredContent;
  const texts = (result.content ?? []).filter((c) => c.type === 'text' && typeof c.text === 'string' && c.text.trim() !== '');
  check(
    `${label}: result has structuredContent and a non-empty text block`,
    sc && typeof sc === 'object' && !Array.isArray(sc) && texts.length > 0,
    'structuredContent object + content[] with a non-empty {type:"text"} block',
    { structuredContent: sc === undefined ? undefined : '(present)', content: result.content },
  );
  return sc ?? null;
}

/** Calls a tool that must fail with a tool error (isError true, helpful text). */
async function callErr(label, name, args, mustMention = []) {
  const { result, error } = await call(name, args);
  if (error) {
    notOk(`${label}: ${name} ${show(args)} gives isError`, 'a tool result with isError true (not a protocol error)', String(error?.message ?? error));
    return;
  }
  const text = textOf(result);
  check(`${label}: ${name} ${show(args)} gives isError true`, result.isError === true, 'isError true', result);
  const missing = mustMention.filter((m) => !text.includes(m));
  check(
    `${label}: error text is helpful (mentions ${mustMention.map((m) => JSON.stringify(m)).join(', ') || 'something'})`,
    text.trim() !== '' && missing.length === 0,
    `non-empty text mentioning ${show(mustMention)}`,
    text,
  );
}

const subjects = (emails) => (emails ?? []).map((e) => e.subject);
const isNewestFirst = (emails) => emails.every((e, i) => i === 0 || emails[i - 1].received_at >= e.received_at);
const isOldestFirst = (emails) => emails.every((e, i) => i === 0 || emails[i - 1].received_at <= e.received_at);

/**
 * Looks an email up by subject: search_email {subject: words, ...extra} and
 * return the summary whose subject is exactly `subject` (null, and a failed
 * check, if there is none).
 */
async function findEmail(subject, words = subject, extra = {}) {
  const { result, error } = await call('search_email', { subject: words, ...extra });
  const hit = result?.structuredContent?.emails?.find((e) => e.subject === subject);
  if (!hit) notOk(`lookup: an email with subject ${JSON.stringify(subject)} exists`, 'a search hit', error ? String(error.message) : result);
  return hit ?? null;
}

// ---------------------------------------------------------------- checks

const EXPECTED_TOOLS = ['get_identity', 'list_mailboxes', 'search_email', 'get_email', 'get_thread', 'get_attachment'];
const NOTES_TXT =
  'Invoice notes 2024\r\n==================\r\nINV-2024-017  Hosting        120.00 EUR  paid\r\nINV-2024-018  Domain renewal  15.00 EUR  open\r\n';
const NONASCII_SUBJECT = 'Grüße aus München – Überraschung 🎉';

async function main() {
  // --- connect
  try {
    await client.connect(transport);
  } catch (e) {
    notOk('connect: initialize over streamable HTTP', 'a successful handshake', String(e?.message ?? e));
    return;
  }
  const server = client.getServerVersion();
  check('connect: serverInfo.name is mailconnect', server?.name === 'mailconnect', '"mailconnect"', server);
  check(
    `connect: negotiated protocol version ${transport.protocolVersion}`,
    transport.protocolVersion === '2025-11-25',
    '"2025-11-25" (the newest revision this SDK speaks)',
    transport.protocolVersion,
  );
  check('connect: server returned an Mcp-Session-Id', typeof transport.sessionId === 'string' && transport.sessionId.length > 0, 'a session id', transport.sessionId);

  // --- tools/list
  let tools = [];
  try {
    tools = (await client.listTools()).tools;
  } catch (e) {
    notOk('tools/list succeeds', 'a tool list', String(e?.message ?? e));
  }
  const names = tools.map((t) => t.name);
  eq('tools/list: exactly the six tools', [...names].sort(), [...EXPECTED_TOOLS].sort());
  for (const t of tools) {
    const problems = [];
    if (typeof t.title !== 'string' || t.title.trim() === '') problems.push('title');
    if (t.inputSchema?.type !== 'object') problems.push('inputSchema.type');
    if (t.inputSchema?.additionalProperties !== false) problems.push('inputSchema.additionalProperties');
    if (!t.outputSchema || typeof t.outputSchema !== 'object' || t.outputSchema.type !== 'object') problems.push('outputSchema');
    if (t.annotations?.readOnlyHint !== true) problems.push('annotations.readOnlyHint');
    check(
      `tools/list: ${t.name} has title, inputSchema {type object, additionalProperties false}, outputSchema, readOnlyHint true`,
      problems.length === 0,
      `all present (wrong: ${problems.join(', ')})`,
      { title: t.title, inputSchema: t.inputSchema, outputSchema: t.outputSchema ? '(present)' : t.outputSchema, annotations: t.annotations },
    );
  }

  // --- get_identity
  const id = await callOk('get_identity', 'get_identity', {});
  if (id) {
    eq('get_identity: username', id.username, 'alice@example.test');
    eq('get_identity: granted_capabilities', id.granted_capabilities, ['read']);
    eq('get_identity: limits.max_search_page_size', id.limits?.max_search_page_size, 50);
  }

  // --- list_mailboxes
  const mbx = await callOk('list_mailboxes', 'list_mailboxes', {});
  const mailboxes = mbx?.mailboxes ?? [];
  const byPath = Object.fromEntries(mailboxes.map((m) => [m.path, m]));
  if (mbx) {
    eq('list_mailboxes: all nine seeded mailboxes (by path)', mailboxes.map((m) => m.path).sort(), [
      'Archive', 'Bulk', 'Drafts', 'Inbox', 'Junk', 'Project Alpha', 'Project Alpha/Invoices 2024', 'Sent', 'Trash',
    ]);
    const first = mailboxes[0];
    check('list_mailboxes: Inbox (role inbox) comes first', first?.name === 'Inbox' && first?.role === 'inbox', 'first = {name: "Inbox", role: "inbox"}', first);
    const inbox = byPath['Inbox'];
    check('list_mailboxes: Inbox total 4, unread 3', inbox?.total_emails === 4 && inbox?.unread_emails === 3, 'total_emails 4, unread_emails 3', inbox);
    const alpha = byPath['Project Alpha'];
    check('list_mailboxes: "Project Alpha" is a top-level folder with no role', alpha?.parent_id === null && alpha?.role === null && alpha?.name === 'Project Alpha', 'parent_id null, role null', alpha);
    const inv = byPath['Project Alpha/Invoices 2024'];
    check(
      'list_mailboxes: "Project Alpha/Invoices 2024" is named "Invoices 2024" under Project Alpha',
      inv?.name === 'Invoices 2024' && alpha && inv?.parent_id === alpha.id,
      `name "Invoices 2024", parent_id ${show(alpha?.id)}`,
      inv,
    );
    const bulk = byPath['Bulk'];
    check('list_mailboxes: Bulk total 60, unread 30', bulk?.total_emails === 60 && bulk?.unread_emails === 30, 'total_emails 60, unread_emails 30', bulk);
  }

  // --- search_email
  let s = await callOk('search text', 'search_email', { text: 'budget' });
  if (s) {
    eq('search text "budget": subjects, newest first', subjects(s.emails), ['Quarterly report Q1', 'Project Alpha kickoff']);
    check('search text "budget": total 2, next_cursor null', s.total === 2 && s.next_cursor === null, 'total 2, next_cursor null', { total: s.total, next_cursor: s.next_cursor });
  }

  s = await callOk('search mailbox by name', 'search_email', { mailbox: 'Project Alpha' });
  if (s) eq('search mailbox "Project Alpha": one email', subjects(s.emails), ['Project Alpha kickoff']);

  s = await callOk('search mailbox by path', 'search_email', { mailbox: 'Project Alpha/Invoices 2024' });
  if (s) eq('search mailbox "Project Alpha/Invoices 2024": one email', subjects(s.emails), ['Invoice notes 2024']);

  s = await callOk('search mailbox by role', 'search_email', { mailbox: 'inbox' });
  if (s) {
    eq('search mailbox "inbox" (role): the 4 Inbox emails, newest first', subjects(s.emails), [
      'Re: Quarterly report Q1', NONASCII_SUBJECT, 'Your weekly newsletter', 'Quarterly report Q1',
    ]);
    check('search mailbox "inbox": total 4', s.total === 4, 'total 4', s.total);
    check('search mailbox "inbox": every hit is in the inbox', s.emails.every((e) => e.mailboxes.includes('Inbox')), 'mailboxes contain Inbox', s.emails.map((e) => e.mailboxes));
  }

  // unread in Bulk: 30 (the even-numbered ones), over two pages of the default size 20
  s = await callOk('search unread in Bulk', 'search_email', { mailbox: 'Bulk', unread: true });
  if (s) {
    check('search unread Bulk: total 30, first page of 20 (default limit)', s.total === 30 && s.emails.length === 20 && s.limit === 20, 'total 30, 20 emails, limit 20', { total: s.total, n: s.emails.length, limit: s.limit });
    let all = [...s.emails];
    if (typeof s.next_cursor === 'string') {
      const s2 = await callOk('search unread in Bulk, page 2', 'search_email', { mailbox: 'Bulk', unread: true, cursor: s.next_cursor });
      if (s2) all = all.concat(s2.emails);
      check('search unread Bulk page 2: the remaining 10, next_cursor null', s2 && s2.emails.length === 10 && s2.next_cursor === null, '10 emails, next_cursor null', s2 && { n: s2.emails.length, next_cursor: s2.next_cursor });
    } else {
      notOk('search unread Bulk: next_cursor after the first page', 'a cursor string', s.next_cursor);
    }
    const wrong = all.filter((e) => e.unread !== true || Number(e.subject.slice(-2)) % 2 !== 0);
    check('search unread Bulk: 30 distinct emails, all unread and even-numbered', all.length === 30 && new Set(all.map((e) => e.id)).size === 30 && wrong.length === 0, '30 distinct unread "Bulk message <even>"', { n: all.length, wrong: subjects(wrong) });
  }

  // limit 80 → capped to 50, limit_note, cursor to the remaining 10
  const bulkArgs = { mailbox: 'Bulk', limit: 80 };
  const p1 = await callOk('search Bulk limit 80', 'search_email', bulkArgs);
  if (p1) {
    check('search Bulk limit 80: 50 emails, limit 50, total 60', p1.emails.length === 50 && p1.limit === 50 && p1.total === 60, '50 emails, limit 50, total 60', { n: p1.emails.length, limit: p1.limit, total: p1.total });
    check('search Bulk limit 80: limit_note says the limit was reduced', typeof p1.limit_note === 'string' && p1.limit_note.includes('50'), 'a limit_note mentioning 50', p1.limit_note);
    check('search Bulk limit 80: next_cursor is a string', typeof p1.next_cursor === 'string' && p1.next_cursor.length > 0, 'a cursor', p1.next_cursor);
    check('search Bulk limit 80: newest first (Bulk message 60 … 11)', isNewestFirst(p1.emails) && p1.emails[0]?.subject === 'Bulk message 60' && p1.emails[49]?.subject === 'Bulk message 11', 'Bulk message 60 … Bulk message 11 in date order', subjects(p1.emails));
    if (typeof p1.next_cursor === 'string') {
      const p2 = await callOk('search Bulk limit 80, next page', 'search_email', { ...bulkArgs, cursor: p1.next_cursor });
      if (p2) {
        check('search Bulk page 2: the remaining 10, next_cursor null', p2.emails.length === 10 && p2.next_cursor === null, '10 emails, next_cursor null', { n: p2.emails.length, next_cursor: p2.next_cursor, subjects: subjects(p2.emails) });
        const ids = [...p1.emails, ...p2.emails].map((e) => e.id);
        const dup = ids.filter((x, i) => ids.indexOf(x) !== i);
        check('search Bulk pages: no id appears twice, 60 distinct in all', dup.length === 0 && new Set(ids).size === 60, '60 distinct ids', { distinct: new Set(ids).size, duplicates: dup });
        check('search Bulk page 2: Bulk message 10 … 01, newest first', p2.emails[0]?.subject === 'Bulk message 10' && p2.emails.at(-1)?.subject === 'Bulk message 01' && isNewestFirst(p2.emails), 'Bulk message 10 … 01', subjects(p2.emails));
      }
      await callErr('search cursor with other arguments', 'search_email', { mailbox: 'Inbox', cursor: p1.next_cursor }, ['cursor']);
    }
  }

  s = await callOk('search has_attachment', 'search_email', { has_attachment: true });
  if (s) {
    eq('search has_attachment true: the 2 seeded attachment mails, newest first', subjects(s.emails), ['Quarterly report Q1', 'Invoice notes 2024']);
    check('search has_attachment true: has_attachment flag set on each', s.emails.every((e) => e.has_attachment === true), 'has_attachment true', s.emails.map((e) => e.has_attachment));
  }

  s = await callOk('search date window (dates)', 'search_email', { after: '2024-03-01', before: '2024-03-03' });
  if (s) {
    eq('search after 2024-03-01 before 2024-03-03: 3 emails, newest first', subjects(s.emails), ['Your weekly newsletter', 'Re: Quarterly report Q1', 'Quarterly report Q1']);
    const bad = s.emails.filter((e) => e.received_at < '2024-03-01T00:00:00Z' || e.received_at >= '2024-03-03T00:00:00Z');
    check('search date window: every received_at inside [after, before)', bad.length === 0, 'none outside', bad);
  }
  // RFC 3339 bounds: after is inclusive (09:00 report in), before exclusive (10:30 newsletter out)
  s = await callOk('search date window (RFC 3339)', 'search_email', { after: '2024-03-01T09:00:00Z', before: '2024-03-02T10:30:00Z' });
  if (s) {
    eq('search after 2024-03-01T09:00:00Z (inclusive) before 2024-03-02T10:30:00Z (exclusive)', s.emails.map((e) => [e.subject, e.received_at]), [
      ['Re: Quarterly report Q1', '2024-03-01T11:00:00Z'],
      ['Quarterly report Q1', '2024-03-01T09:00:00Z'],
    ]);
  }

  await callErr('search non-existent mailbox', 'search_email', { mailbox: 'No Such Folder' }, ['No Such Folder', 'Project Alpha']);
  await callErr('search unknown argument', 'search_email', { text: 'budget', bogus_argument: 1 }, ['bogus_argument']);

  // --- get_email
  const newsletter = await findEmail('Your weekly newsletter');
  if (newsletter) {
    const e = await callOk('get_email HTML-only newsletter', 'get_email', { email_id: newsletter.id });
    if (e) {
      eq('get_email newsletter: body.source', e.body?.source, 'html');
      const t = e.body?.text ?? '';
      check('get_email newsletter: text has "Weekly news" and the unsubscribe URL', t.includes('Weekly news') && t.includes('https://example.org/unsub'), 'both present', t);
      check('get_email newsletter: no HTML tags in the text', !/<\/?[a-zA-Z][^>]*>/.test(t), 'no <tag>', t);
    }
  }

  const report = await findEmail('Quarterly report Q1', 'Quarterly report Q1', { mailbox: 'inbox' });
  let reportFull = null;
  if (report) {
    reportFull = await callOk('get_email "Quarterly report Q1"', 'get_email', { email_id: report.id });
    if (reportFull) {
      const pdf = (reportFull.attachments ?? []).find((a) => a.name === 'report-q1.pdf');
      check('get_email report: attachments list report-q1.pdf (application/pdf, 589 bytes)', pdf?.type === 'application/pdf' && pdf?.size === 589 && typeof pdf?.blob_id === 'string', '{name: report-q1.pdf, type: application/pdf, size: 589, blob_id}', reportFull.attachments);
      check('get_email report: from Bob Builder, message_id q1-report@example.com', reportFull.from?.[0]?.email === 'bob@example.com' && /q1-report@example\.com/.test(reportFull.message_id ?? ''), 'bob@example.com / q1-report@example.com', { from: reportFull.from, message_id: reportFull.message_id });
    }
  }

  const gruss = await findEmail(NONASCII_SUBJECT, 'Überraschung');
  if (gruss) {
    const e = await callOk('get_email non-ASCII subject', 'get_email', { email_id: gruss.id });
    if (e) {
      eq('get_email non-ASCII: subject exactly', e.subject, NONASCII_SUBJECT);
      check('get_email non-ASCII: body contains 日本語', (e.body?.text ?? '').includes('日本語'), 'text with 日本語', e.body?.text);
      eq('get_email non-ASCII: from name', e.from?.[0]?.name, 'Carol Müller');
    }
  }

  if (report && reportFull) {
    const full = reportFull.body?.text ?? '';
    const b = (await callOk('get_email max_body_chars 200', 'get_email', { email_id: report.id, max_body_chars: 200 }))?.body;
    if (b) {
      if (b.total_chars > 200) {
        check('get_email max_body_chars 200 on a long body: truncated, 200 chars, next_offset 200', b.truncated === true && b.next_offset === 200 && [...b.text].length === 200, 'truncated true, next_offset 200, 200 chars', b);
      } else {
        check(`get_email max_body_chars 200 on a ${b.total_chars}-char body: whole body, truncated false, next_offset null`, b.truncated === false && b.next_offset === null && b.offset === 0 && b.text === full, 'truncated false, next_offset null, the whole text', b);
      }
    }
    const o = (await callOk('get_email body_offset 50', 'get_email', { email_id: report.id, body_offset: 50, max_body_chars: 200 }))?.body;
    if (o) {
      check('get_email body_offset 50: text is the body from character 50', o.offset === 50 && o.text === [...full].slice(50).join('') && o.total_chars === [...full].length, `offset 50, text ${show([...full].slice(50).join(''))}`, o);
    }
  }

  await callErr('get_email non-existent id', 'get_email', { email_id: 'Mdoesnotexist' }, ['Mdoesnotexist']);

  // --- get_thread
  if (reportFull) {
    const th = await callOk('get_thread "Quarterly report Q1"', 'get_thread', { thread_id: reportFull.thread_id });
    if (th) {
      eq('get_thread: 3 emails, oldest first', th.emails?.map((e) => [e.subject, e.received_at]), [
        ['Quarterly report Q1', '2024-03-01T09:00:00Z'],
        ['Re: Quarterly report Q1', '2024-03-01T11:00:00Z'],
        ['Re: Quarterly report Q1', '2024-03-04T12:00:00Z'],
      ]);
      check('get_thread: thread_id and member ids match', th.thread_id === reportFull.thread_id && th.emails?.[0]?.id === report.id && th.emails.every((e) => e.thread_id === reportFull.thread_id) && isOldestFirst(th.emails), 'same thread_id, first id = the report', th);
    }
  }
  await callErr('get_thread non-existent id', 'get_thread', { thread_id: 'Tdoesnotexist' }, ['Tdoesnotexist']);

  // --- get_attachment
  const pdfAtt = (reportFull?.attachments ?? []).find((a) => a.name === 'report-q1.pdf');
  if (pdfAtt) {
    const { result, error } = await call('get_attachment', { email_id: report.id, blob_id: pdfAtt.blob_id });
    if (error || !result) {
      notOk('get_attachment report-q1.pdf succeeds', 'a tool result', String(error?.message ?? error));
    } else {
      check('get_attachment report-q1.pdf: isError false, structuredContent and a non-empty text block', result.isError !== true && result.structuredContent && textOf(result).trim() !== '', 'success with structuredContent + text', result);
      const res = (result.content ?? []).find((c) => c.type === 'resource')?.resource;
      check('get_attachment report-q1.pdf: an embedded resource with mimeType application/pdf and a blob', res?.mimeType === 'application/pdf' && typeof res?.blob === 'string', '{type: resource, resource: {mimeType: application/pdf, blob}}', result.content);
      if (res?.blob) {
        const bytes = Buffer.from(res.blob, 'base64');
        check('get_attachment report-q1.pdf: blob decodes to 589 bytes starting with %PDF', bytes.subarray(0, 4).toString('latin1') === '%PDF' && bytes.length === 589, '589 bytes, "%PDF…"', { length: bytes.length, head: bytes.subarray(0, 8).toString('latin1') });
      }
      const sc = result.structuredContent;
      check('get_attachment report-q1.pdf: structuredContent name/type/size/resource_uri', sc?.name === 'report-q1.pdf' && sc?.type === 'application/pdf' && sc?.size === 589 && sc?.resource_uri === res?.uri, `name report-q1.pdf, type application/pdf, size 589, resource_uri ${show(res?.uri)}`, sc);
    }
    await callErr('get_attachment unknown blob', 'get_attachment', { email_id: report.id, blob_id: 'Gdoesnotexist' }, ['Gdoesnotexist']);
  }

  const invoice = await findEmail('Invoice notes 2024');
  if (invoice) {
    const e = await callOk('get_email "Invoice notes 2024"', 'get_email', { email_id: invoice.id });
    const notes = (e?.attachments ?? []).find((a) => a.name === 'notes.txt');
    check('get_email invoice: attachments list notes.txt (text/plain, 134 bytes)', notes?.type === 'text/plain' && notes?.size === 134, '{name: notes.txt, type: text/plain, size: 134}', e?.attachments);
    if (notes) {
      const { result, error } = await call('get_attachment', { email_id: invoice.id, blob_id: notes.blob_id });
      if (error || !result) {
        notOk('get_attachment notes.txt succeeds', 'a tool result', String(error?.message ?? error));
      } else {
        const sc = result.structuredContent;
        check('get_attachment notes.txt: isError false, structuredContent and a non-empty text block', result.isError !== true && sc && textOf(result).trim() !== '', 'success with structuredContent + text', result);
        check('get_attachment notes.txt: structuredContent.text is the seeded file text', typeof sc?.text === 'string' && sc.text.includes('INV-2024-017  Hosting        120.00 EUR  paid') && sc.text.includes('INV-2024-018  Domain renewal  15.00 EUR  open') && sc.text_truncated === false, 'text with both invoice lines, text_truncated false', sc);
        const res = (result.content ?? []).find((c) => c.type === 'resource')?.resource;
        check('get_attachment notes.txt: embedded resource (text/plain) holds the exact 134 bytes', res?.mimeType === 'text/plain' && typeof res?.blob === 'string' && Buffer.from(res.blob, 'base64').toString('utf8') === NOTES_TXT, show(NOTES_TXT), res && { mimeType: res.mimeType, decoded: res.blob ? Buffer.from(res.blob, 'base64').toString('utf8') : res.text });
      }
    }
  }

  // --- end the session (DELETE with Mcp-Session-Id)
  try {
    await transport.terminateSession();
    ok('session: DELETE terminates the session');
  } catch (e) {
    notOk('session: DELETE terminates the session', 'no error', String(e?.message ?? e));
  }
}

try {
  await main();
} catch (e) {
  notOk('checker ran to the end', 'no exception', String(e?.stack ?? e));
} finally {
  await client.close().catch(() => {});
}
console.log(`ts-client: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
