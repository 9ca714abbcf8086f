// Apollo Client 4 with graphql-codegen's typed documents against a real ward, the way an app
// would use them: HTTP with Automatic Persisted Queries (sha256 from node:crypto), GraphQL over
// websockets through a split link (graphql-ws), Relay cursors, and errors by
// `extensions.code`. The documents come from operations.graphql, typed from the published
// schema.graphql by `npm run codegen`, and this file is type-checked (tsc) before it runs (tsx),
// so an operation the schema refuses or a field read that the types do not have fails the run.
// Run through apollo.test.mjs.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  ApolloClient,
  ApolloLink,
  CombinedGraphQLErrors,
  HttpLink,
  InMemoryCache,
} from '@apollo/client';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { getMainDefinition } from '@apollo/client/utilities';
import { createClient, type Client as WsClient } from 'graphql-ws';
import WebSocket from 'ws';
import { startWard } from '../ward.mjs';
import {
  CreateTicketDocument,
  MeDocument,
  TicketsPageDocument,
  TicketUpdatesDocument,
  UpdateTicketDocument,
  type TicketUpdatesSubscription,
} from './generated/graphql.js';

type Ward = Awaited<ReturnType<typeof startWard>>;
let ward: Ward;

before(async () => {
  ward = await startWard();
});

after(async () => {
  await ward?.stop();
});

/** One HTTP exchange as the client's fetch saw it. */
interface Exchange {
  request: {
    operationName?: string;
    query?: string;
    variables?: Record<string, unknown>;
    extensions?: { persistedQuery?: { version: number; sha256Hash: string } };
  };
  response: { data?: unknown; errors?: { message: string; extensions?: { code?: string } }[] };
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/**
 * An Apollo Client for `token`: HTTP (APQ) for queries and mutations, websockets for
 * subscriptions. Every HTTP request and its JSON answer are recorded in `exchanges`.
 */
function apollo(token: string) {
  const exchanges: Exchange[] = [];
  const recordingFetch: typeof fetch = async (input, init) => {
    const response = await fetch(input, init);
    exchanges.push({
      request: JSON.parse(String(init?.body)),
      response: (await response.clone().json()) as Exchange['response'],
    });
    return response;
  };
  let connected!: () => void;
  const ready = new Promise<void>((resolve) => (connected = resolve));
  const ws: WsClient = createClient({
    url: `${ward.base.replace('http', 'ws')}/graphql/ws`,
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: `Bearer ${token}` },
    retryAttempts: 0,
    on: { connected: () => connected() },
  });
  const http = ApolloLink.from([
    new PersistedQueryLink({ sha256 }),
    new HttpLink({
      uri: `${ward.base}/graphql`,
      headers: { Authorization: `Bearer ${token}` },
      fetch: recordingFetch,
    }),
  ]);
  const link = ApolloLink.split(
    ({ query }) => {
      const definition = getMainDefinition(query);
      return definition.kind === 'OperationDefinition' && definition.operation === 'subscription';
    },
    new GraphQLWsLink(ws),
    http,
  );
  const client = new ApolloClient({
    link,
    cache: new InMemoryCache(),
    defaultOptions: { query: { fetchPolicy: 'no-cache' }, mutate: { fetchPolicy: 'no-cache' } },
  });
  return {
    client,
    exchanges,
    ready,
    async close() {
      client.stop();
      await ws.dispose();
    },
  };
}

/** The `extensions.code` of the first GraphQL error that `promise` rejects with. */
async function errorCode(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
  } catch (error) {
    assert.ok(CombinedGraphQLErrors.is(error), `expected GraphQL errors, got ${String(error)}`);
    assert.equal(error.errors.length, 1, JSON.stringify(error.errors));
    return error.errors[0].extensions?.code as string | undefined;
  }
  assert.fail('the operation succeeded');
}

test('automatic persisted queries: hash first, the text once, then the hash alone', async () => {
  const manager = apollo(ward.tokenFor('manager@demo.test'));
  try {
    const first = await manager.client.query({ query: MeDocument });
    assert.equal(first.data?.me?.role, 'MANAGER');
    assert.equal(first.data?.me?.municipality?.slug, 'demo');

    // Round one: only the hash, which ward does not know yet; round two: the text with it.
    assert.equal(manager.exchanges.length, 2);
    const [unknown, withText] = manager.exchanges;
    const hash = unknown.request.extensions?.persistedQuery?.sha256Hash;
    assert.match(hash ?? '', /^[0-9a-f]{64}$/);
    assert.equal(unknown.request.query, undefined);
    assert.equal(unknown.response.errors?.[0]?.extensions?.code, 'PERSISTED_QUERY_NOT_FOUND');
    assert.equal(withText.request.extensions?.persistedQuery?.sha256Hash, hash);
    assert.equal(typeof withText.request.query, 'string');
    assert.equal(sha256(withText.request.query!), hash, 'the hash is the sha256 of the text sent');
    assert.equal(withText.response.errors, undefined);

    // From now on the hash alone answers.
    for (let i = 0; i < 2; i++) {
      const again = await manager.client.query({ query: MeDocument });
      assert.equal(again.data?.me?.id, first.data?.me?.id);
    }
    assert.equal(manager.exchanges.length, 4);
    for (const { request, response } of manager.exchanges.slice(2)) {
      assert.equal(request.query, undefined);
      assert.equal(request.extensions?.persistedQuery?.sha256Hash, hash);
      assert.equal(response.errors, undefined);
    }

    // Ward keeps registered queries for every client: a new one gets by with the hash at once.
    const other = apollo(ward.tokenFor('admin@demo.test'));
    try {
      const admin = await other.client.query({ query: MeDocument });
      assert.equal(admin.data?.me?.role, 'ADMIN');
      assert.equal(other.exchanges.length, 1);
      assert.equal(other.exchanges[0].request.query, undefined);
    } finally {
      await other.close();
    }
  } finally {
    await manager.close();
  }
});

