// Steering whole sessions of the real Claude Code CLI through the backend's hook answers,
// offline (issue 21; contract: API.md "Steering a running agent through its hook answers"):
// approvals decided through the API, a run cancelled mid-session, a budget, a deny rule,
// a follow-up delivered at a held Stop. Each test asserts what a person would notice: a
// file written or not, the session stopping, what the model was told, the run's status.
//
// Each case has a world of its own: `orchestrator up` on a free port with its own
// database (the policy is on the definition `claude-code`, which every hook of that
// backend lands on), a project connected with `orchestrator connect claude-code --write`
// and a temporary HOME; one fake Anthropic API serves them all (each prompt names its
// scenario, see fake-anthropic.mjs). The cases run concurrently: most of their time is
// waiting (an approval, a held Stop, telemetry's export interval).
//
// What Claude Code 2.1.337 did here, next to API.md "What a real Claude Code sends"
// (nothing here contradicts it; these are the details it does not spell out):
// - PermissionRequest fires in -p mode for a Bash call not in --allowedTools, after
//   PreToolUse, and waits for the held hook. `allow` runs the tool; `deny` with a message
//   runs nothing and the model's next request carries a tool_result (is_error: true)
//   whose text is exactly that message. No PostToolUse(Failure) hook fires for the
//   denied call (as in the fixture permission.jsonl), and the call leaves no tool_call
//   log, where a deny_tools denial leaves one with details.denied.
// - A deny_tools denial reaches the model as "PreToolUse:Bash hook error: <reason>".
// - `{"continue": false, …}` stops the session at once: claude -p exits 0 with
//   `terminal_reason: "hook_stopped"`, `is_error: false`, `subtype: "success"` and
//   `result: ""`; the hook's stopReason appears nowhere in the JSON result (nor on
//   stderr). A person sees why only through the API (the run's error_message).
// - A Stop answered `{"decision":"block","reason":TEXT}` continues the session. The next
//   request's last *user* message is a string: "<system-reminder>\n<a preamble saying the
//   text is a hook's output>\nStop hook feedback:\nTEXT\n</system-reminder>", and it is
//   followed by a `role: "system"` message "Stop hook blocking error from command:
//   \"<hook url>\": TEXT". (Claude Code 2.1.x puts `role: "system"` messages into
//   `messages`: the environment after the first prompt, too.)
// - Budget: cost arrives with telemetry (connect's export interval, 2 s), so a session
//   whose calls cost ~$0.31 each (60k input tokens at the price of the default model,
//   claude-opus-5-5) overshoots a $0.30 budget by a few calls before the next
//   hook stops it; the run's cost_usd then keeps growing with the late exports (it ends
//   equal to total_cost_usd, above the spend named in error_message).

// Needs target/release/orchestrator, the release .wasm components and `npm ci` here.
// FAKE_ANTHROPIC_LOG=1 prints each model call the fake answers; CC_E2E_DUMP=FILE appends
// each case's claude -p result, runs and tool_call logs to FILE (JSON lines).

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LOOP_TURNS, startFakeAnthropic } from './fake-anthropic.mjs';
import { assertClaudeInstalled, readJson, removeDir, runClaude, sessionEnv, tempDir } from './claude.mjs';
import { assertBinary, connect, get, send, startBackend } from './backend.mjs';

/** What the backend holding a PermissionRequest waits for a decision (APPROVAL_WAIT_SECS):
 * short, so a test that never decides cannot hold the suite for minutes. */
const APPROVAL_WAIT_SECS = 40;
const SESSION_TIMEOUT_MS = 80_000;
const HOLD_ON_STOP_SECS = 20;

let fake;
const worlds = [];

before(async () => {
  assertBinary();
  assertClaudeInstalled();
  fake = await startFakeAnthropic({ log: Boolean(process.env.FAKE_ANTHROPIC_LOG) });
});

after(async () => {
  await Promise.all(worlds.map((w) => w.backend.stop()));
  await fake?.close();
  for (const w of worlds) removeDir(w.dir);
});

/** A backend of its own (with `policy` on the definition `claude-code` when given), and a
 * project connected to it. */
