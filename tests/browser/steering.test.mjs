// Steering from the dashboard, as a person does it, in headless chromium against
// `orchestrator up`: a tool call waiting for a decision shows in "Needs you" the moment
// the agent asks, and the page's Allow or Deny is the answer the waiting hook gets; Stop;
// a follow-up; a definition's policy; the tab title and notifications.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { call, freePort, hook, launch, openPage, seedRun, startServer, tempDir } from './harness.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

async function fresh(env = {}) {
  const tmp = tempDir();
  const port = await freePort();
  const database = path.join(tmp.dir, 'orchestrator.db');
  const server = await startServer({ port, database, env: { APPROVAL_WAIT_SECS: '120', ...env } });
  return { ...server, port, database, async close() { await server.stop(); tmp.remove(); } };
}

/** A Claude Code session with one user prompt (its run is titled by the prompt). */
async function session(base, prompt) {
  const id = randomUUID();
  const promptId = randomUUID();
  await hook(base, id, 'UserPromptSubmit', { prompt, prompt_id: promptId });
  const [run] = await call(base, 'GET', `/api/runtime/agents?session_id=${id}`);
  return { id, promptId, run };
}

/** Claude Code asking to use a tool: the hook request stays open until someone decides.
 * Resolves to the hook's answer (the JSON Claude Code would obey). */
function permissionRequest(base, s, toolName, toolInput) {
  const answer = hook(base, s.id, 'PermissionRequest', { prompt_id: s.promptId, tool_name: toolName, tool_input: toolInput, permission_suggestions: [] });
  // A test that fails before it decides leaves the request open until the server stops.
  answer.catch(() => {});
  return answer;
}

const decisionOf = (answer) => answer?.hookSpecificOutput?.decision;

/** Wait until the API lists `n` pending approvals (the hook requests have arrived). */
async function pendingCount(base, n) {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const list = await call(base, 'GET', '/api/approvals?status=pending');
    if (list.length === n) return list;
    if (Date.now() > deadline) throw new Error(`expected ${n} pending approvals, have ${list.length}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('an approval appears in Needs you without a reload, and Allow from the page is the waiting hook\'s answer', async () => {
  const app = await fresh();
  try {
    const s = await session(app.base, 'List the files');
    const { page, problems } = await openPage(browser, `${app.base}/`);
    await page.locator('#connection', { hasText: 'live' }).waitFor();
    await page.locator(`tr[data-run-id="${s.run.id}"]`).waitFor();
    assert.equal(await page.title(), 'Agent orchestrator');
    await page.evaluate(() => { window.__notReloaded = true; });

    const answer = permissionRequest(app.base, s, 'Bash', { command: 'ls -la /tmp' });
    // Whatever view is open, the header says something waits, and so does the tab title.
    await page.locator('#needs-count', { hasText: '1' }).waitFor({ timeout: 10_000 });
    await page.waitForFunction(() => document.title === '(1) Needs you — Agent orchestrator');
    await page.locator('#needs-banner', { hasText: 'waits for your decision' }).waitFor();
    await page.getByRole('link', { name: 'Open Needs you' }).click();
    const row = page.locator('table[aria-label="Pending approvals"] tbody tr');
    await row.first().waitFor();
    assert.equal(await row.count(), 1);
    const text = await row.innerText();
    assert.match(text, /Bash/);
    assert.match(text, /ls -la \/tmp/, 'the command it wants to run');
    assert.match(await row.locator('[data-col="run"]').innerText(), /List the files/, 'the run, by its title');
    assert.equal(await row.locator('[data-col="run"] a').getAttribute('href'), `#/run/${s.run.id}`);
    assert.match(await row.locator('[data-col="age"]').innerText(), /^\d+ s$/);

    // A page opened bare while something waits starts on Needs you.
    const second = await browser.newPage();
    await second.goto(`${app.base}/`);
    await second.getByRole('heading', { name: 'Needs you' }).waitFor();
    assert.match(second.url(), /#\/needs$/);
    await second.close();

    await page.getByRole('button', { name: 'Allow Bash ls -la /tmp', exact: true }).click();
    const decided = await answer;
    assert.equal(decisionOf(decided)?.behavior, 'allow', `the hook answered ${JSON.stringify(decided)}`);
    await row.first().waitFor({ state: 'detached' });
    await page.locator('.decision-status', { hasText: 'Allowed: Bash ls -la /tmp' }).waitFor();
    await page.getByText('Nothing waits for you.').waitFor();
    await page.waitForFunction(() => document.title === 'Agent orchestrator');
    assert.equal(await page.locator('#needs-count').isVisible(), false);
    const [approval] = await call(app.base, 'GET', `/api/approvals?session_id=${s.id}`);
    assert.equal(approval.status, 'allowed');
    assert.equal(await page.evaluate(() => window.__notReloaded), true, 'the page did not reload');
    assert.deepEqual(problems, []);
    await page.close();
  } finally { await app.close(); }
});

