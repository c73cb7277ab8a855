// graphql-ws's createClient (the graphql-transport-ws protocol, what GraphiQL, Apollo's
// GraphQLWsLink and urql use underneath) against a real eventgate, with `ws` as the socket.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { ADMIN_TOKEN, Eventgate, Gate, Inbox, waitFor, within } from './harness.js';

const EVENTS = `subscription Events($after: Cursor, $types: [String!]) {
  events(after: $after, types: $types) {
    id cursor type payload
    data { __typename ... on PaymentCompleted { transactionId amountKopeks } }
  }
}`;

let eg;
before(async () => {
  eg = await Eventgate.create('graphql-ws');
});
after(async () => {
  await eg?.close();
});

/**
 * newClient makes a graphql-ws client for the admin token. Every close event is recorded, and
 * the client is disposed at the end of the test.
 */
function newClient(t, options = {}) {
  const closes = [];
  const connecting = [];
  const client = createClient({
    url: eg.wsURL,
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: `Bearer ${ADMIN_TOKEN}` },
    ...options,
    on: {
      connecting: (isRetry) => connecting.push(isRetry),
      closed: (event) => closes.push(event.code),
      ...options.on,
    },
  });
  t.after(() => client.dispose());
  return { client, closes, connecting };
}

/**
 * subscribeEvents subscribes with `variables` and pushes each received event into an inbox;
 * `variables.after` is moved to the cursor of every event received. graphql-ws serialises the
 * subscribe payload afresh on every (re)connect, so a client that reconnects on its own resumes
 * exactly after the last event it got: this is the pattern the README shows.
 */
function subscribeEvents(client, variables = {}) {
  const inbox = new Inbox('event');
  const done = { error: null, completed: false, settled: new Gate() };
  const payload = { query: EVENTS, variables };
  const dispose = client.subscribe(payload, {
    next: (result) => {
      if (result.errors) {
        inbox.push({ errors: result.errors });
        return;
      }
      const ev = result.data.events;
      variables.after = ev.cursor;
      inbox.push(ev);
    },
    error: (err) => {
      done.error = err;
      done.settled.open();
    },
    complete: () => {
      done.completed = true;
      done.settled.open();
    },
  });
  return { inbox, done, dispose, variables };
}

const ids = (events) => events.map((e) => e.id);

