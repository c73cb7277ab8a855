// The GraphQL over HTTP specification's own audit suite (graphql-http's serverAudits, pinned at
// 1.23.1 so the set of audits only changes on purpose) against /query, authenticated.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { serverAudits } from 'graphql-http';
import { Eventgate } from './harness.js';

let eg;
before(async () => {
  eg = await Eventgate.create('graphql-http');
});
after(async () => {
  await eg?.close();
});

test('graphql-http serverAudits: no errors, no warnings', async () => {
  const audits = serverAudits({ url: eg.queryURL, fetchFn: eg.authFetch() });
  assert.ok(audits.length > 50, `got ${audits.length} audits, want the whole suite`);

  const problems = [];
  for (const audit of audits) {
    const result = await audit.fn();
    if (result.status === 'ok') continue;
    let body = '';
    if (result.response) {
      try {
        body = ` — response ${result.response.status}: ${(await result.response.text()).slice(0, 300)}`;
      } catch {
        // the audit already read the body
      }
    }
    problems.push(`${result.status} ${audit.id} "${audit.name}": ${result.reason}${body}`);
  }
  assert.deepEqual(problems, [], `failed audits:\n${problems.join('\n')}`);
});
