// @apollo/client as the admin app uses it: HttpLink (queries and mutations, bearer token in the
// Authorization header) and GraphQLWsLink (subscriptions over graphql-ws), joined with split.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  ApolloClient,
  CombinedGraphQLErrors,
  HttpLink,
  InMemoryCache,
  gql,
  split,
} from '@apollo/client';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { getMainDefinition } from '@apollo/client/utilities';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { ADMIN_TOKEN, Eventgate, Inbox } from './harness.js';

let eg;
before(async () => {
  eg = await Eventgate.create('apollo');
});
after(async () => {
  await eg?.close();
});

const EVENT_DATA_TYPES = [
  'UserCreated',
  'PaymentCompleted',
  'TransactionCreated',
  'TicketCreated',
  'TicketStatusChanged',
  'TicketMessageAdded',
  'WebhookTest',
  'WebhookDisabled',
];

/** newApollo wires HTTP for queries and mutations, WebSocket for subscriptions. */
function newApollo(t, token = ADMIN_TOKEN) {
  const wsClient = createClient({
    url: eg.wsURL,
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: `Bearer ${token}` },
    retryAttempts: 0,
  });
  const link = split(
    ({ query }) => {
      const def = getMainDefinition(query);
      return def.kind === 'OperationDefinition' && def.operation === 'subscription';
    },
    new GraphQLWsLink(wsClient),
    new HttpLink({ uri: eg.queryURL, headers: { Authorization: `Bearer ${token}` } }),
  );
  const client = new ApolloClient({
    link,
    cache: new InMemoryCache({ possibleTypes: { EventData: EVENT_DATA_TYPES } }),
  });
  t.after(async () => {
    client.stop();
    await wsClient.dispose();
  });
  return client;
}

const PUBLISH = gql`
  mutation Publish($input: PublishEventInput!) {
    publishEvent(input: $input) {
      id
      cursor
      type
    }
  }
`;

const EVENTS = gql`
  subscription Events($after: Cursor) {
    events(after: $after) {
      id
      cursor
      type
      data {
        ... on TicketCreated {
          ticketId
          title
          priority
        }
      }
    }
  }
`;

describe('@apollo/client', () => {
  test('query over HttpLink with the Authorization header', async (t) => {
    const client = newApollo(t);
    const { data, error } = await client.query({
      query: gql`
        {
          viewer {
            id
            name
            scopes
          }
          eventTypes {
            name
            schema
          }
        }
      `,
    });
    assert.equal(error, undefined);
    assert.deepEqual(data.viewer.scopes, ['ADMIN']);
    const names = data.eventTypes.map((e) => e.name);
    for (const want of ['payment.completed', 'ticket.created', 'user.created']) {
      assert.ok(names.includes(want), `got event types ${names}, want ${want} among them`);
    }
  });

  test('mutation, then subscription over GraphQLWsLink', async (t) => {
    const client = newApollo(t);
    const publish = async (id, n) => {
      const { data } = await client.mutate({
        mutation: PUBLISH,
        variables: { input: { id, type: 'ticket.created', payload: { ticket_id: n, user_id: 7, title: `ticket ${n}`, priority: 'high' } } },
      });
      return data.publishEvent;
    };
    const first = await publish('apollo-1', 1);
    assert.equal(first.id, 'apollo-1');
    assert.equal(first.type, 'ticket.created');

    const inbox = new Inbox('subscription result');
    const sub = client.subscribe({ query: EVENTS, variables: { after: first.cursor } }).subscribe({
      next: (r) => inbox.push(r),
      error: (err) => inbox.push({ error: err }),
    });
    t.after(() => sub.unsubscribe());

    await publish('apollo-2', 2);
    await publish('apollo-3', 3);
    const got = await inbox.takeN(2);
    for (const r of got) assert.equal(r.error, undefined, `got error ${r.error}`);
    assert.deepEqual(
      got.map((r) => r.data.events.id),
      ['apollo-2', 'apollo-3'],
    );
    assert.deepEqual(got[0].data.events.data, { __typename: 'TicketCreated', ticketId: 2, title: 'ticket 2', priority: 'HIGH' });
  });

  test('field errors arrive as CombinedGraphQLErrors with their code and field', async (t) => {
    const client = newApollo(t);
    await assert.rejects(
      client.mutate({
        mutation: PUBLISH,
        variables: { input: { type: 'payment.completed', payload: { transaction_id: 1, user_id: 7 } } },
      }),
      (err) => {
        assert.ok(CombinedGraphQLErrors.is(err), `got ${err?.name}: ${err?.message}, want CombinedGraphQLErrors`);
        assert.equal(err.errors[0].extensions.code, 'BAD_USER_INPUT');
        // The path of the offending value: the `input` argument, then the payload key.
        assert.equal(err.errors[0].extensions.field, 'input.payload.amount_kopeks');
        return true;
      },
    );
  });

  // The 401 carries a GraphQL error body, so Apollo surfaces its code rather than a bare
  // HTTP failure.
  test('a bad token is an UNAUTHENTICATED error', async (t) => {
    const client = newApollo(t, 'not-a-valid-token-at-all-0000');
    await assert.rejects(client.query({ query: gql`{ viewer { id } }` }), (err) => {
      assert.ok(CombinedGraphQLErrors.is(err), `got ${err?.name}: ${err?.message}, want CombinedGraphQLErrors`);
      assert.equal(err.errors[0].extensions.code, 'UNAUTHENTICATED');
      assert.equal(err.data, undefined);
      return true;
    });
  });
});