test('cursors: tickets(first: 2, after) pages through every ticket once', async () => {
  const manager = apollo(ward.tokenFor('manager@demo.test'));
  try {
    const page = async (after: string | null) => {
      const { data } = await manager.client.query({
        query: TicketsPageDocument,
        variables: { first: 2, after },
      });
      assert.ok(data, 'a page');
      return data.tickets;
    };
    const seen = new Set<string>();
    let after: string | null = null;
    let totalCount: number | undefined;
    let pages = 0;
    for (;;) {
      const tickets = await page(after);
      pages += 1;
      const { edges, pageInfo } = tickets;
      totalCount ??= tickets.totalCount;
      assert.equal(tickets.totalCount, totalCount, 'totalCount is the same on every page');
      assert.ok(edges.length <= 2, `page ${pages} has ${edges.length} tickets`);
      for (const { node } of edges) {
        assert.ok(!seen.has(node.id), `ticket ${node.trackingNumber} came twice`);
        seen.add(node.id);
        assert.match(node.trackingNumber, /^[A-Z]+-\d{4}-\d{6}$/);
      }
      if (!pageInfo.hasNextPage) break;
      assert.equal(edges.length, 2, 'only the last page is short');
      assert.equal(pageInfo.endCursor, edges.at(-1)?.cursor);
      after = pageInfo.endCursor ?? null;
      assert.ok(after, 'a page with a next page has an endCursor');
      assert.ok(pages < 100, 'the pages end');
    }
    assert.ok(totalCount !== undefined && totalCount > 2, `the demo has more than a page (${totalCount})`);
    assert.equal(seen.size, totalCount);
    assert.equal(pages, Math.ceil(totalCount / 2));

    // Persisted too: the text went once, the other pages by hash (with their own variables).
    const pageRequests = manager.exchanges.filter((e) => e.request.operationName === 'TicketsPage');
    assert.equal(pageRequests.length, pages + 1);
    assert.equal(pageRequests.filter((e) => e.request.query !== undefined).length, 1);
  } finally {
    await manager.close();
  }
});

test('errors carry extensions.code: CONFLICT, FORBIDDEN, UNAUTHENTICATED', async () => {
  const manager = apollo(ward.tokenFor('manager@demo.test'));
  const worker = apollo(ward.tokenFor('worker@demo.test'));
  const badToken = apollo('not-a-token');
  const now = Math.floor(Date.now() / 1000);
  const expired = apollo(
    ward.sign({
      sub: '00000000-0000-4000-8000-0000000b0003',
      aud: 'authenticated',
      role: 'authenticated',
      email: 'manager@demo.test',
      iat: now - 7200,
      exp: now - 3600,
    }),
  );
  try {
    const created = await manager.client.mutate({
      mutation: CreateTicketDocument,
      variables: { input: { title: 'Pothole on Main Road', category: 'ROADS' } },
    });
    const ticket = created.data?.createTicket;
    assert.ok(ticket);
    const updated = await manager.client.mutate({
      mutation: UpdateTicketDocument,
      variables: { id: ticket.id, input: { priority: 'HIGH' }, expectedVersion: ticket.version },
    });
    assert.equal(updated.data?.updateTicket.priority, 'HIGH');
    assert.equal(updated.data?.updateTicket.version, ticket.version + 1);

    // The same edit again at the version it no longer has.
    assert.equal(
      await errorCode(
        manager.client.mutate({
          mutation: UpdateTicketDocument,
          variables: { id: ticket.id, input: { priority: 'URGENT' }, expectedVersion: ticket.version },
        }),
      ),
      'CONFLICT',
    );
    // Field workers do not report tickets.
    assert.equal(
      await errorCode(
        worker.client.mutate({
          mutation: CreateTicketDocument,
          variables: { input: { title: 'Not mine to report', category: 'WATER' } },
        }),
      ),
      'FORBIDDEN',
    );
    // A token that is not one, and one that has expired: never anonymous.
    assert.equal(await errorCode(badToken.client.query({ query: MeDocument })), 'UNAUTHENTICATED');
    assert.equal(await errorCode(expired.client.query({ query: MeDocument })), 'UNAUTHENTICATED');
  } finally {
    await Promise.all([manager.close(), worker.close(), badToken.close(), expired.close()]);
  }
});

