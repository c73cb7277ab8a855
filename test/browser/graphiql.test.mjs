// End-to-end test of the GraphiQL page as a person uses it: bin/eventgate on a free port and a
// temporary database, Debian's Chromium driven by playwright-core, and every host but eventgate
// unreachable for the page. It proves that the page loads nothing from elsewhere, runs a query
// with the pasted token, and shows an event published over REST arriving on a subscription.
//
// Run with `make test-browser` (it builds the binary and makes sure Chromium is installed).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const binary = process.env.EVENTGATE_BIN || resolve(here, '../../bin/eventgate');
const chromiumPath = '/usr/bin/chromium';
const outDir = join(here, 'out');
const screenshotPath = join(outDir, 'graphiql-subscription.png');

// Generous: the machine may be busy; nothing here measures speed.
const startDeadlineMs = 60_000;
const uiDeadlineMs = 30_000;

const token = `browser-test-${randomBytes(16).toString('hex')}`;

let server; // { proc, origin, logs, exited }
let context;
let tempDirs = [];

// startEventgate runs the binary on 127.0.0.1:0 and reads the address it prints, so no port
// can be taken between choosing and binding it.
async function startEventgate() {
  const dataDir = await mkdtemp(join(tmpdir(), 'eventgate-browser-data-'));
  tempDirs.push(dataDir);
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('EVENTGATE_')));
  Object.assign(env, {
    EVENTGATE_ADDR: '127.0.0.1:0',
    EVENTGATE_DATA_DIR: dataDir,
    EVENTGATE_ADMIN_TOKEN: token,
    EVENTGATE_SQLITE_SYNC: 'normal',
  });
  const proc = spawn(binary, ['serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs = [];
  const exited = new Promise((res) => proc.once('exit', (code, signal) => res({ code, signal })));
  const origin = await new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`eventgate printed no address within ${startDeadlineMs} ms:\n${logs.join('')}`)), startDeadlineMs);
    const onData = (chunk) => {
      logs.push(chunk.toString());
      const m = logs.join('').match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (m) {
        clearTimeout(timer);
        res(m[1]);
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', (chunk) => logs.push(chunk.toString()));
    proc.once('error', (err) => {
      clearTimeout(timer);
      rej(new Error(`start ${binary}: ${err.message}`));
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      rej(new Error(`eventgate exited (${code ?? signal}) before listening:\n${logs.join('')}`));
    });
  });
  server = { proc, origin, logs, exited };

  const deadline = Date.now() + startDeadlineMs;
  for (;;) {
    try {
      const res = await fetch(`${origin}/readyz`);
      if (res.ok) return;
    } catch {
      // not accepting yet
    }
    if (Date.now() > deadline) throw new Error(`${origin}/readyz not ready within ${startDeadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function stopEventgate() {
  if (!server || server.proc.exitCode !== null || server.proc.signalCode !== null) return;
  server.proc.kill('SIGTERM');
  const killer = setTimeout(() => server.proc.kill('SIGKILL'), 15_000);
  await server.exited;
  clearTimeout(killer);
}

// publish sends one event over the REST ingest, as a producer would.
async function publish(id) {
  const res = await fetch(`${server.origin}/v1/events`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({
      type: 'payment.completed',
      id,
      payload: { transaction_id: 42, user_id: 7, amount_kopeks: 50000 },
    }),
  });
  assert.equal(res.status, 201, `POST /v1/events: got status ${res.status}, want 201: ${await res.text()}`);
}

// setQuery replaces the query editor's text through CodeMirror itself (typing would fight the
// editor's auto-closing brackets and completion), then waits, as a person pausing would, until
// GraphiQL has parsed it: the fetcher picks HTTP or WebSocket from that parse.
async function setQuery(page, text, operation) {
  await page.evaluate((t) => {
    document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue(t);
  }, text);
  await page.waitForFunction((op) => {
    const cm = document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror;
    return cm.operations?.length === 1 && cm.operations[0].operation === op;
  }, operation);
}

before(async () => {
  assert.ok(existsSync(binary), `got no ${binary}, want it built (make build)`);
  assert.ok(existsSync(chromiumPath), `got no ${chromiumPath}, want Debian's chromium (test/browser/setup.sh)`);
  await mkdir(outDir, { recursive: true });
  await startEventgate();
  const userDataDir = await mkdtemp(join(tmpdir(), 'eventgate-browser-profile-'));
  tempDirs.push(userDataDir);
  // A persistent context is how Playwright takes a --user-data-dir: a fresh one per run.
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: chromiumPath,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1400, height: 860 },
  });
});

after(async () => {
  await context?.close();
  await stopEventgate();
  await Promise.all(tempDirs.map((d) => rm(d, { recursive: true, force: true })));
});

