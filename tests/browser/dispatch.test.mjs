// Starting work from the dashboard: Run on a definition with a command, its output on the
// run's page as the runner streams it, Stop ending the process. Against
// `orchestrator up --runner --allow sh` (a runner beside the host, allowed to start `sh`).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { call, freePort, launch, modelCall, openPage, startServer, tempDir } from './harness.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser?.close(); });

async function fresh() {
  const tmp = tempDir();
  const port = await freePort();
  const database = path.join(tmp.dir, 'orchestrator.db');
  const server = await startServer({ port, database, args: ['--runner', '--allow', 'sh'] });
  return { ...server, port, database, async close() { await server.stop(); tmp.remove(); } };
}

test('Run from the page: the output follows live, and Stop ends the process', async () => {
  const app = await fresh();
  try {
    // Prints its input, then a line every 0.2 s until it is stopped.
    await call(app.base, 'POST', '/api/agents', { name: 'looper', agent_type: 'orchestrator',
      command: ['sh', '-c', 'echo "working on $0"; i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 0.2; done', '{input}'] });
    await call(app.base, 'POST', '/api/agents', { name: 'watcher', agent_type: 'reviewer' });
    const { page, problems } = await openPage(browser, `${app.base}/#/definitions`);
    await page.locator('tr', { hasText: 'looper' }).locator('[data-col="command"]', { hasText: 'sh -c' }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Run watcher' }).count(), 0, 'no Run without a command');

    await page.getByRole('button', { name: 'Run looper' }).click();
    await page.getByRole('dialog', { name: 'Run looper' }).waitFor();
    await page.getByLabel('Input').fill('issue 42');
    await page.getByRole('button', { name: 'Start run' }).click();
    await page.waitForURL(/#\/run\/[0-9a-f-]+$/);
    const id = page.url().split('/').pop();

    const output = page.locator('#run-output');
    await output.locator('span', { hasText: 'working on issue 42' }).waitFor({ timeout: 15_000 });
    await page.locator('dl[aria-label="Dispatch"] [data-col="state"]', { hasText: 'running' }).waitFor();
    assert.match(await page.locator('dl[aria-label="Dispatch"]').innerText(), /runner/);
    // Lines keep arriving while the page is open.
    await output.locator('span', { hasText: /^tick 5$/ }).waitFor({ timeout: 15_000 });
    const seen = await output.locator('span').count();
    await output.locator('span', { hasText: `tick ${seen + 3}` }).waitFor({ timeout: 15_000 });

    // A Claude Code session the process starts reports with the run's id in a hook header
    // (what `connect` writes): it shows under the run, and the tree's cost adds it up.
    const session = randomUUID();
    const prompt = randomUUID();
    const res = await fetch(`${app.base}/api/ingest/claude-code`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-orchestrator-run-id': id },
      body: JSON.stringify({ session_id: session, hook_event_name: 'UserPromptSubmit', prompt: 'Plan issue 42', prompt_id: prompt, cwd: '/srv/app' }),
    });
    assert.equal(res.status, 200);
    await modelCall(app.base, { session, prompt, cost: '0.25' });
    const child = page.locator('ul[aria-label="Runs it started"] li', { hasText: 'Plan issue 42' });
    await child.waitFor({ timeout: 10_000 });
    await child.locator('[data-col="cost"]', { hasText: '$0.25' }).waitFor({ timeout: 10_000 });
    await page.locator('.tree-totals', { hasText: 'The whole tree: 2 runs · $0.25' }).waitFor({ timeout: 10_000 });
    // What that session asks a person shows on the run that started it, and is answered there.
    const asked = fetch(`${app.base}/api/ingest/claude-code`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-orchestrator-run-id': id },
      body: JSON.stringify({ session_id: session, hook_event_name: 'PermissionRequest', prompt_id: prompt, cwd: '/srv/app', tool_name: 'Bash', tool_input: { command: 'git push' } }),
    }).then((r) => r.json());
    asked.catch(() => {});
    const waiting = page.locator('section[aria-label="Waiting for you"] tr', { hasText: 'git push' });
    await waiting.locator('[data-col="run"]', { hasText: 'Plan issue 42' }).waitFor({ timeout: 10_000 });
    await waiting.getByRole('button', { name: 'Allow Bash git push', exact: true }).click();
    assert.equal((await asked).hookSpecificOutput?.decision?.behavior, 'allow');
    await waiting.waitFor({ state: 'detached' });

    // A dispatched run is named by its input.
    await page.getByRole('button', { name: 'Stop issue 42' }).click();
    await page.getByRole('button', { name: 'Confirm stop issue 42' }).click();
    await page.locator('dl[aria-label="Run"] [data-status="cancelled"]').waitFor();
    // The runner ended the process group and said so.
    await page.locator('dl[aria-label="Dispatch"] [data-col="state"]', { hasText: 'exited' }).waitFor({ timeout: 20_000 });
    const run = await call(app.base, 'GET', `/api/runtime/agents/${id}`);
    assert.equal(run.status, 'cancelled');
    assert.equal(run.dispatch.state, 'exited');
    assert.deepEqual(problems, []);
    await page.close();
  } finally { await app.close(); }
});

test('a command written in the form (one argument per line) runs from the page; a failing one shows its exit code and stderr', async () => {
  const app = await fresh();
  try {
    const { page } = await openPage(browser, `${app.base}/#/definitions`);
    await page.getByLabel('Name').fill('breaker');
    await page.getByLabel('Type').selectOption('tester');
    // A placeholder that does not exist: the 422 names it at the command.
    await page.getByLabel('Command').fill('sh\n-c\necho {nope}');
    await page.getByRole('button', { name: 'Create definition' }).click();
    await page.locator('#def-command-error', { hasText: 'nope' }).waitFor();
    assert.equal((await call(app.base, 'GET', '/api/agents')).length, 0, 'nothing was written');
    await page.getByLabel('Command').fill('sh\n-c\necho "checking $0"; echo "3 tests failed" >&2; exit 3\n{input}');
    await page.getByLabel('Time limit (seconds)').fill('60');
    await page.getByRole('button', { name: 'Create definition' }).click();
    await page.getByRole('button', { name: 'Run breaker' }).waitFor();
    const [def] = await call(app.base, 'GET', '/api/agents');
    assert.deepEqual(def.command, ['sh', '-c', 'echo "checking $0"; echo "3 tests failed" >&2; exit 3', '{input}']);
    assert.equal(def.timeout_secs, 60);
    await page.getByRole('button', { name: 'Run breaker' }).click();
    await page.getByLabel('Input').fill('main');
    await page.getByRole('button', { name: 'Start run' }).click();
    await page.waitForURL(/#\/run\/[0-9a-f-]+$/);
    await page.locator('dl[aria-label="Run"] [data-status="failed"]').waitFor({ timeout: 15_000 });
    await page.locator('dl[aria-label="Dispatch"] [data-col="exit code"]', { hasText: '3' }).waitFor();
    await page.locator('#run-output span.stderr', { hasText: '3 tests failed' }).waitFor();
    await page.locator('#run-output span', { hasText: 'checking main' }).waitFor();
    assert.equal(await page.getByRole('button', { name: /^Stop / }).count(), 0, 'nothing to stop');
    await page.close();
  } finally { await app.close(); }
});
