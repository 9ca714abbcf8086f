// The official `graphql-sse` client (distinct connections mode) against a real ward, for
// clients and proxies where websockets are blocked: a query answers once; a manager's
// subscription receives a ticket created over HTTP, resuming with `after` where it left off.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from 'graphql-sse';
import { startWard } from './ward.mjs';

let ward;

before(async () => {
  ward = await startWard();
});

after(async () => {
  await ward?.stop();
});

function client(email) {
  return createClient({
    url: `${ward.base}/graphql/stream`,
    headers: { Authorization: `Bearer ${ward.tokenFor(email)}` },
    retryAttempts: 0,
  });
}

async function graphql(email, query, variables = {}) {
  const response = await fetch(`${ward.base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ward.tokenFor(email)}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  assert.equal(body.errors, undefined, JSON.stringify(body.errors));
  return body.data;
}

test('a query over SSE answers once, as the caller', async () => {
  const sse = client('citizen@demo.test');
  try {
    const results = [];
    for await (const result of sse.iterate({ query: '{ me { email role } }' })) results.push(result);
    assert.deepEqual(results, [{ data: { me: { email: 'citizen@demo.test', role: 'CITIZEN' } } }]);
  } finally {
    sse.dispose();
  }
});

test('a subscription over SSE receives updates and resumes with after', async () => {
  const sse = client('manager@demo.test');
  const query = 'subscription($after: ID) { ticketUpdates(after: $after) { eventId kind ticket { id title } } }';
  try {
    // First connection: live from now; a ticket created over HTTP arrives.
    const first = sse.iterate({ query });
    const firstUpdate = first.next();
    await new Promise((r) => setTimeout(r, 500));
    const created = await graphql('citizen@demo.test', 'mutation { createTicket(input: { title: "Streetlight out (SSE)", category: ELECTRICITY }) { id } }');
    const { value } = await firstUpdate;
    assert.equal(value.data.ticketUpdates.ticket.id, created.createTicket.id);
    assert.equal(value.data.ticketUpdates.kind, 'CREATED');
    await first.return();

    // Disconnected meanwhile, a change happens; resuming with `after` replays it.
    await graphql('manager@demo.test', 'mutation($id: ID!) { setTicketStatus(id: $id, status: IN_PROGRESS) { status } }', { id: created.createTicket.id });
    const resumed = sse.iterate({ query, variables: { after: value.data.ticketUpdates.eventId } });
    const replayed = await resumed.next();
    assert.equal(replayed.value.data.ticketUpdates.ticket.id, created.createTicket.id);
    assert.equal(replayed.value.data.ticketUpdates.kind, 'UPDATED');
    await resumed.return();
  } finally {
    sse.dispose();
  }
});
