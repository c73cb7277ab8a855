// @urql/core: fetchExchange for queries (urql sends them as GET when they fit in the URL) and
// mutations, subscriptionExchange forwarding subscriptions to a graphql-ws client.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client, cacheExchange, fetchExchange, gql, subscriptionExchange } from '@urql/core';
import { createClient as createWSClient } from 'graphql-ws';
import WebSocket from 'ws';
import { ADMIN_TOKEN, Eventgate, Inbox } from './harness.js';

let eg;
before(async () => {
  eg = await Eventgate.create('urql');
});
after(async () => {
  await eg?.close();
});

/**
 * newUrql is a client that also records the HTTP method of every request it sends and the
 * media type of every response.
 */
function newUrql(t) {
  const methods = [];
  const mediaTypes = [];
  const wsClient = createWSClient({
    url: eg.wsURL,
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: `Bearer ${ADMIN_TOKEN}` },
    retryAttempts: 0,
  });
  t.after(() => wsClient.dispose());
  const client = new Client({
    url: eg.queryURL,
    fetchOptions: { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } },
    fetch: async (input, init) => {
      methods.push(init?.method ?? 'GET');
      const res = await fetch(input, init);
      mediaTypes.push(res.headers.get('content-type'));
      return res;
    },
    exchanges: [
      cacheExchange,
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query || '' };
          return {
            subscribe(sink) {
              return { unsubscribe: wsClient.subscribe(input, sink) };
            },
          };
        },
      }),
    ],
  });
  return { client, methods, mediaTypes };
}

const PUBLISH = gql`
  mutation Publish($input: PublishEventInput!) {
    publishEvent(input: $input) {
      id
      cursor
    }
  }
`;

describe('@urql/core', () => {
  test('query via fetchExchange', async (t) => {
    const { client, methods, mediaTypes } = newUrql(t);
    const res = await client
      .query(
        gql`
          query Types {
            viewer {
              name
              scopes
            }
            eventTypes {
              name
            }
          }
        `,
        {},
      )
      .toPromise();
    assert.equal(res.error, undefined, `got error ${res.error}`);
    assert.deepEqual(res.data.viewer.scopes, ['ADMIN']);
    assert.ok(res.data.eventTypes.some((e) => e.name === 'user.created'));
    assert.deepEqual(methods, ['GET'], 'urql sends short queries as GET');
    // urql's Accept also names text/event-stream, after the JSON types: it wants JSON.
    assert.deepEqual(mediaTypes, ['application/graphql-response+json; charset=utf-8']);
  });

  test('mutation over POST, subscription over graphql-ws', async (t) => {
    const { client, methods, mediaTypes } = newUrql(t);
    const publish = async (id, n) => {
      const res = await client
        .mutation(PUBLISH, { input: { id, type: 'user.created', payload: { user_id: n, telegram_id: 5_000_000_000 + n, username: `u${n}` } } })
        .toPromise();
      assert.equal(res.error, undefined, `got error ${res.error}`);
      return res.data.publishEvent;
    };
    const first = await publish('urql-1', 1);
    assert.deepEqual(methods, ['POST']);
    assert.deepEqual(mediaTypes, ['application/graphql-response+json; charset=utf-8']);

    const inbox = new Inbox('subscription result');
    const sub = client
      .subscription(
        gql`
          subscription Users($after: Cursor) {
            events(after: $after, types: ["user.created"]) {
              id
              data {
                __typename
                ... on UserCreated {
                  userId
                  telegramId
                  username
                }
              }
            }
          }
        `,
        { after: first.cursor },
      )
      .subscribe((r) => inbox.push(r));
    t.after(() => sub.unsubscribe());

    await publish('urql-2', 2);
    await publish('urql-3', 3);
    const got = await inbox.takeN(2);
    for (const r of got) assert.equal(r.error, undefined, `got error ${r.error}`);
    assert.deepEqual(
      got.map((r) => r.data.events.id),
      ['urql-2', 'urql-3'],
    );
    // Telegram ids exceed 32 bits: Int64 is a plain JSON number.
    assert.deepEqual(got[1].data.events.data, { __typename: 'UserCreated', userId: 3, telegramId: 5_000_000_003, username: 'u3' });
  });
});
