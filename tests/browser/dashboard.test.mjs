// The dashboard as a person uses it, in headless chromium against `orchestrator up`.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { call, freePort, launch, openPage, percentile, seedRun, startServer, tempDir } from './harness.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

/** A fresh server on a fresh database for one test. */
async function fresh(env, { websocketPort } = {}) {
  const tmp = tempDir();
  const port = await freePort();
  const database = path.join(tmp.dir, 'orchestrator.db');
  const server = await startServer({ port, database, env, websocketPort });
  return { ...server, port, database, async close() { await server.stop(); tmp.remove(); } };
}

const statusCell = (id) => `tr[data-run-id="${id}"] [data-col="status"]`;

test('the page loads with its runs table, no console errors and no failed requests', async () => {
  const app = await fresh();
  try {
    const run = await seedRun(app.base, { name: 'builder-1', session: 'session-a' });
    const { page, problems } = await openPage(browser, `${app.base}/`);
    await page.locator(statusCell(run.id)).waitFor();
    assert.equal(await page.locator(statusCell(run.id)).innerText(), 'initializing');
    assert.match(await page.locator(`tr[data-run-id="${run.id}"]`).innerText(), /builder-1/);
    await page.locator('#connection', { hasText: 'live' }).waitFor();
    await page.locator('#totals', { hasText: 'initializing' }).waitFor();
    assert.match(await page.locator('#totals').innerText(), /initializing\s+1/);
    await page.waitForTimeout(500);
    assert.deepEqual(problems, []);
    await page.close();
  } finally { await app.close(); }
});

test('a definition created in the form appears in the list; a rejected one shows the message at its field', async () => {
  const app = await fresh();
  try {
    const { page, problems } = await openPage(browser, `${app.base}/#/definitions`);
    await page.getByLabel('Name').fill('reviewer-7');
    await page.getByLabel('Type').selectOption('reviewer');
    await page.getByLabel('Capabilities (comma-separated)').fill('rust, review');
    await page.getByRole('button', { name: 'Create definition' }).click();
    const row = page.locator('tbody tr', { hasText: 'reviewer-7' });
    await row.waitFor();
    assert.match(await row.innerText(), /reviewer[\s\S]*rust, review/);
    assert.equal((await call(app.base, 'GET', '/api/agents')).length, 1);

    // A duplicate name: the 409's message next to the name field (details.field).
    await page.getByLabel('Name').fill('reviewer-7');
    await page.getByRole('button', { name: 'Create definition' }).click();
    const nameError = page.locator('#def-name-error');
    await nameError.waitFor({ state: 'visible' });
    assert.match(await nameError.innerText(), /reviewer-7/);
    assert.equal(await page.getByLabel('Name').getAttribute('aria-invalid'), 'true');

    // A 422: a blank name (the form leaves validation to the API, so its message shows).
    await page.getByLabel('Name').fill('   ');
    await page.getByRole('button', { name: 'Create definition' }).click();
    await page.locator('#def-name-error', { hasText: /must not be empty/ }).waitFor();
    assert.equal((await call(app.base, 'GET', '/api/agents')).length, 1, 'nothing was written');

    // Edit, then delete.
    await page.getByRole('button', { name: 'Edit reviewer-7' }).click();
    await page.getByLabel('Default model').fill('claude-sonnet');
    await page.getByRole('button', { name: 'Save changes' }).click();
    await page.locator('tbody tr', { hasText: 'claude-sonnet' }).waitFor();
    page.once('dialog', (d) => d.accept());
    await page.getByRole('button', { name: 'Delete reviewer-7' }).click();
    await page.locator('tbody tr', { hasText: 'reviewer-7' }).waitFor({ state: 'detached' });
    assert.equal((await call(app.base, 'GET', '/api/agents')).length, 0);
    assert.deepEqual(problems.filter((p) => !/HTTP 4(09|22)/.test(p) && !/status of 4(09|22)/.test(p)), []);
    await page.close();
  } finally { await app.close(); }
});

