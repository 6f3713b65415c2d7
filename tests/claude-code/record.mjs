// Records what the real Claude Code CLI sends, as fixtures for the ingest's Rust tests.
//
//   node record.mjs [--out DIR] [--drop-metrics] [--keep-startup] [scenario ...]
//
// For each scenario (text, tools, subagent, failure, permission; default all) it runs
// one `claude -p` session against the fake Anthropic API, in a temporary project whose
// `.claude/settings.json` has an http hook for every hook event, with the telemetry
// environment (OTLP/HTTP JSON) in the process environment, both pointing at a local
// recording server. Every delivery is written, in arrival order, as one JSON line
// `{"kind": "hook"|"otlp_logs"|"otlp_traces"|"otlp_metrics", "body": …}` to
// `<out>/<scenario>.jsonl`, and Claude Code's own `--output-format json` result to
// `<out>/<scenario>.result.json`. Temporary paths are replaced by stable placeholders
// (/tmp/claude-code-fixture/project and /tmp/claude-code-fixture/home). Metrics lines
// (a few KB a session) are kept unless --drop-metrics. The startup records that only echo
// the configuration (`claude_code.hook_registered`, one per configured hook, and
// `claude_code.plugin_loaded`: ~18 KB a session, nothing a session did) are dropped from
// the OTLP log batches unless --keep-startup.
//
// Then it checks two things and prints them: whether OTEL_* set in a project's
// .claude/settings.json `env` is obeyed, and whether the same in ~/.claude/settings.json is.

import http from 'node:http';
import { gunzipSync } from 'node:zlib';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startFakeAnthropic } from './fake-anthropic.mjs';
import {
  httpHooks, removeDir, repo, runClaude, scenarios, sessionEnv, telemetryEnv, tempDir, writeJson,
} from './claude.mjs';

const args = process.argv.slice(2);
let out = path.join(repo, 'src/api/tests/fixtures/claude_code');
let keepMetrics = true;
let keepStartup = false;
const wanted = [];
for (let i = 0; i < args.length; i += 1) {
  if (args[i] === '--out') out = path.resolve(args[(i += 1)]);
  else if (args[i] === '--drop-metrics') keepMetrics = false;
  else if (args[i] === '--keep-startup') keepStartup = true;
  else wanted.push(args[i]);
}

const PLACEHOLDER_PROJECT = '/tmp/claude-code-fixture/project';
const PLACEHOLDER_HOME = '/tmp/claude-code-fixture/home';

/** A server that answers every hook `{}` and every OTLP export `{}`, and keeps each
 * delivery per channel (the first path segment), in arrival order. */
