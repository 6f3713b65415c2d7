// What every dashboard test needs: a real `orchestrator up` (the built binary and the
// built .wasm components of this checkout) on a free port and a temporary database, the
// API to seed and change data, and Debian's chromium driven by playwright-core.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const binary = path.join(repo, 'target/release/orchestrator');

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

export function tempDir() {
  const dir = mkdtempSync(path.join(tmpdir(), 'dashboard-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Start `orchestrator up` and wait until /health answers; with `websocketPort`, with
 * its WebSocket sidecar on that port; `args` are more of `up`'s arguments (e.g.
 * `['--runner', '--allow', 'sh']`). */
export async function startServer({ port, database, env = {}, websocketPort, args = [] }) {
  const feed = websocketPort ? ['--websocket-port', String(websocketPort)] : ['--no-sidecar'];
  const child = spawn(binary, ['up', '--listen', `127.0.0.1:${port}`, ...feed, ...args], {
    cwd: repo,
    // A short grace: a test that restarts the API must not wait for open feed streams.
    env: { ...process.env, DATABASE_PATH: database, RUST_LOG: 'warn', SHUTDOWN_GRACE_SECS: '1', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`orchestrator up exited: ${stderr}`);
    try {
      const res = await fetch(`${base}/health`);
      if (res.ok) break;
    } catch { /* not yet listening */ }
    if (Date.now() > deadline) throw new Error(`orchestrator up did not become healthy: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    base,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** A JSON call to the API; throws on an unexpected status. */
export async function call(base, method, route, body, { token, expect } = {}) {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${base}${route}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  if (expect ? res.status !== expect : !res.ok) throw new Error(`${method} ${route}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

export async function seedRun(base, { name, session, token }) {
  const def = await call(base, 'POST', '/api/agents', { name, agent_type: 'builder' }, { token });
  return call(base, 'POST', '/api/runtime/agents', { orchestrator_agent_id: def.id, session_id: session }, { token });
}

/** One Claude Code hook delivery, as its HTTP hook posts it (`cwd` defaults to a project). */
export function hook(base, session, event, fields = {}) {
  return call(base, 'POST', '/api/ingest/claude-code', {
    session_id: session, hook_event_name: event, cwd: '/home/dev/shop',
    transcript_path: `/home/dev/.claude/projects/${session}.jsonl`, ...fields,
  });
}

/** One `claude_code.api_request` log record (a model call and its cost) through OTLP/HTTP
 * JSON, as Claude Code's exporter sends it; `agentId` for a subagent's call. */
export function modelCall(base, { session, prompt, cost, at = new Date().toISOString(), agentId, input = 100, output = 20, model = 'claude-sonnet-4-5', durationMs = 1500 }) {
  const attr = (key, value) => ({ key, value: { stringValue: String(value) } });
  const attributes = [
    attr('event.name', 'api_request'), attr('session.id', session), attr('prompt.id', prompt),
    attr('event.timestamp', at), attr('model', model), attr('cost_usd', cost),
    attr('input_tokens', input), attr('output_tokens', output), attr('duration_ms', durationMs),
    ...(agentId ? [attr('agent_id', agentId)] : []),
  ];
  const timeUnixNano = `${BigInt(Date.parse(at)) * 1_000_000n}`;
  return call(base, 'POST', '/v1/logs', { resourceLogs: [{ resource: { attributes: [] }, scopeLogs: [{
    logRecords: [{ timeUnixNano, body: { stringValue: 'claude_code.api_request' }, attributes }] }] }] });
}

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** A page that records console errors and failed requests. */
export async function openPage(browser, url) {
  const page = await browser.newPage();
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on('response', (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`); });
  await page.goto(url);
  return { page, problems };
}

export function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}
