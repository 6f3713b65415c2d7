// The dashboard as a person uses it, in headless chromium against `orchestrator up`.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { call, freePort, hook, launch, modelCall, openPage, percentile, seedRun, startServer, tempDir } from './harness.mjs';

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

/** The runs of a session, the top-level one first. */
async function sessionRuns(base, session) {
  const runs = await call(base, 'GET', `/api/runtime/agents?session_id=${session}`);
  return runs.sort((a, b) => (a.parent_agent_id ? 1 : 0) - (b.parent_agent_id ? 1 : 0));
}

/** The run ids of a table's rows, top to bottom. */
const rowOrder = (page, table = 'Runs') => page.locator(`table[aria-label="${table}"] tbody tr`)
  .evaluateAll((rows) => rows.map((r) => r.dataset.runId));

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

test('a Claude Code session shows its title and project folder, its subagents right under it', async () => {
  const app = await fresh();
  try {
    const session = randomUUID();
    const prompt = randomUUID();
    await hook(app.base, session, 'UserPromptSubmit', { prompt: 'Fix the login bug', prompt_id: prompt });
    // A run with newer activity than the session's, older than its subagent: a list in
    // plain activity order would put it between the two.
    const other = await seedRun(app.base, { name: 'ci-builder', session: 'adw-77' });
    await new Promise((r) => setTimeout(r, 20));
    await hook(app.base, session, 'SubagentStart', { prompt_id: prompt, agent_id: 'a1', agent_type: 'general-purpose' });
    const [parent, child] = await sessionRuns(app.base, session);
    assert.equal(child.parent_agent_id, parent.id);

    const { page, problems } = await openPage(browser, `${app.base}/`);
    const parentRow = page.locator(`tr[data-run-id="${parent.id}"]`);
    await parentRow.waitFor();
    await page.locator('#connection', { hasText: 'live' }).waitFor();
    const label = await parentRow.locator('[data-col="run"]').innerText();
    assert.match(label, /Fix the login bug/, 'the title is the run\'s label');
    assert.doesNotMatch(await parentRow.innerText(), new RegExp(session), 'not the bare session UUID');
    const project = parentRow.locator('[data-col="project"] [title]');
    assert.equal(await project.innerText(), 'shop', 'the project folder\'s last segment');
    assert.equal(await project.getAttribute('title'), '/home/dev/shop', 'the full path on hover');

    // The subagent's row comes right after its parent's, marked.
    let order = await rowOrder(page);
    assert.deepEqual(order, [parent.id, child.id, other.id]);
    assert.match(await page.locator(`tr[data-run-id="${child.id}"] [data-col="run"]`).innerText(), /↳/);
    assert.doesNotMatch(await parentRow.locator('[data-col="run"]').innerText(), /↳/);

    // A subagent started while the page is open joins its parent through the feed.
    await page.evaluate(() => { window.__notReloaded = true; });
    await hook(app.base, session, 'SubagentStart', { prompt_id: prompt, agent_id: 'a2', agent_type: 'Explore' });
    const second = (await sessionRuns(app.base, session)).find((r) => r.parent_agent_id && r.id !== child.id);
    await page.locator(`tr[data-run-id="${second.id}"]`).waitFor();
    order = await rowOrder(page);
    assert.equal(order[0], parent.id, 'the tree with the newest activity is on top');
    assert.deepEqual(new Set(order.slice(1, 3)), new Set([child.id, second.id]), 'both subagents right under their parent');
    assert.equal(order[3], other.id);
    assert.equal(await page.evaluate(() => window.__notReloaded), true, 'the page did not reload');

    // Filtered so that the parent is not listed: the subagent stands alone and says whose it is.
    await hook(app.base, session, 'SubagentStop', { prompt_id: prompt, agent_id: 'a1', agent_type: 'general-purpose' });
    await page.goto(`${app.base}/#/runs?status=completed`);
    const alone = page.locator(`tr[data-run-id="${child.id}"]`);
    await alone.waitFor();
    assert.match(await alone.innerText(), /subagent of/);
    assert.equal(await page.locator(`tr[data-run-id="${parent.id}"]`).count(), 0);

    // The sessions view names the session by its title and folder too.
    await page.getByRole('link', { name: 'Sessions' }).click();
    const card = page.locator(`[data-session-id="${session}"]`);
    await card.waitFor();
    assert.match(await card.locator('h3').innerText(), /Fix the login bug/);
    assert.equal(await card.locator('[title="/home/dev/shop"]').innerText(), 'shop');
    await page.waitForTimeout(300);
    assert.deepEqual(problems, []);
    await page.close();
  } finally { await app.close(); }
});