test('GraphiQL works offline: query and subscription with the pasted token', { timeout: 180_000 }, async (t) => {
  const { origin } = server;
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(uiDeadlineMs);

  // The network, for the page, is eventgate and nothing else.
  const aborted = [];
  const requests = [];
  await page.route('**', (route) => {
    const url = route.request().url();
    if (url.startsWith(`${origin}/`)) return route.continue();
    aborted.push(url);
    return route.abort('blockedbyclient');
  });
  page.on('request', (req) => requests.push({ url: req.url(), method: req.method(), headers: req.headers() }));
  const failedAssets = [];
  page.on('response', (res) => {
    if (res.url().includes('/graphiql/assets/') && res.status() !== 200) failedAssets.push(`${res.status()} ${res.url()}`);
  });

  const sockets = [];
  page.on('websocket', (ws) => {
    const sock = { url: ws.url(), sent: [], received: [] };
    sockets.push(sock);
    ws.on('framesent', (f) => sock.sent.push(String(f.payload)));
    ws.on('framereceived', (f) => sock.received.push(String(f.payload)));
  });

  const pageErrors = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));
  // A Content-Security-Policy violation means something of the page was blocked. Reported to
  // the test through a binding, so that reloads lose none.
  const cspViolations = [];
  await page.exposeFunction('egReportCSPViolation', (v) => cspViolations.push(v));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      window.egReportCSPViolation(`${e.violatedDirective} ${e.blockedURI} ${e.sample}`);
    });
  });

  // Steps run in order and share the page: after a failure the rest are skipped, and the
  // failure keeps a screenshot and eventgate's log.
  let failed = false;
  const step = (name, fn) =>
    t.test(name, { skip: failed && 'an earlier step failed' }, async () => {
      try {
        await fn();
      } catch (err) {
        failed = true;
        const shot = join(outDir, 'failure.png');
        await page.screenshot({ path: shot }).catch(() => {});
        err.message += `\n(screenshot: ${shot}; eventgate log:\n${server.logs.join('').slice(-4000)})`;
        throw err;
      }
    });

  await step('page loads', async () => {
    const res = await page.goto(`${origin}/graphiql`);
    assert.equal(res.status(), 200);
    assert.match(res.headers()['content-security-policy'] ?? '', /script-src 'self'/);
    // goto waited for the load event: the script and the stylesheet have been answered.
    assert.deepEqual(failedAssets, [], 'got bundled assets that did not load');
    await page.locator('.graphiql-container').waitFor();

    // The token, pasted as a person would.
    await page.locator('#eg-token').fill(token);
    await page.locator('#eg-status', { hasText: 'token set' }).waitFor();
  });

  await step('query', async () => {
    await setQuery(page, '{ eventTypes { name } }', 'query');
    await page.locator('.graphiql-execute-button').click();
    await page.locator('.result-window', { hasText: '"payment.completed"' }).waitFor();
    const authed = requests.filter((r) => r.method === 'POST' && r.url === `${origin}/query` && r.headers.authorization === `Bearer ${token}`);
    assert.ok(authed.length > 0, 'got no POST /query with the Authorization header, want the query sent with it');
  });

  await step('subscription', async () => {
    await setQuery(page, 'subscription { events { id type } }', 'subscription');
    await page.locator('.graphiql-execute-button').click();

    // Live events only: publish once the server has the subscription. The subscribe frame
    // having gone out is not quite that, so publish again (a new event) until one shows.
    const waitFrame = async (dir, type) => {
      const deadline = Date.now() + uiDeadlineMs;
      while (!sockets.some((s) => s[dir].some((f) => JSON.parse(f).type === type))) {
        if (Date.now() > deadline) throw new Error(`got no ${type} frame ${dir} within ${uiDeadlineMs} ms`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await waitFrame('received', 'connection_ack');
    await waitFrame('sent', 'subscribe');

    let shown = '';
    for (let i = 1; i <= 10 && !shown; i++) {
      const id = `browser-${randomBytes(6).toString('hex')}`;
      await publish(id);
      try {
        await page.locator('.result-window', { hasText: id }).waitFor({ timeout: 3_000 });
        shown = id;
      } catch {
        // published before the subscription was live: try another
      }
    }
    assert.ok(shown, 'got no published event in the result pane, want it to arrive over the subscription');
    await page.locator('.result-window', { hasText: '"payment.completed"' }).waitFor();
    await page.screenshot({ path: screenshotPath });

    assert.equal(sockets.length, 1, `got ${sockets.length} WebSockets, want 1`);
    assert.equal(sockets[0].url, `${origin.replace(/^http/, 'ws')}/query`);
    const init = sockets[0].sent.map((f) => JSON.parse(f)).find((m) => m.type === 'connection_init');
    assert.deepEqual(init?.payload, { Authorization: `Bearer ${token}` });
  });

  await step('dialog styles carry the nonce', async () => {
    // Radix dialogs add a <style> element; the CSP lets it in only with this response's nonce.
    await page.locator('[aria-label="Open settings dialog"]').click();
    await page.locator('.graphiql-dialog').waitFor();
    const nonced = await page.evaluate(() => [...document.querySelectorAll('head style')].filter((s) => s.nonce).length);
    assert.ok(nonced > 0, 'got no <style> with a nonce while the dialog is open, want the dialog\'s own');
    await page.keyboard.press('Escape');
    await page.locator('.graphiql-dialog').waitFor({ state: 'detached' });
  });

  await step('token kept in localStorage', async () => {
    await page.reload();
    await page.locator('.graphiql-container').waitFor();
    assert.equal(await page.locator('#eg-token').inputValue(), token);
  });

  await step('nothing external, nothing blocked', async () => {
    assert.deepEqual(aborted, [], 'got requests to other hosts, want none');
    for (const r of requests) {
      assert.ok(r.url.startsWith(`${origin}/`), `got a request to ${r.url}, want only ${origin}`);
      assert.ok(!r.url.includes(token), `got the token in the URL ${r.url}`);
    }
    for (const s of sockets) assert.ok(!s.url.includes(token), `got the token in the WebSocket URL ${s.url}`);
    assert.deepEqual(cspViolations, [], 'got Content-Security-Policy violations');
    assert.deepEqual(pageErrors, [], 'got uncaught errors in the page');
  });
});
