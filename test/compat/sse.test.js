// Server-Sent Events clients: graphql-sse's createClient in its "distinct connections" mode (the
// mode eventgate serves) and urql with fetchSubscriptions, both authenticating with the
// Authorization header.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client, fetchExchange, gql } from '@urql/core';
import { createClient } from 'graphql-sse';
import { ADMIN_TOKEN, Eventgate, Inbox, within } from './harness.js';

let eg;
before(async () => {
  eg = await Eventgate.create('sse');
});
after(async () => {
  await eg?.close();
});

const EVENTS = `subscription Events($after: Cursor) {
  events(after: $after, types: ["ticket.status_changed"]) {
    id cursor data { __typename ... on TicketStatusChanged { ticketId oldStatus newStatus closedAt } }
  }
}`;

const statusChanged = (id, n, closedAt = null) =>
  eg.publish('ticket.status_changed', { ticket_id: n, old_status: 'open', new_status: 'closed', closed_at: closedAt }, id);

/** newSSEClient is a graphql-sse client in distinct connections mode, disposed after the test. */
function newSSEClient(t, token = ADMIN_TOKEN) {
  const client = createClient({
    url: eg.queryURL,
    headers: { Authorization: `Bearer ${token}` },
    retryAttempts: 0,
  });
  t.after(() => client.dispose());
  return client;
}

describe('SSE', () => {
  test('graphql-sse: a query is one result, then the stream completes', async (t) => {
    const client = newSSEClient(t);
    const results = [];
    for await (const result of client.iterate({ query: '{ viewer { name scopes } }' })) results.push(result);
    assert.equal(results.length, 1, `got ${JSON.stringify(results)}, want one result`);
    assert.equal(results[0].errors, undefined);
    assert.deepEqual(results[0].data.viewer.scopes, ['ADMIN']);
  });

  test('graphql-sse: subscription replays after a cursor, then streams live events', async (t) => {
    const client = newSSEClient(t);
    const first = await statusChanged('sse-1', 1);
    await statusChanged('sse-2', 2, '2026-01-02T03:04:05Z');

    const inbox = new Inbox('event');
    const done = new Inbox('end of stream');
    const dispose = client.subscribe(
      { query: EVENTS, variables: { after: first.cursor } },
      { next: (r) => inbox.push(r), error: (err) => done.push({ err }), complete: () => done.push('complete') },
    );
    t.after(dispose);

    const replayed = await inbox.take();
    assert.equal(replayed.errors, undefined, `got errors ${JSON.stringify(replayed.errors)}`);
    assert.equal(replayed.data.events.id, 'sse-2');
    assert.deepEqual(replayed.data.events.data, {
      __typename: 'TicketStatusChanged',
      ticketId: 2,
      oldStatus: 'open',
      newStatus: 'closed',
      closedAt: '2026-01-02T03:04:05Z',
    });

    await statusChanged('sse-3', 3);
    assert.equal((await inbox.take()).data.events.id, 'sse-3');
    assert.equal(await done.poll(100), undefined, 'the stream ended, want it open');
  });

  test('graphql-sse: a bad token is refused', async (t) => {
    const client = newSSEClient(t, 'not-a-valid-token-at-all-0000');
    const done = new Inbox('end of stream');
    client.subscribe({ query: EVENTS }, { next: (r) => done.push({ next: r }), error: (err) => done.push({ err }), complete: () => done.push('complete') });
    const end = await done.take();
    assert.ok(end.err, `got ${JSON.stringify(end)}, want an error`);
    assert.equal(end.err.response?.status, 401, `got ${end.err}, want a 401 response`);
    const body = await end.err.response.json();
    assert.equal(body.errors[0].extensions.code, 'UNAUTHENTICATED');
  });

  test('urql with fetchSubscriptions streams a subscription over SSE', async (t) => {
    const mediaTypes = [];
    const client = new Client({
      url: eg.queryURL,
      fetchSubscriptions: true,
      fetchOptions: { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } },
      fetch: async (input, init) => {
        const res = await fetch(input, init);
        mediaTypes.push(res.headers.get('content-type'));
        return res;
      },
      exchanges: [fetchExchange],
    });
    const first = await statusChanged('urql-sse-1', 11);

    const inbox = new Inbox('subscription result');
    const sub = client.subscription(gql(EVENTS), { after: first.cursor }).subscribe((r) => inbox.push(r));
    await statusChanged('urql-sse-2', 12);
    const got = await inbox.take();
    assert.equal(got.error, undefined, `got error ${got.error}`);
    assert.equal(got.data.events.id, 'urql-sse-2');
    assert.deepEqual(mediaTypes, ['text/event-stream; charset=utf-8']);

    // Unsubscribing aborts the request; the stream must end without an error reaching urql.
    sub.unsubscribe();
    assert.equal(await within('no further result', inbox.poll(100)), undefined);
  });
});
