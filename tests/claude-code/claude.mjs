// What the recorder and the end-to-end test share: the pinned Claude Code binary, the
// environment a headless session runs with (never the real HOME, never the network),
// hook settings, and running one `claude -p` session with a timeout.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, '../..');
export const claudeBinary = path.join(here, 'node_modules/.bin/claude');

/** Every hook event the recorder and the test subscribe to. Tool events take a matcher. */
export const HOOK_EVENTS = [
  'SessionStart', 'UserPromptSubmit', 'PreToolUse', 'PermissionRequest', 'PostToolUse',
  'PostToolUseFailure', 'Notification', 'Stop', 'StopFailure', 'SubagentStart',
  'SubagentStop', 'PreCompact', 'SessionEnd',
];
const TOOL_EVENTS = new Set(['PreToolUse', 'PermissionRequest', 'PostToolUse', 'PostToolUseFailure']);

/** A `hooks` block with one `"type": "http"` hook per event, all posting to `url`. */
export function httpHooks(url, timeout = 30) {
  const hooks = {};
  for (const event of HOOK_EVENTS) {
    const entry = { hooks: [{ type: 'http', url, timeout }] };
    hooks[event] = [TOOL_EVENTS.has(event) ? { matcher: '*', ...entry } : entry];
  }
  return hooks;
}

/** The telemetry environment that makes Claude Code export OTLP logs and metrics. */
export function telemetryEnv(endpoint, protocol = 'http/json') {
  return {
    CLAUDE_CODE_ENABLE_TELEMETRY: '1',
    OTEL_LOGS_EXPORTER: 'otlp',
    OTEL_METRICS_EXPORTER: 'otlp',
    OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
    OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
    OTEL_LOGS_EXPORT_INTERVAL: '500',
    OTEL_METRIC_EXPORT_INTERVAL: '1000',
  };
}

export function tempDir(prefix) {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

export function writeJson(file, value) {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
}

export function readJson(file) {
  return JSON.parse(readFileSync(file, 'utf8'));
}

export function assertClaudeInstalled() {
  if (!existsSync(claudeBinary)) {
    throw new Error(`Claude Code is not installed at ${claudeBinary}: run \`npm ci\` in ${here}`);
  }
}

/** The environment of one headless session: a temporary HOME, the fake API, no
 * auto-update or other traffic; nothing inherited from the caller's Claude or OTel setup. */
export function sessionEnv({ home, anthropicUrl, extra = {} }) {
  return {
    PATH: process.env.PATH,
    LANG: process.env.LANG || 'C.UTF-8',
    TMPDIR: process.env.TMPDIR || tmpdir(),
    HOME: home,
    ANTHROPIC_BASE_URL: anthropicUrl,
    ANTHROPIC_API_KEY: 'anything',
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_AUTOUPDATER: '1',
    ...extra,
  };
}

/**
 * Run `claude -p PROMPT --output-format json --allowedTools TOOLS` in `cwd` and parse its
 * result. Resolves `{ code, result, stdout, stderr, ms }`; a session that outlives
 * `timeoutMs` is killed (its process group) and rejects.
 */
export function runClaude({ prompt, cwd, env, allowedTools, timeoutMs = 60_000, extraArgs = [] }) {
  assertClaudeInstalled();
  const args = ['-p', prompt, '--output-format', 'json'];
  if (allowedTools) args.push('--allowedTools', allowedTools);
  args.push(...extraArgs);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(claudeBinary, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => {
      try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
      reject(new Error(`claude -p timed out after ${timeoutMs} ms (prompt ${JSON.stringify(prompt)});\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code) => {
      clearTimeout(timer);
      let result = null;
      try { result = JSON.parse(stdout); } catch { /* not JSON: left null, caller reports stdout */ }
      resolve({ code, result, stdout, stderr, ms: Date.now() - started });
    });
  });
}

export function removeDir(dir) {
  rmSync(dir, { recursive: true, force: true });
}

/** The scripted sessions (see fake-anthropic.mjs for what the fake answers to each). */
export function scenarios(project) {
  return {
    text: { prompt: 'SCENARIO:text Say hello.', allowedTools: 'Bash Read' },
    tools: {
      prompt: `SCENARIO:tools Run echo hi, then read FILE:${path.join(project, 'notes.txt')}`,
      allowedTools: 'Bash Read',
      files: { 'notes.txt': 'a note for the Read tool\n' },
    },
    subagent: { prompt: 'SCENARIO:subagent Ask a subagent to echo a marker.', allowedTools: 'Agent Bash Read' },
    failure: { prompt: 'SCENARIO:failure This request is refused by the API.', allowedTools: 'Bash Read' },
    permission: {
      // Write is not allowed: Claude Code asks through PermissionRequest. Only record.mjs
      // runs it (its recorder answers every hook {}): against the backend the request is
      // held as an approval until decided (steering.test.mjs decides them through the API).
      prompt: `SCENARIO:permission Write FILE:${path.join(project, 'denied.txt')}`,
      allowedTools: 'Bash Read',
    },
  };
}