test('several at once: Deny selected with a message, Allow for this session, and one decided elsewhere goes quietly', async () => {
  const app = await fresh();
  try {
    const a = await session(app.base, 'Clean up the build');
    const b = await session(app.base, 'Update the docs');
    const { page } = await openPage(browser, `${app.base}/#/needs`);
    await page.locator('#connection', { hasText: 'live' }).waitFor();
    const rm = permissionRequest(app.base, a, 'Bash', { command: 'rm -rf target' });
    const write = permissionRequest(app.base, b, 'Write', { file_path: '/home/dev/shop/README.md', content: 'hello' });
    const push = permissionRequest(app.base, a, 'Bash', { command: 'git push origin main' });
    const fetchIt = permissionRequest(app.base, b, 'WebFetch', { url: 'https://example.com/spec', prompt: 'read it' });
    const rows = page.locator('table[aria-label="Pending approvals"] tbody tr');
    await page.waitForFunction(() => document.querySelectorAll('table[aria-label="Pending approvals"] tbody tr').length === 4, null, { timeout: 10_000 });
    await page.waitForFunction(() => document.title.startsWith('(4) Needs you'));
    // A file tool shows its path, not its content.
    assert.match(await rows.filter({ hasText: 'Write' }).locator('[data-col="input"]').innerText(), /^\/home\/dev\/shop\/README\.md$/);

    // Decided through the API by someone else: the row leaves without a reload.
    const pending = await pendingCount(app.base, 4);
    const webfetch = pending.find((x) => x.tool_name === 'WebFetch');
    await call(app.base, 'POST', `/api/approvals/${webfetch.id}/decision`, { behavior: 'allow' });
    assert.equal(decisionOf(await fetchIt)?.behavior, 'allow');
    await page.locator(`tr[data-approval-id="${webfetch.id}"]`).waitFor({ state: 'detached' });

    // Two ticked, denied together with a reason the agent is told.
    await page.getByRole('checkbox', { name: 'Select Bash rm -rf target' }).check();
    await page.getByRole('checkbox', { name: 'Select Write /home/dev/shop/README.md' }).check();
    await page.getByLabel('Message to the agent (with Deny)').fill('not on a Friday');
    await page.getByRole('button', { name: 'Deny 2 selected' }).click();
    for (const answer of [await rm, await write]) {
      const d = decisionOf(answer);
      assert.equal(d?.behavior, 'deny', JSON.stringify(answer));
      assert.match(JSON.stringify(answer), /not on a Friday/, 'the reason reaches the agent');
    }
    await page.locator('.decision-status', { hasText: 'Denied 2 of 2' }).waitFor();

    // Allow for this session: remembered for the rest of the session.
    await page.getByRole('button', { name: 'Allow for this session Bash git push origin main' }).click();
    assert.equal(decisionOf(await push)?.behavior, 'allow');
    await page.getByText('Nothing waits for you.').waitFor();
    const decided = await call(app.base, 'GET', `/api/approvals?session_id=${a.id}`);
    const pushed = decided.find((x) => x.tool_input?.command === 'git push origin main');
    assert.equal(pushed.status, 'allowed');
    assert.equal(pushed.scope, 'session');
    await page.close();
  } finally { await app.close(); }
});