test('a run view: a header without "null", model calls under the user prompt they served, its subagents', async () => {
  const app = await fresh();
  try {
    const session = randomUUID();
    const prompt = randomUUID();
    await hook(app.base, session, 'UserPromptSubmit', { prompt: 'Add a dark mode toggle to the settings page', prompt_id: prompt });
    const later = (ms) => new Date(Date.now() + ms).toISOString();
    await modelCall(app.base, { session, prompt, cost: '0.0123', at: later(100) });
    await modelCall(app.base, { session, prompt, cost: '0.0077', at: later(300) });
    await hook(app.base, session, 'SubagentStart', { prompt_id: prompt, agent_id: 'a1', agent_type: 'general-purpose' });
    await modelCall(app.base, { session, prompt, cost: '0.5', at: later(500), agentId: 'a1' });
    const [parent, child] = await sessionRuns(app.base, session);
    const prompts = await call(app.base, 'GET', `/api/runtime/prompts?agent_id=${parent.id}`);
    const user = prompts.find((p) => p.prompt_type === 'command');
    const calls = prompts.filter((p) => p.id !== user.id);
    assert.equal(calls.length, 2, 'the subagent\'s call lands on the subagent\'s run');

    const { page, problems } = await openPage(browser, `${app.base}/#/run/${parent.id}`);
    const userRow = page.locator(`tr[data-prompt-id="${user.id}"]`);
    await userRow.waitFor();
    await page.locator('h2.run-title', { hasText: 'Add a dark mode toggle' }).waitFor();
    const header = await page.locator('h2.run-title').innerText();
    const about = await page.locator('.run-about').innerText();
    const summary = await page.locator('dl[aria-label="Run"]').innerText();
    for (const text of [header, about, summary]) assert.doesNotMatch(text, /\bnull\b|undefined|NaN/);
    assert.match(about, /shop/);

    // The user prompt's row counts its model calls and their cost; the calls follow it.
    await userRow.locator('[data-col="calls"]', { hasText: '2 calls · $0.02' }).waitFor();
    const order = await page.locator('table[aria-label="Prompts"] tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.promptId));
    const at = order.indexOf(user.id);
    assert.deepEqual(new Set(order.slice(at + 1, at + 3)), new Set(calls.map((c) => c.id)), 'the calls sit right under their prompt');
    for (const c of calls) {
      const row = page.locator(`tr[data-prompt-id="${c.id}"]`);
      assert.equal(await row.getAttribute('data-parent-prompt-id'), user.id);
      assert.match(await row.innerText(), /↳/);
    }

    // Its subagent, linked, with status and cost.
    const item = page.locator(`ul[aria-label="Subagents"] li[data-run-id="${child.id}"]`);
    await item.waitFor();
    assert.match(await item.innerText(), /\$0\.50/);
    await item.getByRole('link').click();
    await page.locator('.run-about', { hasText: 'subagent of' }).waitFor();
    assert.match(page.url(), new RegExp(`#/run/${child.id}$`));
    assert.doesNotMatch(await page.locator('main').innerText(), /\bnull\b|undefined/);

    // A run made through the REST API has no title, project or parent: no "null" either.
    const plain = await seedRun(app.base, { name: 'rest-builder', session: 'adw-1' });
    await page.goto(`${app.base}/#/run/${plain.id}`);
    await page.locator('h2.run-title', { hasText: 'rest-builder' }).waitFor();
    await page.locator('dl[aria-label="Run"]', { hasText: 'initializing' }).waitFor();
    assert.doesNotMatch(await page.locator('main').innerText(), /\bnull\b|undefined|NaN/);
    assert.deepEqual(problems, []);
    await page.close();
  } finally { await app.close(); }
});

test('a cost that arrives by OTLP after the page loaded shows without a reload (through the feed)', async () => {
  const app = await fresh();
  try {
    const session = randomUUID();
    const prompt = randomUUID();
    await hook(app.base, session, 'UserPromptSubmit', { prompt: 'Tidy the README', prompt_id: prompt });
    const [run] = await sessionRuns(app.base, session);
    const { page } = await openPage(browser, `${app.base}/`);
    const cost = page.locator(`tr[data-run-id="${run.id}"] [data-col="cost"]`);
    await cost.waitFor();
    await page.locator('#connection', { hasText: 'live' }).waitFor();
    assert.equal(await cost.innerText(), '$0.00');
    await page.evaluate(() => { window.__notReloaded = true; });
    // From here the page's own re-reads of runs go unanswered: only the feed can tell it.
    const held = [];
    const hold = (url) => url.pathname.startsWith('/api/runtime/agents');
    await page.route(hold, (route) => { held.push(route); });

    await modelCall(app.base, { session, prompt, cost: '0.25', input: 1000, output: 234 });
    await page.locator(`tr[data-run-id="${run.id}"] [data-col="cost"]`, { hasText: '$0.25' }).waitFor({ timeout: 10_000 });
    assert.equal(await page.locator(`tr[data-run-id="${run.id}"] [data-col="tokens"]`).innerText(), '1,234');

    // The run's own view follows the next one the same way.
    await page.unroute(hold);
    for (const route of held.splice(0)) await route.abort().catch(() => {});
    await page.goto(`${app.base}/#/run/${run.id}`);
    await page.locator('dl[aria-label="Run"]', { hasText: '$0.25' }).waitFor();
    await page.route(hold, (route) => { held.push(route); });
    await modelCall(app.base, { session, prompt, cost: '0.5' });
    await page.locator('dl[aria-label="Run"]', { hasText: '$0.75' }).waitFor({ timeout: 10_000 });
    assert.equal(await page.evaluate(() => window.__notReloaded), true, 'the page did not reload');
    await page.unrouteAll({ behavior: 'ignoreErrors' });
    for (const route of held) await route.abort().catch(() => {});
    await page.close();
  } finally { await app.close(); }
});