async function startRecorder() {
  const channels = new Map();
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      let raw = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') raw = gunzipSync(raw);
      const [, channel, ...rest] = new URL(req.url, 'http://r').pathname.split('/');
      const route = `/${rest.join('/')}`;
      const kind = { '/hook': 'hook', '/v1/logs': 'otlp_logs', '/v1/traces': 'otlp_traces', '/v1/metrics': 'otlp_metrics' }[route];
      let body;
      try { body = JSON.parse(raw.toString('utf8')); } catch { body = { unparsed: raw.toString('base64'), content_type: req.headers['content-type'] }; }
      if (!channels.has(channel)) channels.set(channel, []);
      channels.get(channel).push({ kind: kind || `unknown ${req.method} ${route}`, body, headers: req.headers });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${server.address().port}`;
  return {
    base,
    deliveries: (channel) => channels.get(channel) || [],
    close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); }),
  };
}

const STARTUP_NOISE = new Set(['hook_registered', 'plugin_loaded']);

const eventName = (record) => (record.attributes || []).find((a) => a.key === 'event.name')?.value?.stringValue;

/** An OTLP logs body without the startup records that only echo the configuration. */
function withoutStartupNoise(body) {
  const resourceLogs = (body.resourceLogs || []).map((r) => ({
    ...r,
    scopeLogs: (r.scopeLogs || []).map((s) => ({
      ...s, logRecords: (s.logRecords || []).filter((rec) => !STARTUP_NOISE.has(eventName(rec))),
    })).filter((s) => s.logRecords.length),
  })).filter((r) => r.scopeLogs.length);
  return { ...body, resourceLogs };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Replace the temporary folders by stable placeholders, in their plain and in Claude
 * Code's dash-encoded form (~/.claude/projects/-tmp-…). */
function stable(text, { project, home }) {
  const dashed = (p) => p.replace(/[^a-zA-Z0-9]/g, '-');
  return text
    .split(project).join(PLACEHOLDER_PROJECT)
    .split(dashed(project)).join(dashed(PLACEHOLDER_PROJECT))
    .split(home).join(PLACEHOLDER_HOME);
}

/** Summarise a recording: hook events in order, OTLP log event names. */
function summary(lines) {
  return lines.map((l) => {
    if (l.kind === 'hook') return `hook ${l.body.hook_event_name}${l.body.agent_id ? ` (agent ${l.body.agent_type})` : ''}`;
    if (l.kind === 'otlp_logs') {
      const names = (l.body.resourceLogs || []).flatMap((r) => (r.scopeLogs || []).flatMap((s) => (s.logRecords || [])
        .map((rec) => eventName(rec) || rec.body?.stringValue)));
      return `otlp_logs [${names.join(', ')}]`;
    }
    return l.kind;
  }).join('\n  ');
}

async function recordScenario(name, fake, recorder) {
  const project = tempDir('cc-record-project-');
  const home = tempDir('cc-record-home-');
  try {
    const scenario = scenarios(project)[name];
    for (const [file, content] of Object.entries(scenario.files || {})) writeFileSync(path.join(project, file), content);
    writeJson(path.join(project, '.claude/settings.json'), { hooks: httpHooks(`${recorder.base}/${name}/hook`) });
    const env = sessionEnv({ home, anthropicUrl: fake.url, extra: telemetryEnv(`${recorder.base}/${name}`) });
    const run = await runClaude({ prompt: scenario.prompt, cwd: project, env, allowedTools: scenario.allowedTools, timeoutMs: 120_000 });
    await sleep(1500); // deliveries that were in flight at exit
    if (!run.result) throw new Error(`${name}: claude printed no JSON result (exit ${run.code}):\n${run.stdout}\n${run.stderr}`);
    const lines = recorder.deliveries(name)
      .filter((l) => keepMetrics || l.kind !== 'otlp_metrics')
      .map(({ kind, body }) => ({ kind, body: kind === 'otlp_logs' && !keepStartup ? withoutStartupNoise(body) : body }))
      .filter(({ kind, body }) => kind !== 'otlp_logs' || body.resourceLogs.length)
      .map((line) => JSON.stringify(line));
    const paths = { project, home };
    mkdirSync(out, { recursive: true });
    writeFileSync(path.join(out, `${name}.jsonl`), stable(`${lines.join('\n')}\n`, paths));
    writeFileSync(path.join(out, `${name}.result.json`), stable(`${JSON.stringify(run.result, null, 2)}\n`, paths));
    console.log(`${name}: exit ${run.code} in ${run.ms} ms, session ${run.result.session_id}, total_cost_usd ${run.result.total_cost_usd}`);
    console.log(`  ${summary(recorder.deliveries(name))}`);
    if (run.stderr.trim()) console.log(`  stderr: ${run.stderr.trim().split('\n').join('\n  stderr: ')}`);
  } finally {
    removeDir(project);
    removeDir(home);
  }
}

/** Does Claude Code export telemetry when OTEL_* sits in settings.json `env` of the
 * project (`where: 'project'`) or of the user (`where: 'user'`), not in the process? */
async function checkSettingsEnv(where, fake, recorder) {
  const project = tempDir('cc-record-project-');
  const home = tempDir('cc-record-home-');
  const channel = `env-${where}`;
  try {
    const settings = { hooks: httpHooks(`${recorder.base}/${channel}/hook`) };
    const envBlock = { env: telemetryEnv(`${recorder.base}/${channel}`) };
    if (where === 'project') Object.assign(settings, envBlock);
    else writeJson(path.join(home, '.claude/settings.json'), envBlock);
    writeJson(path.join(project, '.claude/settings.json'), settings);
    const run = await runClaude({
      prompt: scenarios(project).text.prompt, cwd: project,
      env: sessionEnv({ home, anthropicUrl: fake.url }), allowedTools: 'Bash Read', timeoutMs: 120_000,
    });
    await sleep(1500);
    const kinds = recorder.deliveries(channel).map((l) => l.kind);
    const otlp = kinds.filter((k) => k.startsWith('otlp')).length;
    console.log(`OTEL env in the ${where}'s settings.json: ${otlp} OTLP deliveries, ${kinds.length - otlp} hooks; exit ${run.code}`);
    if (run.stderr.trim()) console.log(`  stderr: ${run.stderr.trim().split('\n').join('\n  stderr: ')}`);
    const warnings = (run.result && JSON.stringify(run.result).match(/[^"]*(project-scoped|can't set)[^"]*/g)) || [];
    for (const w of warnings) console.log(`  result mentions: ${w}`);
  } finally {
    removeDir(project);
    removeDir(home);
  }
}

const fake = await startFakeAnthropic();
const recorder = await startRecorder();
try {
  const names = wanted.length ? wanted : Object.keys(scenarios('/x'));
  for (const name of names) {
    if (name.startsWith('env-')) await checkSettingsEnv(name.slice(4), fake, recorder);
    else await recordScenario(name, fake, recorder);
  }
  if (!wanted.length) {
    await checkSettingsEnv('project', fake, recorder);
    await checkSettingsEnv('user', fake, recorder);
  }
  console.log('\nmodel calls the fake answered:');
  for (const r of fake.requests) {
    console.log(`  ${r.session} ${r.kind}/${r.scenario ?? '-'} step ${r.step ?? '-'} ${r.model} stream=${r.stream} ${
      r.error ? `HTTP ${r.error.status}` : (r.tool_uses || []).map((t) => t.name).join(',') || 'text'}`);
  }
  if (fake.unknown.length) console.log('unknown paths:', fake.unknown);
} finally {
  await recorder.close();
  await fake.close();
}