test('a decision someone else made first: the page removes the row and says it was already decided', async () => {
  const app = await fresh();
  try {
    const s = await session(app.base, 'Deploy');
    const answer = permissionRequest(app.base, s, 'Bash', { command: 'make deploy' });
    const [approval] = await pendingCount(app.base, 1);
    // This page hears nothing from the feed: only its own read tells it what waits.
    const page = await browser.newPage();
    await page.route((url) => url.pathname.startsWith('/api/events/stream'), (route) => route.abort());
    await page.goto(`${app.base}/#/needs`);
    const row = page.locator(`tr[data-approval-id="${approval.id}"]`);
    await row.waitFor();
    await call(app.base, 'POST', `/api/approvals/${approval.id}/decision`, { behavior: 'deny', message: 'decided by Ana' });
    assert.equal(decisionOf(await answer)?.behavior, 'deny');
    await page.getByRole('button', { name: 'Allow Bash make deploy', exact: true }).click();
    await row.waitFor({ state: 'detached' });
    await page.locator('.decision-status', { hasText: 'Already decided elsewhere: Bash make deploy was denied' }).waitFor();
    assert.equal((await call(app.base, 'GET', `/api/approvals/${approval.id}`)).status, 'denied', 'the click changed nothing');
    await page.close();
  } finally { await app.close(); }
});

test('Stop from the runs list and from the run view moves the run to cancelled, and the agent is told to stop', async () => {
  const app = await fresh();
  try {
    const s = await session(app.base, 'Refactor the billing module');
    const rest = await seedRun(app.base, { name: 'builder-9', session: 'adw-9' });
    await call(app.base, 'PATCH', `/api/runtime/agents/${rest.id}`, { status: 'executing' });
    const { page, problems } = await openPage(browser, `${app.base}/`);
    const restRow = page.locator(`tr[data-run-id="${rest.id}"]`);
    await restRow.locator('[data-col="status"]', { hasText: 'executing' }).waitFor();
    // Stop asks once more on the spot; the second click stops.
    await page.getByRole('button', { name: 'Stop builder-9' }).click();
    await page.getByRole('button', { name: 'Confirm stop builder-9' }).click();
    await restRow.locator('[data-col="status"]', { hasText: 'cancelled' }).waitFor();
    assert.equal(await restRow.getByRole('button', { name: /Stop/ }).count(), 0, 'no Stop on a final run');
    const stopped = await call(app.base, 'GET', `/api/runtime/agents/${rest.id}`);
    assert.equal(stopped.status, 'cancelled');
    assert.equal(stopped.error_message, 'Stopped from the dashboard');

    // From the run view of a Claude Code session: its next hook tells it to stop.
    await page.goto(`${app.base}/#/run/${s.run.id}`);
    await page.locator('h2.run-title', { hasText: 'Refactor the billing module' }).waitFor();
    await page.getByRole('button', { name: 'Stop Refactor the billing module' }).click();
    await page.getByRole('button', { name: 'Confirm stop Refactor the billing module' }).click();
    await page.locator('dl[aria-label="Run"] [data-status="cancelled"]').waitFor();
    await page.locator('dl[aria-label="Run"]', { hasText: 'Stopped from the dashboard' }).waitFor();
    assert.equal(await page.getByRole('button', { name: /^Stop / }).count(), 0);
    const next = await hook(app.base, s.id, 'PostToolUse', { prompt_id: s.promptId, tool_name: 'Read', tool_use_id: 'toolu_1', tool_input: { file_path: 'a.rs' }, tool_response: {} });
    assert.equal(next.continue, false, `the agent is told to stop: ${JSON.stringify(next)}`);
    assert.deepEqual(problems, []);
    await page.close();
  } finally { await app.close(); }
});

