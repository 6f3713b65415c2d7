// A dispatched run that starts a real Claude Code session (issue 22; docs/dispatch.md,
// README "Run an ADW from the dashboard"), offline: `orchestrator up --runner --allow sh`,
// a definition whose `command` is `sh <project>/adw.sh {input}`, dispatched through
// `POST /api/runtime/agents`. adw.sh (written here) runs `claude -p "$1"` the way
// claude.mjs does (the fake Anthropic API, the test's HOME with connect's settings), and
// passes the runner's ORCHESTRATOR_* variables on: connect's hooks send
// `X-Orchestrator-Run-Id: $ORCHESTRATOR_RUN_ID`, so the session is a child run of the
// dispatched one, and the dispatched run's `tree` sums both.
//
// Needs target/release/orchestrator, the release .wasm components and `npm ci` here.
// FAKE_ANTHROPIC_LOG=1 prints each model call the fake answers; CC_DISPATCH_DEBUG=1 prints
// claude's result, the child run and the dispatched run (with its tree).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { startFakeAnthropic } from './fake-anthropic.mjs';
import {
  assertClaudeInstalled, claudeBinary, readJson, removeDir, scenarios, sessionEnv, tempDir,
} from './claude.mjs';
import { assertBinary, connect, get, send, startBackend } from './backend.mjs';

const SESSION_TIMEOUT_SECS = 90;

