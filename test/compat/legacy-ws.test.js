// The legacy `graphql-ws` sub-protocol as spoken by subscriptions-transport-ws (its
// SubscriptionClient, and Apollo's WebSocketLink on top of it): older apps still use it.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ApolloClient, InMemoryCache, gql } from '@apollo/client';
import { WebSocketLink } from '@apollo/client/link/ws';
import { SubscriptionClient } from 'subscriptions-transport-ws';
import WebSocket from 'ws';
import { ADMIN_TOKEN, Eventgate, Inbox, waitFor } from './harness.js';

let eg;
before(async () => {
  eg = await Eventgate.create('legacy-ws');
});
after(async () => {
  await eg?.close();
});

const EVENTS = `subscription Events($after: Cursor) {
  events(after: $after) { id cursor type data { __typename ... on TicketMessageAdded { ticketId messageId isFromAdmin } } }
}`;

/**
 * newLegacyClient is a SubscriptionClient whose sockets record their close codes and the
 * sub-protocol the server chose.
 */
function newLegacyClient(t, token, options = {}) {
  const closes = [];
  const protocols = [];
  class RecordingWebSocket extends WebSocket {
    constructor(...args) {
      super(...args);
      this.addEventListener('open', () => protocols.push(this.protocol));
      this.addEventListener('close', (e) => closes.push(e.code));
    }
  }
  const client = new SubscriptionClient(
    eg.wsURL,
    { reconnect: false, connectionParams: { Authorization: `Bearer ${token}` }, ...options },
    RecordingWebSocket,
  );
  t.after(() => client.close());
  return { client, closes, protocols };
}

const message = (id, n) =>
  eg.publish('ticket.message_added', { ticket_id: 9, message_id: n, is_from_admin: n % 2 === 0, message_text: `m${n}` }, id);

describe('subscriptions-transport-ws', () => {
  test('SubscriptionClient replays after a cursor, then streams live events', async (t) => {
    const first = await message('legacy-1', 1);
    await message('legacy-2', 2);

    const { client, protocols } = newLegacyClient(t, ADMIN_TOKEN);
    const inbox = new Inbox('event');
    const sub = client.request({ query: EVENTS, variables: { after: first.cursor } }).subscribe({
      next: (r) => inbox.push(r),
      error: (err) => inbox.push({ error: err }),
    });
    t.after(() => sub.unsubscribe());

    const replayed = await inbox.take();
    assert.equal(replayed.errors, undefined, `got errors ${JSON.stringify(replayed.errors)}`);
    assert.equal(replayed.data.events.id, 'legacy-2');
    assert.deepEqual(protocols, ['graphql-ws']);

    await message('legacy-3', 3);
    const live = await inbox.take();
    assert.equal(live.data.events.id, 'legacy-3');
    assert.deepEqual(live.data.events.data, { __typename: 'TicketMessageAdded', ticketId: 9, messageId: 3, isFromAdmin: false });
  });

  test('a rejected token gets connection_error, then close 4403', async (t) => {
    const connectionErrors = new Inbox('connection callback');
    const { client, closes } = newLegacyClient(t, 'not-a-valid-token-at-all-0000', {
      connectionCallback: (err) => connectionErrors.push(err ?? null),
    });
    const inbox = new Inbox('result');
    client.request({ query: EVENTS }).subscribe({ next: (r) => inbox.push(r), error: (e) => inbox.push({ error: e }) });

    const err = await connectionErrors.take();
    assert.ok(err && typeof err.message === 'string', `got connection callback ${JSON.stringify(err)}, want an error payload`);
    await waitFor('the socket to close', () => closes.length > 0);
    assert.deepEqual(closes, [4403]);
    assert.equal(await inbox.poll(200), undefined, 'got a result for a rejected connection');
  });

  test("Apollo's WebSocketLink over the legacy protocol", async (t) => {
    const first = await message('legacy-link-1', 11);
    const { client: subClient } = newLegacyClient(t, ADMIN_TOKEN);
    const apollo = new ApolloClient({ link: new WebSocketLink(subClient), cache: new InMemoryCache() });
    t.after(() => apollo.stop());

    const inbox = new Inbox('subscription result');
    const sub = apollo.subscribe({ query: gql(EVENTS), variables: { after: first.cursor } }).subscribe({
      next: (r) => inbox.push(r),
      error: (err) => inbox.push({ error: err }),
    });
    t.after(() => sub.unsubscribe());

    await message('legacy-link-2', 12);
    const got = await inbox.take();
    assert.equal(got.error, undefined, `got error ${got.error}`);
    assert.equal(got.data.events.id, 'legacy-link-2');
  });
});