test('subscriptions through the split link: a created ticket arrives, typed', async () => {
  const manager = apollo(ward.tokenFor('manager@demo.test'));
  const updates: TicketUpdatesSubscription['ticketUpdates'][] = [];
  const errors: unknown[] = [];
  const subscription = manager.client.subscribe({ query: TicketUpdatesDocument }).subscribe({
    next: ({ data, error }) => {
      if (error) errors.push(error);
      if (data) updates.push(data.ticketUpdates);
    },
    error: (error) => errors.push(error),
  });
  try {
    await manager.ready;
    // The subscription is live once ward has run its resolver; give it a moment (as in
    // subscriptions.test.mjs).
    await new Promise((r) => setTimeout(r, 500));

    const created = await manager.client.mutate({
      mutation: CreateTicketDocument,
      variables: { input: { title: 'Streetlight out on Church Street', category: 'ELECTRICITY' } },
    });
    const ticket = created.data?.createTicket;
    assert.ok(ticket);

    const deadline = Date.now() + 10_000;
    let update: (typeof updates)[number] | undefined;
    while (!(update = updates.find((u) => u.ticket?.id === ticket.id && u.kind === 'CREATED'))) {
      assert.deepEqual(errors, []);
      assert.ok(Date.now() < deadline, 'the CREATED update did not arrive in 10 s');
      await new Promise((r) => setTimeout(r, 25));
    }
    assert.deepEqual(errors, []);
    assert.equal(update.status, 'OPEN');
    assert.match(update.eventId, /^\d+$/);
    assert.ok(!Number.isNaN(Date.parse(update.occurredAt)), `occurredAt ${update.occurredAt}`);
    assert.equal(update.ticket?.trackingNumber, ticket.trackingNumber);
    assert.equal(update.ticket?.title, 'Streetlight out on Church Street');
    assert.equal(update.ticket?.category, 'ELECTRICITY');

    // The subscription went over the websocket, never through HTTP.
    assert.ok(manager.exchanges.every((e) => e.request.operationName !== 'TicketUpdates'));
    assert.ok(manager.exchanges.some((e) => e.request.operationName === 'CreateTicket'));
  } finally {
    subscription.unsubscribe();
    await manager.close();
  }
});

/** An Apollo Client that sends every operation over the websocket (no split, no HTTP). */
function apolloOverSocket(token?: string) {
  const ws: WsClient = createClient({
    url: `${ward.base.replace('http', 'ws')}/graphql/ws`,
    webSocketImpl: WebSocket,
    connectionParams: token ? { Authorization: `Bearer ${token}` } : {},
    retryAttempts: 0,
  });
  const client = new ApolloClient({
    link: new GraphQLWsLink(ws),
    cache: new InMemoryCache(),
    defaultOptions: { query: { fetchPolicy: 'no-cache' }, mutate: { fetchPolicy: 'no-cache' } },
  });
  return {
    client,
    async close() {
      client.stop();
      await ws.dispose();
    },
  };
}

test('everything over the websocket: queries and mutations run as the connection, with codes', async () => {
  const citizen = apolloOverSocket(ward.tokenFor('citizen@demo.test'));
  const manager = apolloOverSocket(ward.tokenFor('manager@demo.test'));
  const anonymous = apolloOverSocket();
  try {
    const me = await citizen.client.query({ query: MeDocument });
    assert.equal(me.data?.me?.role, 'CITIZEN');
    assert.equal((await anonymous.client.query({ query: MeDocument })).data?.me, null);

    const created = await citizen.client.mutate({
      mutation: CreateTicketDocument,
      variables: { input: { title: 'Pothole reported over a websocket', category: 'ROADS' } },
    });
    const ticket = created.data?.createTicket;
    assert.ok(ticket, 'created');
    assert.match(ticket.trackingNumber, /^DEMO-/);

    // It was committed: the manager's socket reads it back and edits it.
    const page = await manager.client.query({ query: TicketsPageDocument, variables: { first: 50 } });
    assert.ok(page.data?.tickets.edges.some((e) => e.node.id === ticket.id), 'the manager sees the new ticket');
    const edited = await manager.client.mutate({
      mutation: UpdateTicketDocument,
      variables: { id: ticket.id, input: { priority: 'HIGH' }, expectedVersion: ticket.version },
    });
    assert.equal(edited.data?.updateTicket.priority, 'HIGH');

    // Errors carry the same codes as over HTTP.
    const stale = manager.client.mutate({
      mutation: UpdateTicketDocument,
      variables: { id: ticket.id, input: { priority: 'LOW' }, expectedVersion: ticket.version },
    });
    assert.equal(await errorCode(stale), 'CONFLICT');
    const refused = anonymous.client.mutate({
      mutation: CreateTicketDocument,
      variables: { input: { title: 'Anonymous', category: 'ROADS' } },
    });
    assert.equal(await errorCode(refused), 'UNAUTHENTICATED');
  } finally {
    await Promise.all([citizen.close(), manager.close(), anonymous.close()]);
  }
});