async function world({ policy } = {}) {
  const dir = tempDir('cc-steer-');
  const home = path.join(dir, 'home');
  mkdirSync(home, { recursive: true });
  mkdirSync(path.join(dir, 'project'), { recursive: true });
  const project = realpathSync(path.join(dir, 'project'));
  const backend = await startBackend({
    database: path.join(dir, 'orchestrator.db'),
    env: { APPROVAL_WAIT_SECS: String(APPROVAL_WAIT_SECS) },
  });
  const w = { dir, home, project, backend, base: backend.base };
  worlds.push(w);
  await connect({
    base: backend.base, settingsFile: path.join(project, '.claude/settings.json'), home, cwd: project,
    holdSecs: Math.max(APPROVAL_WAIT_SECS, HOLD_ON_STOP_SECS),
  });
  const user = readJson(path.join(home, '.claude/settings.json'));
  assert.equal(user?.env?.CLAUDE_CODE_ENABLE_TELEMETRY, '1', `connect wrote the telemetry environment: ${JSON.stringify(user)}`);
  if (policy) {
    const r = await send(backend.base, 'POST', '/api/agents', { name: 'claude-code', agent_type: 'builder', policy });
    assert.equal(r.status, 201, `POST /api/agents: ${r.status} ${JSON.stringify(r.body)}`);
  }
  return w;
}

/** Start `claude -p PROMPT` in the world's project; `tag` (unique) ends the prompt so
 * the test can find the session's model calls. Resolves `{ tag, done, sessionId() }`. */
function start(w, { prompt, allowedTools, tag }) {
  const started = Date.now();
  const done = runClaude({
    prompt: `${prompt} TAG:${tag}`,
    cwd: w.project,
    env: sessionEnv({ home: w.home, anthropicUrl: fake.url }),
    allowedTools,
    timeoutMs: SESSION_TIMEOUT_MS,
  });
  done.catch(() => {}); // awaited by the case; this keeps an early failure from being unhandled
  return { tag, started, done };
}

/** The model calls the fake answered for the session whose prompt ends with `tag`. */
function callsOf(tag) {
  return fake.requests.filter((r) => r.kind === 'main' && (r.first_user_text || '').includes(`TAG:${tag}`));
}

