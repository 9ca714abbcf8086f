// The GraphiQL playground in a real browser (Debian's chromium, driven by playwright-core):
// the page ward serves on `/` must work with nothing but ward's own origin — every other
// request is refused and fails the test — under its Content-Security-Policy. As a demo
// manager picked from the playground's own list it runs `me` and `tickets`, then starts a
// `ticketUpdates` subscription over the websocket and sees the update a mutation from
// outside causes. It saves a screenshot to target/playground.png.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startWard } from './ward.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
];
/** The headers editor, once its tab is chosen (the variables editor is then hidden). */
const HEADERS = '.graphiql-editor-tool .graphiql-editor:not(.hidden)';
const TICKET = '00000000-0000-4000-8000-0000000e0001'; // demo ticket 1 (src/demo.rs)

/** Sets a GraphiQL (CodeMirror 5) editor's text. */
async function setEditor(page, selector, text) {
  await page.locator(`${selector} .CodeMirror`).first().evaluate((el, value) => el.CodeMirror.setValue(value), text);
}

/** The response pane's text. */
function responseText(page) {
  return page.locator('.graphiql-response .CodeMirror').first().evaluate((el) => el.CodeMirror.getValue());
}

/** Waits until the response pane parses as JSON and `accept` returns true for it. */
async function waitForResponse(page, accept, what, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    last = await responseText(page);
    try {
      const value = JSON.parse(last);
      if (accept(value)) return value;
    } catch {
      // empty or partial
    }
    await page.waitForTimeout(100);
  }
  throw new Error(`no response with ${what}; the response pane shows: ${last}`);
}

/** Types an operation and runs it. GraphiQL 4 decides websocket vs HTTP from a parse of the
 * editor that trails its text by about 100 ms: running at once would use the old parse. */
async function run(page, query) {
  await setEditor(page, '.graphiql-query-editor', query);
  await page.waitForTimeout(600);
  await page.locator('.graphiql-execute-button').click();
}

test('GraphiQL runs queries and a live subscription with only ward\'s own origin', { timeout: 300_000 }, async (t) => {
  const ward = await startWard();
  t.after(() => ward.stop());
  const origin = new URL(ward.base);
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
  t.after(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 }, serviceWorkers: 'block' });
  const page = await context.newPage();

  // Anything not from ward is recorded and refused, as it would be on a machine offline.
  const foreign = [];
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.origin === origin.origin) return route.continue();
    foreign.push(url.href);
    return route.abort('blockedbyclient');
  });
  page.on('request', (request) => {
    const url = new URL(request.url());
    if (url.protocol !== 'data:' && url.origin !== origin.origin) foreign.push(url.href);
  });
  const sockets = [];
  page.on('websocket', (socket) => {
    const url = new URL(socket.url());
    if (url.host !== origin.host) foreign.push(url.href);
    const record = { url: url.href, sent: [], received: [] };
    socket.on('framesent', (frame) => record.sent.push(String(frame.payload)));
    socket.on('framereceived', (frame) => record.received.push(String(frame.payload)));
    sockets.push(record);
  });
  const problems = [];
  page.on('console', (message) => {
    if (/Content[- ]Security[- ]Policy|Refused to/i.test(message.text())) problems.push(message.text());
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));

  const response = await page.goto(`${ward.base}/`);
  assert.equal(response.status(), 200);
  const csp = response.headers()['content-security-policy'] ?? '';
  assert.match(csp, /default-src 'self'/);
  assert.doesNotMatch(csp, /https?:|\*/, 'the CSP names no other origin');
  await page.locator('.graphiql-container').waitFor({ timeout: 30_000 });
  await page.locator('.graphiql-query-editor .CodeMirror').first().waitFor();

  // Anonymous first: with the headers emptied, `me` is null.
  await page.locator('.graphiql-editor-tools button', { hasText: 'Headers' }).click();
  await setEditor(page, HEADERS, '');
  await run(page, '{ me { displayName role } }');
  await waitForResponse(page, (v) => v.data && v.data.me === null, 'me: null for an anonymous caller');

  // The playground's demo list sets a manager's Authorization header.
  await page.locator('button.ward-person[data-email="manager@demo.test"]').click();
  const headers = await page.locator(`${HEADERS} .CodeMirror`).first().evaluate((el) => el.CodeMirror.getValue());
  assert.match(headers, /"Authorization": "Bearer ey/);
  await run(page, '{ me { displayName role municipality { slug } } }');
  const me = await waitForResponse(page, (v) => v.data?.me, 'the manager in me');
  assert.deepEqual(me.data.me, { displayName: 'Lerato Manager', role: 'MANAGER', municipality: { slug: 'demo' } });

  await run(page, '{ tickets(first: 20) { totalCount nodes { id trackingNumber status isSensitive } } }');
  const tickets = await waitForResponse(page, (v) => v.data?.tickets, 'tickets');
  assert.ok(tickets.data.tickets.totalCount >= 4, JSON.stringify(tickets));
  assert.ok(tickets.data.tickets.nodes.some((n) => n.id === TICKET));
  assert.ok(tickets.data.tickets.nodes.every((n) => /^DEMO-/.test(n.trackingNumber)), 'only demo tickets');

  // A subscription over the websocket; a mutation from outside the browser shows up in it.
  await run(page, 'subscription Live { ticketUpdates { eventId kind status ticket { id trackingNumber status } } }');
  const socketDeadline = Date.now() + 15_000;
  while (!sockets.some((s) => s.sent.some((f) => f.includes('"subscribe"')))) {
    assert.ok(Date.now() < socketDeadline, `GraphiQL never subscribed over the websocket: ${JSON.stringify(sockets)}`);
    await page.waitForTimeout(100);
  }
  const socket = sockets.find((s) => s.sent.some((f) => f.includes('"subscribe"')));
  assert.equal(new URL(socket.url).pathname, '/graphql/ws');
  const init = JSON.parse(socket.sent.find((f) => f.includes('connection_init')));
  assert.match(init.payload.Authorization, /^Bearer /, 'the header went into connection_init');

  const mutate = async (status) => {
    const reply = await fetch(`${ward.base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ward.tokenFor('manager@demo.test')}` },
      body: JSON.stringify({
        query: 'mutation($id: ID!, $status: TicketStatus!) { setTicketStatus(id: $id, status: $status) { status } }',
        variables: { id: TICKET, status },
      }),
    });
    const body = await reply.json();
    assert.equal(body.errors, undefined, JSON.stringify(body));
  };
  // The server registers the subscription when it first polls it: an update made in the same
  // instant may precede it, so change the ticket again until one arrives.
  let update;
  for (const status of ['IN_PROGRESS', 'OPEN', 'IN_PROGRESS', 'OPEN']) {
    await mutate(status);
    try {
      const arrived = (v) => v.data?.ticketUpdates?.ticket?.id === TICKET && v.data.ticketUpdates.status === status;
      update = await waitForResponse(page, arrived, 'a ticket update', 3_000);
      break;
    } catch {
      // try again
    }
  }
  assert.ok(update, `no update arrived; frames: ${JSON.stringify(socket.received.slice(-5))}`);
  assert.equal(update.data.ticketUpdates.kind, 'UPDATED');
  assert.ok(socket.received.some((f) => f.includes('"next"')), 'the update came over the websocket');

  mkdirSync(join(root, 'target'), { recursive: true });
  await page.screenshot({ path: join(root, 'target', 'playground.png') });

  assert.deepEqual(foreign, [], 'every request stays on ward\'s origin');
  assert.deepEqual(problems, [], 'no CSP violations or page errors');
});
