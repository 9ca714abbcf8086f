// The official `graphql-ws` client against a real ward: a manager subscribes to ticket updates,
// a ticket is created and updated through GraphQL over HTTP, and the updates arrive; a citizen
// of the other municipality, subscribed all along, receives nothing.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { startWard } from './ward.mjs';

let ward;

before(async () => {
  ward = await startWard();
});

after(async () => {
  await ward?.stop();
});

const UPDATES = `subscription {
  ticketUpdates { eventId kind status ticket { id title trackingNumber } }
}`;

async function graphql(token, query, variables = {}) {
  const response = await fetch(`${ward.base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  assert.equal(body.errors, undefined, JSON.stringify(body.errors));
  return body.data;
}

/** Subscribes as `email`; collects what arrives. */
function subscribe(email) {
  const received = [];
  const errors = [];
  let connected;
  const ready = new Promise((resolve) => (connected = resolve));
  const client = createClient({
    url: ward.base.replace('http', 'ws') + '/graphql/ws',
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: `Bearer ${ward.tokenFor(email)}` },
    on: { connected: () => connected() },
    lazy: false,
  });
  const dispose = client.subscribe(
    { query: UPDATES },
    {
      next: (value) => received.push(value),
      error: (error) => errors.push(error),
      complete: () => {},
    },
  );
  return { client, received, errors, ready, dispose };
}

async function until(predicate, what, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

test('a manager sees a ticket created and updated; the other municipality sees nothing', async () => {
  const manager = subscribe('manager@demo.test');
  const outsider = subscribe('citizen@other.test');
  await Promise.all([manager.ready, outsider.ready]);
  // The subscription is registered when the server has run its resolver; give it a moment
  // (the Rust tests close this race with `after`).
  await new Promise((r) => setTimeout(r, 500));

  const managerToken = ward.tokenFor('manager@demo.test');
  const created = await graphql(
    managerToken,
    'mutation { createTicket(input: { title: "Streetlight flickering", category: ELECTRICITY }) { id version } }',
  );
  const id = created.createTicket.id;
  await graphql(
    managerToken,
    'mutation($id: ID!) { setTicketStatus(id: $id, status: IN_PROGRESS, note: "Crew booked") { status } }',
    { id },
  );

  await until(() => manager.received.length >= 2, 'two updates for the manager');
  const [first, second] = manager.received.map((r) => r.data.ticketUpdates);
  assert.equal(first.kind, 'CREATED');
  assert.equal(first.ticket.id, id);
  assert.match(first.ticket.trackingNumber, /^DEMO-\d{4}-\d{6}$/);
  assert.equal(second.kind, 'UPDATED');
  assert.equal(second.status, 'IN_PROGRESS');
  assert.ok(Number(second.eventId) > Number(first.eventId));
  assert.deepEqual(manager.errors, []);

  await new Promise((r) => setTimeout(r, 500));
  assert.deepEqual(outsider.received, []);
  assert.deepEqual(outsider.errors, []);

  manager.dispose();
  outsider.dispose();
  await manager.client.dispose();
  await outsider.client.dispose();
});

test('a bad token is refused at connection_init with 4403', async () => {
  const closed = new Promise((resolve) => {
    const client = createClient({
      url: ward.base.replace('http', 'ws') + '/graphql/ws',
      webSocketImpl: WebSocket,
      connectionParams: { Authorization: 'Bearer not-a-token' },
      retryAttempts: 0,
      on: { closed: (event) => resolve(event) },
      lazy: false,
    });
    client.subscribe({ query: UPDATES }, { next() {}, error() {}, complete() {} });
  });
  const event = await closed;
  assert.equal(event.code, 4403);
});

// Last in this file: it changes a demo person's role (docs/POLICY.md, P-LIVE-RIGHTS).
test('a manager demoted while subscribed loses the subscription within a second', async () => {
  const manager = subscribe('manager@demo.test');
  const saps = subscribe('saps@demo.test');
  await Promise.all([manager.ready, saps.ready]);
  await new Promise((r) => setTimeout(r, 500));

  const sapsToken = ward.tokenFor('saps@demo.test');
  const adminToken = ward.tokenFor('admin@demo.test');
  const sensitive = await graphql(
    sapsToken,
    'mutation { createTicket(input: { title: "Case", category: SAFETY, isSensitive: true }) { id } }',
  );
  const id = sensitive.createTicket.id;
  await until(() => manager.received.length >= 1, 'the manager sees the sensitive case while a manager');

  const me = await graphql(ward.tokenFor('manager@demo.test'), '{ me { id } }');
  const demotedAt = Date.now();
  await graphql(adminToken, 'mutation($id: ID!) { setProfileRole(profileId: $id, role: CITIZEN) { role } }', { id: me.me.id });
  const ended = () =>
    manager.errors.length > 0 || manager.received.some((r) => r.errors?.[0]?.extensions?.code === 'FORBIDDEN');
  await until(ended, 'the end of the demoted manager\'s subscription', 1_000);
  assert.ok(Date.now() - demotedAt <= 1_000);
  const seen = manager.received.length;

  await graphql(sapsToken, 'mutation($id: ID!) { setTicketStatus(id: $id, status: IN_PROGRESS) { status } }', { id });
  await until(() => saps.received.length >= 2, 'the SAPS liaison sees the change');
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(manager.received.length, seen, 'nothing reaches the demoted person');

  manager.dispose();
  saps.dispose();
  await manager.client.dispose();
  await saps.client.dispose();
});

test('queries and mutations over the socket (graphql-ws alone): one result each, as the connection', async () => {
  const client = createClient({
    url: ward.base.replace('http', 'ws') + '/graphql/ws',
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: `Bearer ${ward.tokenFor('citizen@demo.test')}` },
    retryAttempts: 0,
  });
  /** The single result of an operation sent over the socket. */
  const once = async (payload) => {
    const results = [];
    for await (const result of client.iterate(payload)) results.push(result);
    assert.equal(results.length, 1, JSON.stringify(results));
    return results[0];
  };
  try {
    const me = await once({ query: '{ me { email role } }' });
    assert.deepEqual(me.data.me, { email: 'citizen@demo.test', role: 'CITIZEN' });
    const created = await once({
      query: 'mutation($input: CreateTicketInput!) { createTicket(input: $input) { id title status } }',
      variables: { input: { title: 'Broken bench, reported over graphql-ws', category: 'WASTE' } },
    });
    assert.equal(created.errors, undefined, JSON.stringify(created.errors));
    assert.equal(created.data.createTicket.status, 'OPEN');
    // Committed: HTTP sees it.
    const seen = await graphql(ward.tokenFor('admin@demo.test'), 'query($id: ID!) { ticket(id: $id) { title } }', {
      id: created.data.createTicket.id,
    });
    assert.equal(seen.ticket.title, 'Broken bench, reported over graphql-ws');
    const refused = await once({ query: 'mutation($id: ID!) { setTicketStatus(id: $id, status: CLOSED) { status } }', variables: { id: created.data.createTicket.id } });
    assert.equal(refused.errors[0].extensions.code, 'FORBIDDEN');
  } finally {
    await client.dispose();
  }
});
