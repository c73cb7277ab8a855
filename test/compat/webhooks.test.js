// Real webhook deliveries from eventgate, checked the way receivers check them: the Standard
// Webhooks reference library (standardwebhooks), Svix's library (svix), and the old system's
// X-Webhook-Signature with node:crypto.

import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { Webhook as StandardWebhook, WebhookVerificationError } from 'standardwebhooks';
import { Webhook as SvixWebhook, WebhookVerificationError as SvixVerificationError } from 'svix';
import { Eventgate, startReceiver, waitFor } from './harness.js';

let eg;
before(async () => {
  eg = await Eventgate.create('webhooks');
});
after(async () => {
  await eg?.close();
});

/** createWebhook creates a payment.completed webhook (deleted after the test) and returns {id, secret}. */
async function createWebhook(t, url, input = {}) {
  const { createWebhook: created } = await eg.gql(
    `mutation Create($input: CreateWebhookInput!) {
      createWebhook(input: $input) { secret webhook { id payloadFormat hasSecret isActive } }
    }`,
    { input: { name: `compat ${t.name}`, url, eventTypes: ['payment.completed'], ...input } },
  );
  const { id } = created.webhook;
  t.after(() => eg.gql('mutation Delete($id: ID!) { deleteWebhook(id: $id) }', { id }));
  assert.equal(created.webhook.hasSecret, true);
  assert.equal(created.webhook.isActive, true);
  return { id, secret: created.secret, webhook: created.webhook };
}

/** rotate replaces the webhook's secret and returns the new one. */
async function rotate(id, gracePeriodSeconds) {
  const { rotateWebhookSecret } = await eg.gql(
    'mutation Rotate($id: ID!, $grace: Int) { rotateWebhookSecret(id: $id, gracePeriodSeconds: $grace) { secret } }',
    { id, grace: gracePeriodSeconds },
  );
  return rotateWebhookSecret.secret;
}

/** receiver starts a webhook receiver that is closed after the test. */
async function receiver(t, respond) {
  const r = await startReceiver(respond);
  t.after(() => r.close());
  return r;
}

const payment = (n) => ({ transaction_id: n, user_id: 7, amount_kopeks: 100 * n, payment_method: 'card' });

/** legacySignature is X-Webhook-Signature: HMAC-SHA256 keyed with the secret string as UTF-8. */
const legacySignature = (secret, body) => `sha256=${createHmac('sha256', Buffer.from(secret, 'utf8')).update(body).digest('hex')}`;

/** standardSignature is one Standard Webhooks v1 signature, computed by hand. */
function standardSignature(secret, headers, body) {
  const key = secret.startsWith('whsec_') ? Buffer.from(secret.slice('whsec_'.length), 'base64') : Buffer.from(secret, 'utf8');
  const mac = createHmac('sha256', key).update(`${headers['webhook-id']}.${headers['webhook-timestamp']}.${body}`);
  return `v1,${mac.digest('base64')}`;
}

const randomSecret = () => `whsec_${randomBytes(32).toString('base64')}`;

/**
 * verifiers are the libraries a receiver would use, for one secret, each with the error class
 * it throws for a request that does not verify (svix bundles its own copy of standardwebhooks).
 */
const verifiers = (secret, options) => ({
  standardwebhooks: [(body, headers) => new StandardWebhook(secret, options).verify(body, headers), WebhookVerificationError],
  svix: [(body, headers) => new SvixWebhook(secret, options).verify(body, headers), SvixVerificationError],
});

/** assertVerifies checks that every library accepts the request and returns its parsed body. */
function assertVerifies(secret, req, options) {
  let parsed;
  for (const [lib, [verify]] of Object.entries(verifiers(secret, options))) {
    assert.doesNotThrow(() => (parsed = verify(req.body, req.headers)), `${lib} rejected a genuine request`);
  }
  return parsed;
}

/** assertRejects checks that every library refuses the request for this secret. */
function assertRejects(secret, req, why, options) {
  for (const [lib, [verify, VerificationError]] of Object.entries(verifiers(secret, options))) {
    assert.throws(() => verify(req.body, req.headers), VerificationError, `${lib} accepted ${why}`);
  }
}