test('a long list shows its newest 200 runs and the rest a page at a time', async () => {
  const app = await fresh();
  try {
    const def = await call(app.base, 'POST', '/api/agents', { name: 'many', agent_type: 'tester' });
    const ids = [];
    for (let i = 0; i < 205; i++) {
      ids.push((await call(app.base, 'POST', '/api/runtime/agents', { orchestrator_agent_id: def.id, session_id: `s-${i}` })).id);
    }
    const { page, problems } = await openPage(browser, `${app.base}/`);
    const rows = page.locator('table[aria-label="Runs"] tbody tr');
    const more = page.getByRole('button', { name: 'Show 200 more' });
    await more.waitFor();
    assert.equal(await rows.count(), 200);
    // The oldest runs are the ones behind the button.
    assert.equal(await page.locator(`tr[data-run-id="${ids[0]}"]`).count(), 0);
    await more.click();
    await page.locator(`tr[data-run-id="${ids[0]}"]`).waitFor();
    assert.equal(await rows.count(), 205);
    await more.waitFor({ state: 'hidden' });
    assert.deepEqual(problems, []);
    await page.close();
  } finally { await app.close(); }
});

test('a page served by the API may follow the WebSocket sidecar too', async () => {
  const websocketPort = await freePort();
  const app = await fresh(undefined, { websocketPort });
  try {
    const run = await seedRun(app.base, { name: 'ws-reader', session: 's-ws' });
    const { page } = await openPage(browser, `${app.base}/`);
    // The browser sends the page's own origin (http://127.0.0.1:PORT) on the handshake;
    // nothing configures it as a CORS origin.
    const update = page.evaluate(({ port, id }) => new Promise((resolve, reject) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/agent-status`);
      ws.onerror = () => reject(new Error('the handshake was refused'));
      ws.onmessage = (m) => {
        const msg = JSON.parse(m.data);
        if (msg.type === 'snapshot') { window.__wsOpen = true; return; }
        if (msg.type === 'agent_update' && msg.data?.id === id) { ws.close(); resolve(msg.data.status); }
      };
    }), { port: websocketPort, id: run.id });
    await page.waitForFunction(() => window.__wsOpen === true, null, { timeout: 15_000 });
    await call(app.base, 'PATCH', `/api/runtime/agents/${run.id}`, { status: 'executing' });
    assert.equal(await update, 'executing');
    await page.close();
  } finally { await app.close(); }
});

test('a PATCH through the API changes the status cell without a reload', async () => {
  const app = await fresh();
  try {
    const run = await seedRun(app.base, { name: 'builder-2', session: 'session-b' });
    const { page } = await openPage(browser, `${app.base}/`);
    await page.locator('#connection', { hasText: 'live' }).waitFor();
    await page.evaluate(() => { window.__notReloaded = true; });
    const latencies = [];
    const statuses = ['planning', 'executing', 'reviewing'];
    for (let i = 0; i < 30; i++) {
      const status = statuses[i % statuses.length];
      const t0 = Date.now();
      await call(app.base, 'PATCH', `/api/runtime/agents/${run.id}`, { status });
      await page.locator(statusCell(run.id), { hasText: new RegExp(`^${status}$`) }).waitFor();
      latencies.push(Date.now() - t0);
    }
    await call(app.base, 'PATCH', `/api/runtime/agents/${run.id}`, { status: 'completed' });
    await page.locator(statusCell(run.id), { hasText: 'completed' }).waitFor();
    assert.equal(await page.evaluate(() => window.__notReloaded), true, 'the page did not reload');
    console.log(`PATCH → status cell: p50 ${percentile(latencies, 50)} ms, p99 ${percentile(latencies, 99)} ms (n=${latencies.length})`);
    await page.close();
  } finally { await app.close(); }
});

test('after the API restarts, changes made before the page reconnected appear, nothing missed', async () => {
  const app = await fresh();
  try {
    const a = await seedRun(app.base, { name: 'builder-a', session: 's-1' });
    const b = await seedRun(app.base, { name: 'builder-b', session: 's-2' });
    const { page } = await openPage(browser, `${app.base}/`);
    await page.locator('#connection', { hasText: 'live' }).waitFor();
    await page.evaluate(() => { window.__notReloaded = true; });

    await app.stop();
    await page.locator('#connection', { hasText: /reconnecting|offline/ }).waitFor();
    // Let the backoff grow so that the changes below happen before the page is back.
    await page.waitForTimeout(2500);
    const again = await startServer({ port: app.port, database: app.database });
    try {
      await call(again.base, 'PATCH', `/api/runtime/agents/${a.id}`, { status: 'executing' });
      await call(again.base, 'PATCH', `/api/runtime/agents/${b.id}`, { status: 'failed', error_message: 'boom' });
      await call(again.base, 'PATCH', `/api/runtime/agents/${a.id}`, { status: 'completed' });
      await page.locator('#connection', { hasText: 'live' }).waitFor({ timeout: 15_000 });
      await page.locator(statusCell(a.id), { hasText: 'completed' }).waitFor();
      await page.locator(statusCell(b.id), { hasText: 'failed' }).waitFor();
      assert.equal(await page.evaluate(() => window.__notReloaded), true, 'the page did not reload');
    } finally { await again.stop(); }
    await page.close();
  } finally { await app.close(); }
});

test('a run opens its detail with prompts and logs, following new ones', async () => {
  const app = await fresh();
  try {
    const run = await seedRun(app.base, { name: 'tester-1', session: 's-detail' });
    const prompt = await call(app.base, 'POST', '/api/runtime/prompts', { agent_id: run.id, prompt_type: 'command', prompt_text: 'cargo test', model_used: 'claude-opus' });
    const { page } = await openPage(browser, `${app.base}/`);
    await page.getByRole('link', { name: 'tester-1' }).click();
    await page.locator(`tr[data-prompt-id="${prompt.id}"]`, { hasText: 'claude-opus' }).waitFor();
    assert.match(page.url(), new RegExp(`#/run/${run.id}$`), 'the selected run is in the URL');
    await call(app.base, 'PATCH', `/api/runtime/prompts/${prompt.id}`, { status: 'completed', tokens_input: 1200, tokens_output: 300, cost_usd: 0.25 });
    await call(app.base, 'POST', '/api/runtime/logs', { source: 'agent', agent_id: run.id, log_type: 'tool_call', message: 'ran Bash' });
    await page.locator(`tr[data-prompt-id="${prompt.id}"]`, { hasText: '1,200' }).waitFor();
    await page.locator('table[aria-label="Logs"] tr', { hasText: 'ran Bash' }).waitFor();
    assert.match(await page.locator('dl[aria-label="Run"]').innerText(), /\$0\.25/);

    // Sessions list the run with its cost.
    await page.getByRole('link', { name: 'Sessions' }).click();
    const card = page.locator('[data-session-id="s-detail"]');
    await card.waitFor();
    assert.match(await card.innerText(), /1 runs[\s\S]*\$0\.25/);
    await page.close();
  } finally { await app.close(); }
});

test('when the API asks for a token, the page asks once and then works', async () => {
  const token = 'dashboard-secret';
  const app = await fresh({ ORCHESTRATOR_API_TOKEN: token });
  try {
    const run = await seedRun(app.base, { name: 'guarded', session: 's-token', token });
    const page = await browser.newPage();
    const urls = [];
    page.on('request', (r) => urls.push(r.url()));
    await page.goto(`${app.base}/`);
    const dialog = page.getByRole('dialog', { name: 'API token' });
    await dialog.waitFor();
    await page.getByRole('textbox', { name: 'Token' }).fill(token);
    await page.getByRole('button', { name: 'Use token' }).click();
    await page.locator(statusCell(run.id)).waitFor();
    await page.locator('#connection', { hasText: 'live' }).waitFor();
    assert.equal(await dialog.isVisible(), false);
    await call(app.base, 'PATCH', `/api/runtime/agents/${run.id}`, { status: 'planning' }, { token });
    await page.locator(statusCell(run.id), { hasText: 'planning' }).waitFor();
    assert.ok(urls.every((u) => !u.includes(token)), 'the token never travels in a URL');
    await page.close();
  } finally { await app.close(); }
});

test('the page and its files are served with types, validators and gzip; unknown paths stay JSON 404s', async () => {
  const app = await fresh();
  try {
    const page = await fetch(`${app.base}/`, { headers: { 'accept-encoding': 'gzip' } });
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type'), /text\/html/);
    assert.equal(page.headers.get('content-encoding'), 'gzip');
    const etag = page.headers.get('etag');
    assert.ok(etag);
    const revalidated = await fetch(`${app.base}/`, { headers: { 'if-none-match': etag } });
    assert.equal(revalidated.status, 304);
    const js = await fetch(`${app.base}/ui/app.js`);
    assert.match(js.headers.get('content-type'), /text\/javascript/);
    const missing = await fetch(`${app.base}/ui/nope.js`);
    assert.equal(missing.status, 404);
    assert.equal((await missing.json()).error.code, 'not_found');
    const other = await fetch(`${app.base}/no/such/path`);
    assert.equal((await other.json()).error.code, 'not_found');
  } finally { await app.close(); }
});