/** A value as one single-quoted shell word. */
function sh(value) {
  return `'${String(value).replace(/'/g, `'\\''`)}'`;
}

async function waitFor(what, check, timeoutMs = 30_000, everyMs = 200) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (e) { last = e; }
    if (Date.now() > deadline) throw new Error(`waited ${timeoutMs} ms for ${what}${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

describe('a dispatched run that starts a real Claude Code session', { timeout: 150_000 }, () => {
  let fake; let backend; let dir; let home; let project; let resultFile; let stderrFile;
  let definition; let dispatched; let run; let result; let child;
  const MARKER = 'adw.sh: started claude for run';

  before(async () => {
    assertBinary();
    assertClaudeInstalled();
    fake = await startFakeAnthropic({ log: Boolean(process.env.FAKE_ANTHROPIC_LOG) });
    dir = tempDir('cc-dispatch-');
    home = path.join(dir, 'home');
    mkdirSync(home, { recursive: true });
    mkdirSync(path.join(dir, 'project'), { recursive: true });
    project = realpathSync(path.join(dir, 'project'));
    resultFile = path.join(project, 'claude-result.json');
    stderrFile = path.join(project, 'claude-stderr.txt');
    backend = await startBackend({ database: path.join(dir, 'orchestrator.db'), args: ['--runner', '--allow', 'sh'] });
    await connect({ base: backend.base, settingsFile: path.join(project, '.claude/settings.json'), home, cwd: project });
    const user = readJson(path.join(home, '.claude/settings.json'));
    assert.equal(user?.env?.CLAUDE_CODE_ENABLE_TELEMETRY, '1', `connect wrote the telemetry environment: ${JSON.stringify(user)}`);

    const scenario = scenarios(project).tools;
    for (const [name, text] of Object.entries(scenario.files)) writeFileSync(path.join(project, name), text);
    // The runner passes its own environment (the backend's) through: adw.sh starts claude
    // with a clean one, as claude.mjs does, plus the runner's ORCHESTRATOR_* variables.
    const env = sessionEnv({ home, anthropicUrl: fake.url });
    const assignments = Object.entries(env).map(([k, v]) => `${k}=${sh(v)}`).join(' \\\n  ');
    writeFileSync(path.join(project, 'adw.sh'), `# Written by dispatch.test.mjs: one claude -p session.
echo "${MARKER} $ORCHESTRATOR_RUN_ID"
cd ${sh(project)} || exit 2
env -i \\
  ${assignments} \\
  ORCHESTRATOR_URL="$ORCHESTRATOR_URL" ORCHESTRATOR_RUN_ID="$ORCHESTRATOR_RUN_ID" ORCHESTRATOR_SESSION_ID="$ORCHESTRATOR_SESSION_ID" \\
  ${sh(claudeBinary)} -p "$1" --output-format json --allowedTools ${sh(scenario.allowedTools)} \\
  < /dev/null > ${sh(resultFile)} 2> ${sh(stderrFile)}
code=$?
echo "adw.sh: claude exited $code"
exit $code
`);

    const created = await send(backend.base, 'POST', '/api/agents', {
      name: 'adw-claude', agent_type: 'orchestrator',
      command: ['sh', path.join(project, 'adw.sh'), '{input}'],
      working_dir: project, timeout_secs: SESSION_TIMEOUT_SECS,
    });
    assert.equal(created.status, 201, `POST /api/agents: ${created.status} ${JSON.stringify(created.body)}`);
    definition = created.body;
    dispatched = await send(backend.base, 'POST', '/api/runtime/agents', {
      orchestrator_agent_id: definition.id, dispatch: { input: scenario.prompt },
    });
    assert.equal(dispatched.status, 201, `dispatch: ${dispatched.status} ${JSON.stringify(dispatched.body)}`);
    run = await waitFor('the dispatched run to end', async () => {
      const r = await get(backend.base, `/api/runtime/agents/${dispatched.body.id}`);
      return r.dispatch?.state === 'exited' || ['completed', 'failed', 'cancelled'].includes(r.status) ? r : null;
    }, (SESSION_TIMEOUT_SECS + 15) * 1000, 300);
    if (existsSync(resultFile)) {
      try { result = JSON.parse(readFileSync(resultFile, 'utf8')); } catch { /* reported below */ }
    }
  });

  after(async () => {
    await backend?.stop();
    await fake?.close();
    if (dir) removeDir(dir);
  });

  function claudeOutput() {
    const out = existsSync(resultFile) ? readFileSync(resultFile, 'utf8') : '(no result file)';
    const err = existsSync(stderrFile) ? readFileSync(stderrFile, 'utf8') : '(no stderr file)';
    return `claude stdout: ${out}\nclaude stderr: ${err}`;
  }

  it('the dispatch is queued with the argv resolved', () => {
    const d = dispatched.body.dispatch;
    assert.equal(d?.state, 'queued', JSON.stringify(dispatched.body));
    assert.deepEqual(d.argv, ['sh', path.join(project, 'adw.sh'), scenarios(project).tools.prompt]);
  });

  it('the dispatched run completes (exit 0) and claude printed its result', () => {
    assert.equal(run.status, 'completed', `${JSON.stringify(run)}\n${claudeOutput()}`);
    assert.equal(run.dispatch.state, 'exited');
    assert.equal(run.dispatch.exit_code, 0);
    assert.ok(result, claudeOutput());
    assert.equal(result.is_error, false, JSON.stringify(result));
  });

  it('the Claude Code session is its one child run, with its prompt and tool calls', async () => {
    child = await waitFor('one child run of the dispatched run', async () => {
      const runs = await get(backend.base, '/api/runtime/agents?limit=100');
      const children = runs.filter((r) => r.parent_agent_id === run.id);
      assert.ok(children.length <= 1, `more than one child: ${JSON.stringify(children)}`);
      return children[0];
    }, 20_000);
    assert.equal(child.session_id, result.session_id, JSON.stringify(child));
    const prompts = await get(backend.base, `/api/runtime/prompts?agent_id=${child.id}`);
    assert.ok(prompts.some((p) => JSON.stringify(p).includes('SCENARIO:tools')), JSON.stringify(prompts));
    const uses = fake.toolUses(result.session_id, 'main');
    assert.equal(uses.length, 2, JSON.stringify(uses));
    const logs = await waitFor('both tool_call logs', async () => {
      const l = await get(backend.base, `/api/runtime/logs?agent_id=${child.id}&log_type=tool_call&limit=100`);
      return l.length >= 2 ? l : null;
    }, 20_000);
    assert.deepEqual(logs.map((l) => l.details?.tool_use_id).sort(), uses.map((u) => u.id).sort());
  });

  it('the child\'s cost is claude\'s total_cost_usd, and the tree sums the run and its child', async () => {
    assert.ok(child, 'the child run (previous case)');
    assert.ok(result.total_cost_usd > 0, JSON.stringify(result));
    let last;
    try {
      await waitFor('the costs to settle (telemetry exports every 2 s)', async () => {
        const c = await get(backend.base, `/api/runtime/agents/${child.id}`);
        const r = await get(backend.base, `/api/runtime/agents/${run.id}`);
        last = { child: c, run: r };
        return Math.abs(c.cost_usd - result.total_cost_usd) < 1e-9
          && r.tree && Math.abs(r.tree.cost_usd - (r.cost_usd + c.cost_usd)) < 1e-9;
      }, 20_000, 500);
    } catch (e) {
      throw new Error(`${e.message}: total_cost_usd ${result.total_cost_usd}, child ${JSON.stringify(last?.child)}, `
        + `run ${JSON.stringify(last?.run)}`);
    }
    const { child: c, run: r } = last;
    if (process.env.CC_DISPATCH_DEBUG) console.error(JSON.stringify({ result, child: c, run: r }, null, 1));
    assert.ok(r.tree.runs >= 2, JSON.stringify(r.tree));
    assert.ok(r.tree.tokens_input >= c.tokens_input, JSON.stringify({ tree: r.tree, child: c }));
  });

  it('what adw.sh printed is in the dispatched run\'s output logs', async () => {
    const logs = await waitFor('adw.sh\'s output lines', async () => {
      const l = await get(backend.base, `/api/runtime/logs?agent_id=${run.id}&log_type=performance&limit=100`);
      const out = l.filter((x) => x.details?.output);
      return out.some((x) => x.message.includes('claude exited 0')) ? out : null;
    }, 10_000);
    const started = logs.find((x) => x.message.startsWith(MARKER));
    assert.ok(started, JSON.stringify(logs));
    assert.equal(started.message, `${MARKER} ${run.id}`);
    assert.equal(started.details.output, 'stdout');
  });
});