test('a follow-up sent from the run view reaches the agent at its next stop; to a run that ended, the page shows why not', async () => {
  const app = await fresh();
  try {
    const s = await session(app.base, 'Write the changelog');
    let { page } = await openPage(browser, `${app.base}/#/run/${s.run.id}`);
    await page.locator('h2.run-title', { hasText: 'Write the changelog' }).waitFor();
    await page.getByLabel('Follow-up').fill('Also add the release date');
    await page.getByRole('button', { name: 'Send follow-up' }).click();
    await page.locator('#followup-status', { hasText: 'Sent' }).waitFor();
    assert.equal(await page.getByLabel('Follow-up').inputValue(), '', 'the box is emptied');
    await page.locator('table[aria-label="Prompts"] tr', { hasText: 'Also add the release date' }).waitFor();
    const stop = await hook(app.base, s.id, 'Stop', { prompt_id: s.promptId, stop_hook_active: false });
    assert.equal(stop.decision, 'block', JSON.stringify(stop));
    assert.match(stop.reason, /Also add the release date/);

    // The run ends while the page does not know yet (no feed, its re-reads held): the 409's message shows.
    const other = await session(app.base, 'Tidy imports');
    const held = [];
    await page.close();
    page = await browser.newPage();
    await page.route((url) => url.pathname.startsWith('/api/events/stream'), (route) => route.abort());
    await page.goto(`${app.base}/#/run/${other.run.id}`);
    await page.locator('h2.run-title', { hasText: 'Tidy imports' }).waitFor();
    await page.route((url) => url.pathname === `/api/runtime/agents/${other.run.id}`, (route) => {
      if (route.request().method() === 'GET') held.push(route); else route.continue();
    });
    await call(app.base, 'PATCH', `/api/runtime/agents/${other.run.id}`, { status: 'completed' });
    await page.getByLabel('Follow-up').fill('one more thing');
    await page.getByRole('button', { name: 'Send follow-up' }).click();
    const error = page.locator('#followup-error');
    await error.waitFor({ state: 'visible' });
    assert.match(await error.innerText(), /\S/);
    assert.equal((await call(app.base, 'GET', `/api/runtime/prompts?agent_id=${other.run.id}`)).filter((p) => p.prompt_type === 'followup').length, 0);
    await page.unrouteAll({ behavior: 'ignoreErrors' });
    for (const route of held) await route.abort().catch(() => {});
    await page.close();
  } finally { await app.close(); }
});

test('a policy saved in the definition form; a rule that does not parse shows its 422; the run view shows budget beside spend', async () => {
  const app = await fresh();
  try {
    const { page, problems } = await openPage(browser, `${app.base}/#/definitions`);
    await page.getByLabel('Name').fill('careful-builder');
    await page.getByLabel('Budget (USD)').fill('5');
    await page.getByLabel('Deny tools').fill('Bash(rm -rf:*)\nWebFetch');
    await page.getByLabel('Ask me before').fill('Bash(git push:*)\nWrite');
    await page.getByRole('button', { name: 'Create definition' }).click();
    const row = page.locator('tr', { hasText: 'careful-builder' });
    await row.locator('[data-col="policy"]', { hasText: 'budget $5.00' }).waitFor();
    assert.match(await row.locator('[data-col="policy"]').innerText(), /deny Bash\(rm -rf:\*\), WebFetch · ask Bash\(git push:\*\), Write/);
    const [def] = await call(app.base, 'GET', '/api/agents');
    assert.equal(def.policy.max_cost_usd, 5);
    assert.deepEqual(def.policy.deny_tools, ['Bash(rm -rf:*)', 'WebFetch']);
    assert.deepEqual(def.policy.ask_tools, ['Bash(git push:*)', 'Write']);

    // Edit: a broken rule is refused, named, and nothing changes.
    await page.getByRole('button', { name: 'Edit careful-builder' }).click();
    assert.equal(await page.getByLabel('Deny tools').inputValue(), 'Bash(rm -rf:*)\nWebFetch', 'the form shows the saved policy');
    await page.getByLabel('Deny tools').fill('Bash(rm -rf:*)\nBash(unclosed');
    await page.getByRole('button', { name: 'Save changes' }).click();
    const error = page.locator('form[aria-label="Definition"] .field-error', { hasText: 'Bash(unclosed' });
    await error.waitFor();
    assert.deepEqual((await call(app.base, 'GET', `/api/agents/${def.id}`)).policy.deny_tools, ['Bash(rm -rf:*)', 'WebFetch'], 'nothing was written');
    await page.getByRole('button', { name: 'Cancel edit' }).click();

    // A run of it: the budget beside what it has spent.
    const run = await call(app.base, 'POST', '/api/runtime/agents', { orchestrator_agent_id: def.id, session_id: 'adw-budget' });
    const p = await call(app.base, 'POST', '/api/runtime/prompts', { agent_id: run.id, prompt_type: 'command', prompt_text: 'build' });
    await call(app.base, 'PATCH', `/api/runtime/prompts/${p.id}`, { status: 'completed', cost_usd: 1.25 });
    await page.goto(`${app.base}/#/run/${run.id}`);
    await page.locator('dl[aria-label="Run"] [data-col="budget"]', { hasText: '$1.25 of $5.00 (25%)' }).waitFor();
    assert.deepEqual(problems.filter((x) => !/HTTP 422|status of 422/.test(x)), []);
    await page.close();
  } finally { await app.close(); }
});

