// The real backend for the end-to-end test: `orchestrator up` (this checkout's release
// binary and .wasm components) on a free port with a temporary database, the same way
// tests/browser/harness.mjs starts it; and `orchestrator connect claude-code`.

import { spawn, execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { repo } from './claude.mjs';

export const binary = path.join(repo, 'target/release/orchestrator');

export function assertBinary() {
  if (!existsSync(binary)) {
    throw new Error(`${binary} is missing: build it first with \`cargo build --release -p orchestrator-cli\` `
      + 'and the components with `(cd components && cargo build --release --target wasm32-wasip2)`');
  }
}

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

/** Start `orchestrator up` and wait until /health answers. `env` adds to its environment
 * (e.g. APPROVAL_WAIT_SECS); `args` to its arguments (e.g. `--runner --allow sh`). */
export async function startBackend({ database, env = {}, args = [] }) {
  assertBinary();
  const port = await freePort();
  const child = spawn(binary, ['up', '--listen', `127.0.0.1:${port}`, '--no-sidecar', ...args], {
    cwd: repo,
    env: { ...process.env, DATABASE_PATH: database, RUST_LOG: 'warn', SHUTDOWN_GRACE_SECS: '1', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  let last = 'no answer';
  for (;;) {
    if (child.exitCode !== null) throw new Error(`orchestrator up exited: ${stderr}`);
    try {
      const res = await fetch(`${base}/health`);
      if (res.ok) break;
      last = `${res.status} ${await res.text()}`;
    } catch (e) { last = e.message; /* not listening yet */ }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`orchestrator up did not become healthy in 60 s (last /health: ${last}; `
        + `are the .wasm components built from the same tree as the binary?): ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    base,
    stderr: () => stderr,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** GET a JSON route of the API; throws on a non-2xx answer. */
export async function get(base, route) {
  const res = await fetch(`${base}${route}`);
  const text = await res.text();
  if (!res.ok) throw new Error(`GET ${route}: ${res.status} ${text}`);
  return JSON.parse(text);
}

/** Send a JSON body (POST, PUT, PATCH) to the API; resolves `{ status, body }`. */
export async function send(base, method, route, value) {
  const res = await fetch(`${base}${route}`, {
    method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(value),
  });
  const text = await res.text();
  let body = text;
  try { body = JSON.parse(text); } catch { /* left as text */ }
  return { status: res.status, body };
}

/** `orchestrator connect claude-code --url BASE --write FILE [--hold-secs N]` with the
 * given HOME. */
export async function connect({ base, settingsFile, home, cwd, holdSecs }) {
  assertBinary();
  const env = { PATH: process.env.PATH, HOME: home, LANG: process.env.LANG || 'C.UTF-8' };
  const args = ['connect', 'claude-code', '--url', base, '--write', settingsFile];
  if (holdSecs !== undefined) args.push('--hold-secs', String(holdSecs));
  const { stdout, stderr } = await promisify(execFile)(binary, args, { cwd, env, timeout: 30_000 });
  return { stdout, stderr };
}