async function waitFor(what, check, timeoutMs = 30_000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`waited ${timeoutMs} ms for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The session id (the fake saw it on the first model call). */
function sessionOf(tag) {
  return waitFor(`the first model call of ${tag}`, () => callsOf(tag)[0]?.session, 60_000);
}

/** The session's top-level run. */
async function rootRun(w, sessionId) {
  const runs = await get(w.base, `/api/runtime/agents?session_id=${encodeURIComponent(sessionId)}&limit=100`);
  return runs.find((r) => !r.parent_agent_id);
}

async function toolLogsOf(w, run) {
  return get(w.base, `/api/runtime/logs?agent_id=${run.id}&log_type=tool_call&limit=1000`);
}

function lines(file) {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).length : 0;
}

/** The one pending approval of the session, once the held PermissionRequest made it. */
function pendingApproval(w, sessionId) {
  return waitFor(`a pending approval for session ${sessionId}`, async () => {
    const list = await get(w.base, `/api/approvals?status=pending&session_id=${encodeURIComponent(sessionId)}`);
    return list[0];
  }, 45_000, 200);
}

/** With CC_E2E_DUMP=FILE: the case's result, the session's runs and their tool_call logs. */
async function dump(name, w, sessionId, run) {
  if (!process.env.CC_E2E_DUMP || !sessionId) return;
  const runs = await get(w.base, `/api/runtime/agents?session_id=${encodeURIComponent(sessionId)}&limit=100`);
  const logs = await Promise.all(runs.map((r) => toolLogsOf(w, r)));
  appendFileSync(process.env.CC_E2E_DUMP, `${JSON.stringify({ case: name, result: run?.result, stderr: run?.stderr, runs, tool_calls: logs.flat() })}\n`);
}

function assertResult(run) {
  assert.ok(run.result, `claude -p printed no JSON result (exit ${run.code}):\n${run.stdout}\n${run.stderr}`);
  return run.result;
}

describe('steering real Claude Code sessions through hook answers', { concurrency: true, timeout: 150_000 }, () => {
  describe('a tool call a person approves through the API', () => {
    let w; let run; let approval; let decided; let file; let sessionId;
    before(async () => {
      w = await world();
      file = path.join(w.project, 'approved.txt');
      // Bash is not allowed: Claude Code asks (PermissionRequest), the backend holds it.
      const s = start(w, { prompt: `SCENARIO:command COMMAND[echo approved > ${file}]`, allowedTools: 'Read', tag: 'approve' });
      sessionId = await sessionOf('approve');
      approval = await pendingApproval(w, sessionId);
      decided = await send(w.base, 'POST', `/api/approvals/${approval.id}/decision`, { behavior: 'allow' });
      run = await s.done;
      await dump('approve', w, sessionId, run);
    });

    it('the held request is a pending approval naming the tool and its input', () => {
      assert.equal(approval.tool_name, 'Bash');
      assert.equal(approval.tool_input?.command, `echo approved > ${file}`);
      assert.equal(approval.rule, null, 'a PermissionRequest, not an ask rule');
      assert.equal(decided.status, 200, JSON.stringify(decided.body));
      assert.equal(decided.body.status, 'allowed');
    });

    it('the approved command ran: the file exists', () => {
      assertResult(run);
      assert.equal(readFileSync(file, 'utf8'), 'approved\n');
    });

    it('the tool call is a tool_call log of the session\'s run', async () => {
      const root = await rootRun(w, sessionId);
      const [use] = fake.toolUses(sessionId, 'main');
      const logs = await waitFor('the tool_call log', async () => {
        const l = await toolLogsOf(w, root);
        return l.length ? l : null;
      }, 10_000);
      assert.deepEqual(logs.map((l) => l.details?.tool_use_id), [use.id]);
      assert.notEqual(logs[0].details?.denied, true);
    });

    it('the model got the command\'s (successful) result', () => {
      const next = callsOf('approve').find((r) => r.tool_results.length);
      assert.ok(next, 'a model call carrying the tool_result');
      assert.equal(next.tool_results[0].is_error, false, JSON.stringify(next.tool_results));
    });
  });

  describe('a tool call a person denies through the API', () => {
    const MESSAGE = 'Denied by the steering test: not in this folder';
    let w; let run; let decided; let file; let sessionId;
    before(async () => {
      w = await world();
      file = path.join(w.project, 'denied.txt');
      const s = start(w, { prompt: `SCENARIO:command COMMAND[echo denied > ${file}]`, allowedTools: 'Read', tag: 'deny' });
      sessionId = await sessionOf('deny');
      const approval = await pendingApproval(w, sessionId);
      decided = await send(w.base, 'POST', `/api/approvals/${approval.id}/decision`, { behavior: 'deny', message: MESSAGE });
      run = await s.done;
      await dump('deny', w, sessionId, run);
    });

    it('the approval is denied', () => {
      assert.equal(decided.status, 200, JSON.stringify(decided.body));
      assert.equal(decided.body.status, 'denied');
      assert.equal(decided.body.message, MESSAGE);
    });

    it('the command did not run: no file', () => {
      assertResult(run);
      assert.ok(!existsSync(file), `${file} was written`);
    });

    it('the model is told why: the next tool_result holds the deny message', () => {
      const next = callsOf('deny').find((r) => r.tool_results.length);
      assert.ok(next, `a model call carrying the tool_result: ${JSON.stringify(callsOf('deny'))}`);
      assert.equal(next.tool_results[0].is_error, true);
      assert.ok(next.tool_results[0].text.includes(MESSAGE), `tool_result: ${JSON.stringify(next.tool_results[0])}`);
    });
  });

  describe('a run cancelled mid-session', () => {
    let w; let run; let file; let sessionId; let atCancel; let cancelledAt; let exitedAt; let patched; let root;
    before(async () => {
      w = await world();
      file = path.join(w.project, 'turns.txt');
      const s = start(w, { prompt: `SCENARIO:loop Keep going. FILE:${file}`, allowedTools: 'Bash Read', tag: 'cancel' });
      sessionId = await sessionOf('cancel');
      // The first command has run (its line is in the file): stop the run.
      await waitFor('the first command', () => lines(file) >= 1, 30_000, 50);
      root = await rootRun(w, sessionId);
      atCancel = lines(file);
      cancelledAt = Date.now();
      patched = await send(w.base, 'PATCH', `/api/runtime/agents/${root.id}`, {
        status: 'cancelled', error_message: 'Stopped by the steering test',
      });
      run = await s.done;
      exitedAt = Date.now();
      await dump('cancel', w, sessionId, run);
    });

    it('the PATCH is accepted', () => {
      assert.equal(patched.status, 200, JSON.stringify(patched.body));
      assert.equal(patched.body.status, 'cancelled');
    });

    it('claude exits soon after, well before its loop would end', () => {
      assertResult(run);
      assert.ok(exitedAt - cancelledAt < 15_000, `claude ran on for ${exitedAt - cancelledAt} ms after the cancel`);
      assert.ok(callsOf('cancel').length < LOOP_TURNS, `model calls: ${callsOf('cancel').length}`);
    });

    it('its result says a hook stopped it', () => {
      // Claude Code 2.1.337 reports `terminal_reason: "hook_stopped"` (is_error false,
      // subtype success, result ""); the hook's stopReason is not in the JSON result.
      assert.equal(run.result.terminal_reason, 'hook_stopped', JSON.stringify(run.result));
    });

    it('no command ran after the cancel', async () => {
      assert.equal(lines(file), atCancel, `lines at the cancel ${atCancel}, now ${lines(file)}`);
      const ran = (await toolLogsOf(w, root)).filter((l) => l.details?.denied !== true);
      assert.ok(ran.length <= atCancel, `tool_call logs of calls that ran: ${JSON.stringify(ran.map((l) => l.details))}`);
    });

    it('the run stays cancelled with the reason given', async () => {
      const now = await rootRun(w, sessionId);
      assert.equal(now.status, 'cancelled');
      assert.equal(now.error_message, 'Stopped by the steering test');
    });
  });

  describe('a budget (policy max_cost_usd) stops a session that keeps calling the model', () => {
    const MAX = 0.3;
    let w; let run; let sessionId;
    before(async () => {
      w = await world({ policy: { max_cost_usd: MAX } });
      const s = start(w, { prompt: 'SCENARIO:spend Keep spending.', allowedTools: 'Bash Read', tag: 'spend' });
      sessionId = await sessionOf('spend');
      run = await s.done;
      await dump('spend', w, sessionId, run);
    });

    it('claude stops before its loop ends: a hook stopped it', () => {
      assertResult(run);
      assert.ok(callsOf('spend').length < LOOP_TURNS, `model calls: ${callsOf('spend').length}`);
      assert.equal(run.result.terminal_reason, 'hook_stopped', JSON.stringify(run.result));
    });

    it('the run is cancelled with an error_message naming the budget, its cost at or over it', async () => {
      const root = await rootRun(w, sessionId);
      assert.equal(root.status, 'cancelled', JSON.stringify(root));
      assert.match(root.error_message || '', /budget|max_cost_usd/i);
      assert.ok(root.cost_usd >= MAX, `cost ${root.cost_usd}`);
    });

    it('what claude says it spent reached the budget', () => {
      assert.ok(run.result.total_cost_usd >= MAX, `total_cost_usd ${run.result.total_cost_usd}`);
    });
  });

  describe('a deny_tools rule blocks a command', () => {
    let w; let run; let file; let sessionId;
    before(async () => {
      w = await world({ policy: { deny_tools: ['Bash(rm:*)'] } });
      file = path.join(w.project, 'keep.txt');
      writeFileSync(file, 'keep me\n');
      const s = start(w, { prompt: `SCENARIO:command COMMAND[rm ${file}]`, allowedTools: 'Bash Read', tag: 'rule' });
      sessionId = await sessionOf('rule');
      run = await s.done;
      await dump('rule', w, sessionId, run);
    });

    it('the file is still there', () => {
      assertResult(run);
      assert.equal(readFileSync(file, 'utf8'), 'keep me\n');
    });

    it('a tool_call log records the denial', async () => {
      const root = await rootRun(w, sessionId);
      const logs = await toolLogsOf(w, root);
      const denied = logs.filter((l) => l.details?.denied === true);
      assert.equal(denied.length, 1, JSON.stringify(logs.map((l) => l.details)));
      assert.equal(denied[0].details.tool_use_id, fake.toolUses(sessionId, 'main')[0].id);
    });

    it('the model is told the rule', () => {
      const next = callsOf('rule').find((r) => r.tool_results.length);
      assert.ok(next, 'a model call carrying the tool_result');
      assert.ok(next.tool_results[0].text.includes('Bash(rm:*)'), JSON.stringify(next.tool_results[0]));
    });
  });

  describe('a follow-up posted while a Stop is held (policy hold_on_stop_secs)', () => {
    const TEXT = 'FOLLOWUP: now also list the files';
    let w; let run; let posted; let sessionId; let root;
    before(async () => {
      w = await world({ policy: { hold_on_stop_secs: HOLD_ON_STOP_SECS } });
      const s = start(w, { prompt: 'SCENARIO:followup Do the first part.', allowedTools: 'Bash Read', tag: 'followup' });
      sessionId = await sessionOf('followup');
      root = await rootRun(w, sessionId);
      // The first answer is text: the turn ends, and the Stop hook is held.
      await waitFor('the first answer', () => callsOf('followup').length >= 1);
      await new Promise((r) => setTimeout(r, 1_500));
      posted = await send(w.base, 'POST', `/api/runtime/agents/${root.id}/messages`, { text: TEXT });
      run = await s.done;
      await dump('followup', w, sessionId, run);
    });

    it('the follow-up is accepted', () => {
      assert.equal(posted.status, 201, JSON.stringify(posted.body));
    });

    it('the agent continues with it: the model gets "Stop hook feedback" and the text', () => {
      assertResult(run);
      const call = callsOf('followup').find((r) => /Stop hook feedback/.test(r.last_user_text));
      assert.ok(call, `model calls: ${JSON.stringify(callsOf('followup').map((r) => r.last_user_text))}`);
      assert.ok(call.last_user_text.includes(TEXT), call.last_user_text);
      assert.match(run.result.result, /Following up on/);
    });

    it('the follow-up prompt is completed', async () => {
      const prompt = await get(w.base, `/api/runtime/prompts/${posted.body.id}`);
      assert.equal(prompt.status, 'completed', JSON.stringify(prompt));
    });
  });
});
