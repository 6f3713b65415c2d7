// Seeds a small fleet through the API and saves docs/dashboard.png (run by hand after
// `cargo build --release -p orchestrator-cli` and the components build: `npm run screenshot`).

import path from 'node:path';
import { call, freePort, launch, repo, seedRun, startServer, tempDir } from './harness.mjs';

const tmp = tempDir();
const port = await freePort();
const app = await startServer({ port, database: path.join(tmp.dir, 'orchestrator.db') });
try {
  const fleet = [
    ['planner', 'adw-4121', 'reviewing'], ['builder', 'adw-4121', 'executing'], ['reviewer', 'adw-4121', 'planning'],
    ['tester', 'adw-4120', 'completed'], ['builder-2', 'adw-4120', 'failed'], ['claude-code', '9f3c2a7e-claude-session', 'executing'],
  ];
  for (const [name, session, status] of fleet) {
    const run = await seedRun(app.base, { name, session });
    for (let i = 0; i < 2; i++) {
      const p = await call(app.base, 'POST', '/api/runtime/prompts', { agent_id: run.id, prompt_type: 'command', prompt_text: `step ${i}`, model_used: 'claude-sonnet-4-5' });
      await call(app.base, 'PATCH', `/api/runtime/prompts/${p.id}`, { status: 'completed', tokens_input: 1800 + i * 700, tokens_output: 420 + i * 90, cost_usd: 0.031 + i * 0.012, latency_ms: 2100 });
    }
    await call(app.base, 'PATCH', `/api/runtime/agents/${run.id}`, { status, ...(status === 'failed' ? { error_message: 'tests failed' } : {}) });
  }
  const browser = await launch();
  const page = await browser.newPage({ viewport: { width: 1200, height: 560 } });
  await page.goto(`${app.base}/`);
  await page.locator('#connection', { hasText: 'live' }).waitFor();
  await page.waitForTimeout(1500);
  await page.screenshot({ path: path.join(repo, 'docs/dashboard.png') });
  await browser.close();
} finally {
  await app.stop();
  tmp.remove();
}
