// Harness of the client compatibility suite: runs the real bin/eventgate (built beforehand by
// `make build`; this file builds nothing) as a child process on a free loopback port with a
// throw-away data dir, and gives the tests small helpers around it. Each test file starts its
// own server so files stay independent and can run in parallel.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The binary under test; `make test-compat` builds it before running the suite. */
export const BINARY = process.env.EVENTGATE_BIN || path.resolve(here, '../../bin/eventgate');

/** Server logs go here (ignored by git) so a failing run can be read afterwards. */
export const OUT_DIR = path.join(here, 'out');

/** Bootstrap admin token every server of the suite is started with. */
export const ADMIN_TOKEN = 'compat-admin-token-7f3c9a2e51d84b06';

/** How long any single wait of the suite may take before the test fails. */
export const DEADLINE_MS = 15_000;

/** freePort asks the kernel for a loopback port nobody listens on. */
export async function freePort() {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address();
  srv.close();
  await once(srv, 'close');
  return port;
}

/**
 * Eventgate is one eventgate process. start() may be called again after stop() (same data dir,
 * same port) to prove that clients survive a restart.
 */
export class Eventgate {
  /**
   * @param {object} o
   * @param {string} o.name  label used for the log file
   * @param {string} o.dataDir
   * @param {number} o.port
   * @param {Record<string,string>} [o.env] extra EVENTGATE_* settings
   */
  constructor({ name, dataDir, port, env = {} }) {
    this.name = name;
    this.dataDir = dataDir;
    this.port = port;
    this.extraEnv = env;
    this.child = null;
    this.starts = 0;
    this.logPath = '';
    // A test process that dies must not leave a server behind.
    this.killOnExit = () => this.child?.kill('SIGKILL');
    process.on('exit', this.killOnExit);
  }