describe('graphql-ws createClient', () => {
  test('live subscription receives events published over HTTP', async (t) => {
    const { client } = newClient(t);
    const { inbox, dispose } = subscribeEvents(client, { types: ['payment.completed'] });
    t.after(dispose);

    // A live subscription (no `after`) sees what is published once it is registered, and the
    // client cannot tell when that is: publish probes until one arrives.
    let first;
    for (let i = 0; !first; i++) {
      assert.ok(i < 100, 'got no probe event after 100 tries');
      await eg.payment(`live-probe-${i}`, i);
      first = await inbox.poll(200);
    }
    const want = ['live-1', 'live-2', 'live-3'];
    for (const [n, id] of want.entries()) await eg.payment(id, n + 1);
    const got = [];
    while (got.length < want.length) {
      const ev = await inbox.take();
      assert.ok(!ev.errors, `got errors ${JSON.stringify(ev.errors)}`);
      if (!ev.id.startsWith('live-probe-')) got.push(ev);
    }
    assert.deepEqual(ids(got), want);
    assert.deepEqual(got[1].data, { __typename: 'PaymentCompleted', transactionId: 2, amountKopeks: 200 });
    assert.deepEqual(got[1].payload, { transaction_id: 2, user_id: 7, amount_kopeks: 200 });
    assert.equal(got[1].type, 'payment.completed');
  });

  test('resume with after gets exactly the events after the cursor, then live ones', async (t) => {
    const published = [];
    for (let i = 1; i <= 5; i++) published.push(await eg.payment(`resume-${i}`, i));

    const { client } = newClient(t);
    const { inbox, dispose } = subscribeEvents(client, { after: published[1].cursor });
    t.after(dispose);

    const replayed = await inbox.takeN(3);
    assert.deepEqual(ids(replayed), ['resume-3', 'resume-4', 'resume-5']);
    assert.deepEqual(
      replayed.map((e) => e.cursor),
      published.slice(2).map((e) => e.cursor),
    );

    await eg.payment('resume-6', 6);
    const live = await inbox.take();
    assert.equal(live.id, 'resume-6', `got ${live.id} after the replay, want resume-6 (no duplicate, no gap)`);
  });

  // A restart is a graceful shutdown (1001) or a crash (the socket just drops: 1006). Either way
  // the client reconnects by itself and, resubscribing after its last cursor, misses nothing
  // that was published while it was away.
  for (const { signal, wantClose } of [
    { signal: 'SIGTERM', wantClose: 1001 },
    { signal: 'SIGKILL', wantClose: 1006 },
  ]) {
    test(`reconnects after a server restart (${signal}) and misses nothing`, async (t) => {
      const tag = `restart-${signal.toLowerCase()}`;
      const start = await eg.payment(`${tag}-0`, 100);
      // The test decides when the client may reconnect: after the server is back and events
      // were published that the client has not seen.
      const gate = new Gate();
      const { client, closes } = newClient(t, {
        retryAttempts: 10,
        shouldRetry: () => true,
        retryWait: () => gate.promise,
      });
      const { inbox, dispose, variables } = subscribeEvents(client, { after: start.cursor, types: ['payment.completed'] });
      t.after(dispose);

      await eg.payment(`${tag}-1`, 101);
      await eg.payment(`${tag}-2`, 102);
      const before = await inbox.takeN(2);
      assert.deepEqual(ids(before), [`${tag}-1`, `${tag}-2`]);
      assert.equal(variables.after, before[1].cursor);

      await eg.stop(signal);
      await waitFor('the client to see the socket close', () => closes.length > 0);
      assert.deepEqual(closes, [wantClose], `got close codes ${closes}, want [${wantClose}]`);

      await eg.start();
      await eg.payment(`${tag}-3`, 103);
      await eg.payment(`${tag}-4`, 104);
      gate.open();

      const resumed = await inbox.takeN(2);
      assert.deepEqual(ids(resumed), [`${tag}-3`, `${tag}-4`]);
      await eg.payment(`${tag}-5`, 105);
      const live = await inbox.take();
      assert.equal(live.id, `${tag}-5`);
      assert.equal(await inbox.poll(300), undefined, 'got an extra event, want none (no duplicates)');
    });
  }

  test('keep-alive pings are answered and keep the socket open', async (t) => {
    let pongs = 0;
    const { client, closes } = newClient(t, { keepAlive: 50, on: { pong: (received) => received && pongs++ } });
    const { dispose } = subscribeEvents(client, {});
    t.after(dispose);
    await waitFor('three pongs', () => pongs >= 3);
    assert.deepEqual(closes, []);
  });

  test('revoking the token ends its socket with 4403', async (t) => {
    const { createApiToken } = await eg.gql(
      `mutation Token($input: CreateApiTokenInput!) { createApiToken(input: $input) { secret token { id } } }`,
      { input: { name: 'compat subscriber', scopes: ['EVENTS_SUBSCRIBE'] } },
    );
    const { client, closes } = newClient(t, {
      connectionParams: { Authorization: `Bearer ${createApiToken.secret}` },
      retryAttempts: 1,
      retryWait: async () => {},
    });
    const start = await eg.payment('revoke-0', 200);
    const { inbox, done } = subscribeEvents(client, { after: start.cursor });
    await eg.payment('revoke-1', 201);
    assert.equal((await inbox.take()).id, 'revoke-1');

    await eg.gql('mutation Revoke($id: ID!) { revokeApiToken(id: $id) { revokedAt } }', { id: createApiToken.token.id });
    // DESIGN.md §3: within 5 s; the harness deadline leaves room for a loaded machine.
    await within('the subscription to end', done.settled.promise);
    assert.equal(done.error?.code, 4403, `got error ${done.error}, want a close event with code 4403`);
    assert.deepEqual(closes, [4403, 4403], 'want the revocation close, then the refused retry');
  });

  test('a rejected token closes with 4403 and the client gives up after retryAttempts', async (t) => {
    const retryAttempts = 2;
    const { client, closes, connecting } = newClient(t, {
      connectionParams: { Authorization: 'Bearer not-a-valid-token-at-all-0000' },
      retryAttempts,
      retryWait: async () => {},
    });
    const { inbox, done } = subscribeEvents(client, {});
    await within('the client to give up', done.settled.promise);

    assert.equal(done.completed, false, 'subscription completed, want an error');
    assert.equal(done.error?.code, 4403, `got error ${done.error}, want a close event with code 4403`);
    assert.deepEqual(closes, Array(retryAttempts + 1).fill(4403));
    assert.equal(connecting.length, retryAttempts + 1, `got ${connecting.length} connection attempts`);

    // Given up for good: no further connection attempt follows.
    await inbox.poll(500);
    assert.equal(connecting.length, retryAttempts + 1, `got ${connecting.length} connection attempts after giving up`);
    assert.deepEqual(inbox.all, []);
  });
});
