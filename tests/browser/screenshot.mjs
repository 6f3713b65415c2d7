// Seeds a small fleet and saves docs/dashboard.png (run by hand after
// `cargo build --release -p orchestrator-cli` and the components build: `npm run screenshot`).
// ADW runs come through the REST API (most with a title and project set there); two Claude Code sessions come the way a real one
// reports, by hooks and OTLP telemetry, so the picture shows titles, project folders, a
// subagent under its session's run and costs from model calls; the live session waits
// for a person's approval, so the header shows "Needs you" with its count.

import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { call, freePort, hook, launch, modelCall, repo, seedRun, startServer, tempDir } from './harness.mjs';

const tmp = tempDir();
const port = await freePort();
const app = await startServer({ port, database: path.join(tmp.dir, 'orchestrator.db') });
const pause = (ms) => new Promise((r) => setTimeout(r, ms));
try {
  const fleet = [
    ['tester', 'adw-4120', 'completed', 'Test #4120: CSV export times out', '/srv/adw/reports'],
    ['builder-2', 'adw-4120', 'failed', 'Build #4120: CSV export times out', '/srv/adw/reports'],
    ['planner', 'adw-4121', 'reviewing', 'Plan #4121: retry failed webhook deliveries', '/srv/adw/payments'],
    ['builder', 'adw-4121', 'executing', 'Build #4121: retry failed webhook deliveries', '/srv/adw/payments'],
    ['reviewer', 'adw-4121', 'planning', null, null],
  ];
  for (const [name, session, status, title, project] of fleet) {
    const run = await seedRun(app.base, { name, session });
    if (title) await call(app.base, 'PATCH', `/api/runtime/agents/${run.id}`, { title, project });
    for (let i = 0; i < 2; i++) {
      const p = await call(app.base, 'POST', '/api/runtime/prompts', { agent_id: run.id, prompt_type: 'command', prompt_text: `step ${i}`, model_used: 'claude-sonnet-4-5' });
      await call(app.base, 'PATCH', `/api/runtime/prompts/${p.id}`, { status: 'completed', tokens_input: 1800 + i * 700, tokens_output: 420 + i * 90, cost_usd: 0.031 + i * 0.012, latency_ms: 2100 });
    }
    await call(app.base, 'PATCH', `/api/runtime/agents/${run.id}`, { status, ...(status === 'failed' ? { error_message: 'tests failed' } : {}) });
    await pause(20);
  }

  // A finished Claude Code session in one project…
  const done = randomUUID();
  const donePrompt = randomUUID();
  await hook(app.base, done, 'UserPromptSubmit', { cwd: '/home/dev/webapp', prompt: 'Add a dark mode toggle to the settings page', prompt_id: donePrompt });
  await modelCall(app.base, { session: done, prompt: donePrompt, cost: '0.0412', input: 5200, output: 830 });
  await modelCall(app.base, { session: done, prompt: donePrompt, cost: '0.0268', input: 3900, output: 410 });
  await hook(app.base, done, 'Stop', { cwd: '/home/dev/webapp', prompt_id: donePrompt });
  await hook(app.base, done, 'SessionEnd', { cwd: '/home/dev/webapp', prompt_id: donePrompt });
  await pause(20);

  // …and one at work in another, with a subagent exploring the code for it.
  const live = randomUUID();
  const livePrompt = randomUUID();
  await hook(app.base, live, 'UserPromptSubmit', { cwd: '/home/dev/shop', prompt: 'Fix the login bug: sessions expire after one minute', prompt_id: livePrompt });
  await modelCall(app.base, { session: live, prompt: livePrompt, cost: '0.0187', input: 4100, output: 260 });
  await hook(app.base, live, 'PreToolUse', { cwd: '/home/dev/shop', prompt_id: livePrompt, tool_name: 'Task', tool_use_id: 'toolu_01', tool_input: { description: 'Find the session code' } });
  await hook(app.base, live, 'SubagentStart', { cwd: '/home/dev/shop', prompt_id: livePrompt, agent_id: 'a1', agent_type: 'Explore' });
  await hook(app.base, live, 'PreToolUse', { cwd: '/home/dev/shop', prompt_id: livePrompt, agent_id: 'a1', agent_type: 'Explore', tool_name: 'Grep', tool_use_id: 'toolu_02', tool_input: { pattern: 'session_ttl' } });
  await modelCall(app.base, { session: live, prompt: livePrompt, cost: '0.0094', input: 2600, output: 180, agentId: 'a1', model: 'claude-haiku-4-5' });

  // The live session asks to run a command and waits for a person: the header counts it.
  const asking = hook(app.base, live, 'PermissionRequest', { cwd: '/home/dev/shop', prompt_id: livePrompt, tool_name: 'Bash', tool_input: { command: 'npm test -- auth' }, permission_suggestions: [] })
    .catch(() => {});
  for (let i = 0; i < 100 && !(await call(app.base, 'GET', '/api/approvals?status=pending')).length; i++) await pause(50);

  const browser = await launch();
  const page = await browser.newPage({ viewport: { width: 1200, height: 560 } });
  await page.goto(`${app.base}/#/runs`);
  await page.locator('#connection', { hasText: 'live' }).waitFor();
  await page.waitForTimeout(1500);
  await page.screenshot({ path: path.join(repo, 'docs/dashboard.png') });
  await browser.close();
  for (const a of await call(app.base, 'GET', '/api/approvals?status=pending')) {
    await call(app.base, 'POST', `/api/approvals/${a.id}/decision`, { behavior: 'deny' });
  }
  await asking;
} finally {
  await app.stop();
  tmp.remove();
}