  /** create makes a server with a fresh temporary data dir and a free port, and starts it. */
  static async create(name, env = {}) {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), `eventgate-compat-${name}-`));
    const eg = new Eventgate({ name, dataDir, port: await freePort(), env });
    await eg.start();
    return eg;
  }

  get baseURL() {
    return `http://127.0.0.1:${this.port}`;
  }

  get queryURL() {
    return `${this.baseURL}/query`;
  }

  get wsURL() {
    return `ws://127.0.0.1:${this.port}/query`;
  }

  /** start spawns the binary and resolves once /readyz answers 200. */
  async start() {
    if (this.child) throw new Error(`${this.name}: already running`);
    if (!existsSync(BINARY)) throw new Error(`${BINARY} is missing: run \`make build\` (or \`make test-compat\`)`);
    mkdirSync(OUT_DIR, { recursive: true });
    this.starts++;
    this.logPath = path.join(OUT_DIR, `${this.name}-${process.pid}-${this.starts}.log`);
    const log = createWriteStream(this.logPath);
    const child = spawn(BINARY, ['serve'], {
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        EVENTGATE_DATA_DIR: this.dataDir,
        EVENTGATE_ADDR: `127.0.0.1:${this.port}`,
        EVENTGATE_ADMIN_TOKEN: ADMIN_TOKEN,
        EVENTGATE_ALLOWED_TARGETS: '127.0.0.0/8,::1',
        EVENTGATE_RETRY_SCHEDULE: '50ms,100ms',
        EVENTGATE_SQLITE_SYNC: 'normal',
        EVENTGATE_SHUTDOWN_TIMEOUT: '3s',
        ...this.extraEnv,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.pipe(log);
    child.stderr.pipe(log);
    this.child = child;
    this.exited = once(child, 'exit').then(([code, signal]) => {
      if (this.child === child) this.child = null;
      return { code, signal };
    });

    const deadline = Date.now() + DEADLINE_MS;
    let exitedEarly = null;
    this.exited.then((how) => (exitedEarly = how));
    for (;;) {
      if (exitedEarly) {
        throw new Error(`${this.name}: eventgate exited before ready (${JSON.stringify(exitedEarly)}):\n${this.logTail()}`);
      }
      try {
        const res = await fetch(`${this.baseURL}/readyz`, { signal: AbortSignal.timeout(1000) });
        await res.arrayBuffer();
        if (res.status === 200) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        await this.stop('SIGKILL');
        throw new Error(`${this.name}: /readyz not 200 within ${DEADLINE_MS} ms:\n${this.logTail()}`);
      }
      await sleep(50);
    }
  }

  /**
   * stop ends the process: SIGTERM is a graceful shutdown (sockets close with 1001), SIGKILL a
   * crash. Resolves when the process has exited.
   */
  async stop(signal = 'SIGTERM') {
    const child = this.child;
    if (!child) return;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), DEADLINE_MS);
    const how = await this.exited;
    clearTimeout(timer);
    return how;
  }

  /** close stops the server for good and removes its data dir. */
  async close() {
    await this.stop();
    process.off('exit', this.killOnExit);
    await rm(this.dataDir, { recursive: true, force: true });
  }

  /** logTail is the end of the current log, for failure messages. */
  logTail(lines = 40) {
    try {
      return readFileSync(this.logPath, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /** authFetch is fetch with the admin bearer token (or `token`) added. */
  authFetch(token = ADMIN_TOKEN) {
    return (input, init = {}) => {
      const headers = new Headers(init.headers);
      headers.set('Authorization', `Bearer ${token}`);
      return fetch(input, { ...init, headers });
    };
  }

  /**
   * gql POSTs one GraphQL operation as the admin (or `token`) and returns `data`; GraphQL
   * errors throw, with the whole response in the message.
   */
  async gql(query, variables = {}, { token = ADMIN_TOKEN } = {}) {
    const res = await fetch(this.queryURL, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
      body: JSON.stringify({ query, variables }),
    });
    const body = await res.json();
    if (res.status !== 200 || body.errors) {
      throw new Error(`GraphQL ${res.status}: ${JSON.stringify(body)}`);
    }
    return body.data;
  }

  /** publish sends one event through the REST ingest and returns the stored event. */
  async publish(type, payload, id) {
    const res = await fetch(`${this.baseURL}/v1/events`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${ADMIN_TOKEN}` },
      body: JSON.stringify(id === undefined ? { type, payload } : { type, payload, id }),
    });
    const body = await res.json();
    if (res.status !== 201) throw new Error(`POST /v1/events: got ${res.status} ${JSON.stringify(body)}, want 201`);
    return body;
  }

  /** payment publishes a payment.completed event with the given id (its transaction id is n). */
  payment(id, n = 1) {
    return this.publish('payment.completed', { transaction_id: n, user_id: 7, amount_kopeks: 100 * n }, id);
  }
}

/**
 * Inbox is an unbounded queue that a callback-style client pushes into and a test awaits.
 * take() fails with `what` in the message when nothing comes within the deadline.
 */
export class Inbox {
  constructor(what = 'item') {
    this.what = what;
    this.items = [];
    this.waiters = [];
    this.all = [];
  }

  push(item) {
    this.all.push(item);
    const w = this.waiters.shift();
    if (w) w.resolve(item);
    else this.items.push(item);
  }

  /** take resolves with the next item. */
  take(ms = DEADLINE_MS) {
    if (this.items.length) return Promise.resolve(this.items.shift());
    return new Promise((resolve, reject) => {
      const waiter = { resolve: (v) => (clearTimeout(timer), resolve(v)) };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`no ${this.what} within ${ms} ms (got so far: ${JSON.stringify(this.all).slice(0, 2000)})`));
      }, ms);
      this.waiters.push(waiter);
    });
  }

  /** takeN resolves with the next n items. */
  async takeN(n, ms = DEADLINE_MS) {
    const out = [];
    for (let i = 0; i < n; i++) out.push(await this.take(ms));
    return out;
  }

  /** poll resolves with the next item, or undefined when none comes within ms. */
  async poll(ms) {
    try {
      return await this.take(ms);
    } catch {
      return undefined;
    }
  }
}

/** waitFor polls fn until it returns a truthy value, failing after the deadline. */
export async function waitFor(what, fn, ms = DEADLINE_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

/** within resolves like promise, or fails naming `what` when it takes longer than ms. */
export async function within(what, promise, ms = DEADLINE_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Gate is a promise the test opens by hand; clients' retry waits use it so that the test, not
 * a timer, decides when a client reconnects.
 */
export class Gate {
  constructor() {
    this.promise = new Promise((resolve) => (this.open = resolve));
  }
}

/**
 * startReceiver runs a webhook receiver on 127.0.0.1: every request lands in `inbox` as
 * {method, url, headers, body (string, exactly the bytes sent)}. `respond(req)` picks the
 * status (default 200).
 */
export async function startReceiver(respond = () => 200) {
  const inbox = new Inbox('webhook request');
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const item = { method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      res.statusCode = respond(item);
      res.end('ok');
      inbox.push(item);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    inbox,
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}