describe('webhook signatures', () => {
  test('STANDARD deliveries verify with standardwebhooks, svix and the legacy header', async (t) => {
    const rcv = await receiver(t);
    const { id, secret } = await createWebhook(t, `${rcv.url}/standard`);
    assert.match(secret, /^whsec_[A-Za-z0-9+/]+=*$/);
    assert.equal(Buffer.from(secret.slice(6), 'base64').length, 32, 'generated secret: want 32 random bytes');

    const ev = await eg.publish('payment.completed', payment(1), 'wh-standard-1');
    const req = await rcv.inbox.take();
    const h = req.headers;
    assert.equal(req.method, 'POST');
    assert.equal(req.url, '/standard');
    assert.match(h['content-type'], /^application\/json/);
    assert.match(h['user-agent'], /^eventgate\//);
    assert.equal(h['webhook-id'], 'wh-standard-1');
    assert.match(h['webhook-timestamp'], /^\d+$/);
    assert.equal(h['x-webhook-event'], 'payment.completed');
    assert.equal(h['x-webhook-id'], id);
    assert.match(h['x-webhook-delivery'], /^\d+$/);
    assert.equal(h['x-webhook-attempt'], '1');

    const parsed = assertVerifies(secret, req);
    assert.deepEqual(Object.keys(parsed).sort(), ['data', 'timestamp', 'type']);
    assert.equal(parsed.type, 'payment.completed');
    assert.deepEqual(parsed.data, payment(1));
    assert.equal(Date.parse(parsed.timestamp), Date.parse(ev.occurred_at), `got timestamp ${parsed.timestamp}, want ${ev.occurred_at}`);
    assert.equal(h['webhook-signature'], standardSignature(secret, h, req.body));

    assertRejects(secret, { ...req, body: req.body.replace('"transaction_id":1', '"transaction_id":2') }, 'a tampered body');
    assertRejects(secret, { ...req, headers: { ...h, 'webhook-id': 'another-id' } }, 'a changed webhook-id');
    assertRejects(randomSecret(), req, 'another secret');

    assert.equal(h['x-webhook-signature'], legacySignature(secret, req.body));
  });

  test('a retried delivery keeps its webhook-id and is signed again', async (t) => {
    let calls = 0;
    const rcv = await receiver(t, () => (++calls === 1 ? 503 : 200));
    const { id, secret } = await createWebhook(t, `${rcv.url}/retry`);

    await eg.publish('payment.completed', payment(2), 'wh-retry-1');
    const [first, second] = await rcv.inbox.takeN(2);
    assert.equal(second.headers['webhook-id'], first.headers['webhook-id']);
    assert.equal(second.headers['webhook-id'], 'wh-retry-1');
    assert.equal(second.headers['x-webhook-delivery'], first.headers['x-webhook-delivery']);
    assert.deepEqual([first.headers['x-webhook-attempt'], second.headers['x-webhook-attempt']], ['1', '2']);
    assert.equal(second.body, first.body);
    assertVerifies(secret, first);
    assertVerifies(secret, second);
    assert.equal(second.headers['x-webhook-signature'], legacySignature(secret, second.body));

    const deliveryId = first.headers['x-webhook-delivery'];
    const delivery = await waitFor('the delivery to succeed', async () => {
      const { delivery: d } = await eg.gql(
        'query D($id: ID!) { delivery(id: $id) { status attemptCount webhook { id } attempts { number responseStatus } } }',
        { id: deliveryId },
      );
      return d?.status === 'SUCCESS' && d;
    });
    assert.equal(delivery.webhook.id, id);
    assert.equal(delivery.attemptCount, 2);
    assert.deepEqual(delivery.attempts.map((a) => [a.number, a.responseStatus]).sort(), [
      [1, 503],
      [2, 200],
    ]);
  });

  test('a raw secret verifies in raw mode; LEGACY bodies are the bare payload', async (t) => {
    const rcv = await receiver(t);
    const raw = 'old-system-secret-2f9c41';
    const { secret } = await createWebhook(t, `${rcv.url}/raw`, { secret: raw, payloadFormat: 'LEGACY' });
    assert.equal(secret, raw);

    await eg.publish('payment.completed', payment(3), 'wh-raw-1');
    const req = await rcv.inbox.take();
    const parsed = assertVerifies(raw, req, { format: 'raw' });
    assert.deepEqual(parsed, payment(3));
    assert.equal(req.headers['webhook-signature'], standardSignature(raw, req.headers, req.body));
    assert.equal(req.headers['x-webhook-signature'], legacySignature(raw, req.body));
  });

  test('during a rotation grace period both secrets verify, newest first', async (t) => {
    const rcv = await receiver(t);
    const { id, secret: oldSecret } = await createWebhook(t, `${rcv.url}/rotate`);
    const newSecret = await rotate(id, 3600);
    assert.notEqual(newSecret, oldSecret);
    assert.match(newSecret, /^whsec_/);

    await eg.publish('payment.completed', payment(4), 'wh-rotate-1');
    const req = await rcv.inbox.take();
    const h = req.headers;
    assert.deepEqual(h['webhook-signature'].split(' '), [standardSignature(newSecret, h, req.body), standardSignature(oldSecret, h, req.body)]);
    assertVerifies(oldSecret, req);
    assertVerifies(newSecret, req);
    assertRejects(randomSecret(), req, 'a secret that was never the webhook’s');
    assert.equal(h['x-webhook-signature'], legacySignature(newSecret, req.body), 'legacy header: want the newest secret');
  });

  test('a rotation without grace period retires the old secret at once', async (t) => {
    const rcv = await receiver(t);
    const { id, secret: oldSecret } = await createWebhook(t, `${rcv.url}/rotate-now`);
    const newSecret = await rotate(id, 0);

    await eg.publish('payment.completed', payment(5), 'wh-rotate-now-1');
    const req = await rcv.inbox.take();
    assert.equal(req.headers['webhook-signature'], standardSignature(newSecret, req.headers, req.body));
    assertVerifies(newSecret, req);
    assertRejects(oldSecret, req, 'the retired secret');
  });
});
