#!/usr/bin/env node
// send_draft through the official TypeScript SDK, a client that declares form elicitation:
// the server asks "Send this email?" with elicitation/create on the legacy session, and this
// client answers as told. Prints {asked, result} as JSON.
//
//   MCP_URL=… MCP_TOKEN=… node ts-elicit.mjs DRAFT_ID accept|decline|cancel|uncheck
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';

const [draftId, answer] = process.argv.slice(2);
if (!process.env.MCP_URL || !process.env.MCP_TOKEN || !draftId || !answer) {
  console.error('usage: MCP_URL=… MCP_TOKEN=… ts-elicit.mjs DRAFT_ID accept|decline|cancel|uncheck');
  process.exit(2);
}
const transport = new StreamableHTTPClientTransport(new URL(process.env.MCP_URL), {
  requestInit: { headers: { Authorization: 'Bearer ' + process.env.MCP_TOKEN } },
});
const client = new Client(
  { name: 'mailconnect-elicit', version: '0.1.0' },
  { capabilities: { elicitation: { form: {} } } },
);
let asked = null;
client.setRequestHandler(ElicitRequestSchema, async (request) => {
  if (process.env.DEBUG) console.error('elicitation', JSON.stringify(request));
  asked = request.params;
  if (answer === 'accept') return { action: 'accept', content: { send: true } };
  if (answer === 'uncheck') return { action: 'accept', content: { send: false } };
  return { action: answer };
});
if (process.env.DEBUG) {
  client.onerror = (e) => console.error('client error', e);
  transport.onerror = (e) => console.error('transport error', e);
}
await client.connect(transport);
const result = await client.callTool(
  { name: 'send_draft', arguments: { draft_id: draftId } },
  undefined,
  { timeout: Number(process.env.TIMEOUT_MS || 60000) },
);
console.log(JSON.stringify({ asked, result, protocol: transport.protocolVersion ?? null }));
await client.close();