test('Notify me: asked once on a click, remembered; a hidden tab is told when an approval arrives or a run fails', async () => {
  const app = await fresh();
  try {
    const context = await browser.newContext();
    // The browser's notifications, recorded; and a tab that can be "hidden" on demand.
    await context.addInitScript(() => {
      window.__shown = [];
      window.__asked = 0;
      window.__hidden = false;
      Object.defineProperty(document, 'hidden', { get: () => window.__hidden });
      let permission = localStorage.getItem('test.permission') || 'default';
      class FakeNotification {
        constructor(title, options = {}) { window.__shown.push({ title, body: options.body }); }
        close() {}
        static get permission() { return permission; }
        static async requestPermission() {
          window.__asked += 1;
          permission = 'granted';
          localStorage.setItem('test.permission', 'granted');
          return permission;
        }
      }
      window.Notification = FakeNotification;
    });
    const page = await context.newPage();
    await page.goto(`${app.base}/`);
    await page.locator('#connection', { hasText: 'live' }).waitFor();
    assert.equal(await page.evaluate(() => window.__asked), 0, 'not asked before a click');
    await page.getByRole('button', { name: 'Notify me' }).click();
    await page.getByRole('button', { name: 'Notifications on' }).waitFor();
    assert.equal(await page.evaluate(() => window.__asked), 1);
    await page.reload();
    await page.getByRole('button', { name: 'Notifications on' }).waitFor();
    assert.equal(await page.evaluate(() => window.__asked), 0, 'remembered: not asked again');
    await page.locator('#connection', { hasText: 'live' }).waitFor();

    // While the tab is visible, nothing pops up.
    const s = await session(app.base, 'Ship it');
    const first = permissionRequest(app.base, s, 'Bash', { command: 'npm publish' });
    await page.waitForFunction(() => document.title.startsWith('(1)'), null, { timeout: 10_000 });
    assert.deepEqual(await page.evaluate(() => window.__shown), []);

    await page.evaluate(() => { window.__hidden = true; });
    const second = permissionRequest(app.base, s, 'Bash', { command: 'git tag v1.0' });
    await page.waitForFunction(() => window.__shown.length === 1, null, { timeout: 10_000 });
    const [shown] = await page.evaluate(() => window.__shown);
    assert.equal(shown.title, 'An agent waits for you: Bash');
    assert.match(shown.body, /git tag v1\.0/);
    assert.equal(await page.title(), '(2) Needs you — Agent orchestrator');

    const run = await seedRun(app.base, { name: 'nightly', session: 'adw-n' });
    await call(app.base, 'PATCH', `/api/runtime/agents/${run.id}`, { status: 'failed', error_message: 'tests failed' });
    await page.waitForFunction(() => window.__shown.length === 2, null, { timeout: 10_000 });
    const failed = (await page.evaluate(() => window.__shown))[1];
    assert.equal(failed.title, 'Run failed: nightly');
    assert.equal(failed.body, 'tests failed');

    for (const a of await call(app.base, 'GET', '/api/approvals?status=pending')) {
      await call(app.base, 'POST', `/api/approvals/${a.id}/decision`, { behavior: 'deny' });
    }
    await Promise.all([first, second]);
    await context.close();
  } finally { await app.close(); }
});
