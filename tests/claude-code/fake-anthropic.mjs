// A stand-in for Anthropic's Messages API, so the real Claude Code CLI runs offline.
//
// It answers `POST /v1/messages` as Anthropic documents it: Server-Sent Events
// (message_start, ping, content_block_start, content_block_delta with text_delta or
// input_json_delta, content_block_stop, message_delta with stop_reason and usage,
// message_stop) when the request says `stream: true`, one JSON message otherwise.
// `POST /v1/messages/count_tokens` gets a token estimate; any other path is logged and
// answered with Anthropic's 404 error shape, so new calls show up in `unknown`.
//
// What it answers is decided by the request (a "script"), so one test can run several
// kinds of sessions against one fake:
//
// - the conversation's first user text names a scenario: `SCENARIO:text`,
//   `SCENARIO:tools`, `SCENARIO:subagent`, `SCENARIO:failure`, `SCENARIO:permission`,
//   and the steering ones (steering.test.mjs): `SCENARIO:command` (one Bash call of the
//   command written `COMMAND[…]` in the prompt), `SCENARIO:loop` (a Bash call appending
//   a line to FILE every turn, answered slowly), `SCENARIO:spend` (a Bash call every
//   turn, each model call reporting a large usage so that it costs something),
//   `SCENARIO:followup` (a text answer; a later request carrying Stop hook feedback is
//   answered with a text that quotes it);
// - a subagent's conversation starts with the prompt its parent gave the Agent tool,
//   which holds `SUBTASK:` (so its requests are told apart from the parent's);
// - the step within a conversation is the number of assistant turns it already has
//   (each tool_use turn is followed by a user turn holding the tool_result);
// - anything else (a title or summary request, a quota probe) is a side request: it is
//   answered with short text and recorded as such.
//
// Every answer is recorded in `requests` with its session (Claude Code's
// `x-claude-code-session-id` header), the conversation kind (main, subagent, side), the
// tool_use blocks it returned and the usage it reported, so a test can count what each
// run should show; and with what the request itself carried last: the tool_result blocks
// of its last user message (`tool_results`: tool_use_id, is_error, text) and that
// message's texts (`last_user_text`), so a test can check what the model was told.

import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

/** The words of the error the failure scenario answers with (HTTP 400). */
export const FAILURE_MESSAGE = 'fake-anthropic: prompt rejected on purpose (scenario failure)';

const id = (prefix) => `${prefix}_01${randomBytes(12).toString('base64url').replace(/[-_]/g, 'x').slice(0, 22)}`;

/** The text blocks of a message's content (a string or a list of blocks). */
function textsOf(content) {
  if (typeof content === 'string') return [content];
  if (!Array.isArray(content)) return [];
  return content.filter((b) => b && b.type === 'text' && typeof b.text === 'string').map((b) => b.text);
}

/** The text a person (or a parent agent) typed: the first user message's text. */
function firstUserText(messages) {
  const first = (messages || []).find((m) => m.role === 'user');
  return first ? textsOf(first.content).join('\n') : '';
}

function lastMessage(messages) {
  return (messages || [])[(messages || []).length - 1];
}

/** The last message whose role is `user`. Claude Code 2.1.x also puts `role: "system"`
 * messages into `messages` (the environment after the first prompt, "Stop hook blocking
 * error from command: …" after a Stop hook's block), so the last message is not always
 * the user's. */
function lastUserMessage(messages) {
  return [...(messages || [])].reverse().find((m) => m && m.role === 'user');
}

function toolResultsOf(message) {
  if (!message || message.role !== 'user' || !Array.isArray(message.content)) return [];
  return message.content.filter((b) => b && b.type === 'tool_result');
}

/** The command a prompt writes as `COMMAND[<command>]`. */
function commandNamed(prompt) {
  return (prompt.match(/COMMAND\[(.*?)\]/s) || [])[1] || 'echo no command given';
}

/** How many turns the loop and spend scenarios go on for at most. */
export const LOOP_TURNS = 40;

/** How long the loop and spend scenarios take to answer each call after the first (ms):
 * a session that nobody stops runs for LOOP_TURNS times that at least. */
export const LOOP_DELAY_MS = { loop: 2_000, spend: 600 };

/** The absolute path a prompt names with `FILE:<path>`. */
function fileNamed(prompt) {
  return (prompt.match(/FILE:(\S+)/) || [])[1] || '/tmp/fake-anthropic-missing.txt';
}

function systemText(system) {
  if (typeof system === 'string') return system;
  return textsOf(system).join('\n');
}

/** Usage of one model call: a realistic shape (a cached system prompt and tool list, a
 * few fresh tokens), different per step so that sums are meaningful. */
function usageFor(kind, step, scenario) {
  if (scenario === 'spend') {
    // 60k fresh input tokens a call: about $0.18 at Sonnet's price, $0.30 at Opus 4.5's.
    return { input_tokens: 60_000, output_tokens: 400, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 };
  }
  if (kind === 'side') {
    return { input_tokens: 180, output_tokens: 9, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 };
  }
  if (kind === 'subagent') {
    // Smaller than the main conversation's, so that a call counted on the wrong run shows.
    return {
      input_tokens: 4 + 2 * step,
      output_tokens: 27 + 5 * step,
      cache_read_input_tokens: step === 0 ? 0 : 7_900 + 90 * step,
      cache_creation_input_tokens: step === 0 ? 7_900 : 110 + 10 * step,
    };
  }
  return {
    input_tokens: 6 + 3 * step,
    output_tokens: 42 + 7 * step,
    cache_read_input_tokens: step === 0 ? 0 : 11_800 + 150 * step,
    cache_creation_input_tokens: step === 0 ? 11_800 : 160 + 20 * step,
  };
}

const text = (t) => ({ type: 'text', text: t });
const toolUse = (name, input) => ({ type: 'tool_use', id: id('toolu'), name, input });

/**
 * The scripted answer for one request: `{ kind, scenario, step, blocks }` or
 * `{ kind, scenario, step, error: { status, type, message } }`.
 * The tools and permission scenarios act on the absolute path named by `FILE:<path>` in
 * the prompt.
 */
export function decide(body) {
  const messages = body.messages || [];
  const first = firstUserText(messages);
  const step = messages.filter((m) => m.role === 'assistant').length;
  const results = toolResultsOf(lastMessage(messages));
  const resultNote = results.length
    ? ` (the tool answered: ${JSON.stringify(textsOf(results[0].content).join(' ') || results[0].content).slice(0, 80)})`
    : '';

  if (/SUBTASK:/.test(first)) {
    // A subagent: one Bash call, then its report.
    if (step === 0) {
      return { kind: 'subagent', scenario: 'subagent', step, blocks: [
        text('Running the command the task asks for.'),
        toolUse('Bash', { command: 'echo from-subagent', description: 'Print a marker line' }),
      ] };
    }
    return { kind: 'subagent', scenario: 'subagent', step, blocks: [text(`Subtask done${resultNote}.`)] };
  }

  const scenario = (first.match(/SCENARIO:(\w+)/) || [])[1];
  switch (scenario) {
    case 'text':
      return { kind: 'main', scenario, step, blocks: [text('Hello! This is a plain text answer from the fake model.')] };
    case 'tools':
      if (step === 0) {
        return { kind: 'main', scenario, step, blocks: [
          text('I will run a command first.'),
          toolUse('Bash', { command: 'echo hi', description: 'Print a greeting' }),
        ] };
      }
      if (step === 1) {
        return { kind: 'main', scenario, step, blocks: [
          toolUse('Read', { file_path: fileNamed(first) }),
        ] };
      }
      return { kind: 'main', scenario, step, blocks: [text(`Both tools ran${resultNote}.`)] };
    case 'subagent':
      if (step === 0) {
        return { kind: 'main', scenario, step, blocks: [
          text('I will hand this to a subagent.'),
          toolUse('Agent', {
            description: 'Echo a marker',
            prompt: 'SUBTASK: run `echo from-subagent` with Bash and report what it printed.',
            subagent_type: 'general-purpose',
            run_in_background: false,
          }),
        ] };
      }
      return { kind: 'main', scenario, step, blocks: [text(`The subagent finished${resultNote}.`)] };
    case 'permission':
      // Write is not among the allowed tools of this session: Claude Code asks
      // (PermissionRequest), the hook answers {}, and in -p mode the call is denied.
      if (step === 0) {
        return { kind: 'main', scenario, step, blocks: [
          toolUse('Write', { file_path: fileNamed(first), content: 'should not be written\n' }),
        ] };
      }
      return { kind: 'main', scenario, step, blocks: [text(`The write was not allowed${resultNote}.`)] };
    case 'command':
      if (step === 0) {
        return { kind: 'main', scenario, step, blocks: [
          text('Running the command.'),
          toolUse('Bash', { command: commandNamed(first), description: 'Run the requested command' }),
        ] };
      }
      return { kind: 'main', scenario, step, blocks: [text(`The command is done${resultNote}.`)] };
    case 'loop':
    case 'spend': {
      // Goes on calling Bash, turn after turn, until LOOP_TURNS (or until stopped).
      const delayMs = step === 0 ? 0 : LOOP_DELAY_MS[scenario];
      if (step < LOOP_TURNS) {
        const command = scenario === 'loop' ? `echo turn ${step} >> ${fileNamed(first)}` : `echo spend ${step}`;
        return { kind: 'main', scenario, step, delayMs, blocks: [
          text(`Turn ${step}: one more command.`),
          toolUse('Bash', { command, description: `Turn ${step}` }),
        ] };
      }
      return { kind: 'main', scenario, step, delayMs, blocks: [text(`All ${LOOP_TURNS} turns done.`)] };
    }
    case 'followup': {
      const said = textsOf(lastUserMessage(messages)?.content).join('\n');
      if (/Stop hook feedback/.test(said)) {
        return { kind: 'main', scenario, step, blocks: [text(`Following up on: ${said.replace(/\s+/g, ' ').slice(0, 200)}`)] };
      }
      return { kind: 'main', scenario, step, blocks: [text('The first part is done.')] };
    }
    case 'failure':
      return { kind: 'main', scenario, step, error: { status: 400, type: 'invalid_request_error', message: FAILURE_MESSAGE } };
    default:
      // A side request (title, summary, quota probe …) or a prompt without a scenario.
      return { kind: 'side', scenario: null, step, blocks: [text(/title/i.test(systemText(body.system)) ? 'Fake session title' : 'OK')] };
  }
}

function writeSse(res, model, blocks, usage) {
  const send = (type, data) => res.write(`event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`);
  const stopReason = blocks.some((b) => b.type === 'tool_use') ? 'tool_use' : 'end_turn';
  send('message_start', { message: {
    id: id('msg'), type: 'message', role: 'assistant', model, content: [],
    stop_reason: null, stop_sequence: null,
    usage: { ...usage, output_tokens: 1 },
  } });
  send('ping', {});
  blocks.forEach((block, index) => {
    if (block.type === 'text') {
      send('content_block_start', { index, content_block: { type: 'text', text: '' } });
      const half = Math.ceil(block.text.length / 2);
      for (const part of [block.text.slice(0, half), block.text.slice(half)]) {
        if (part) send('content_block_delta', { index, delta: { type: 'text_delta', text: part } });
      }
    } else {
      send('content_block_start', { index, content_block: { type: 'tool_use', id: block.id, name: block.name, input: {} } });
      const json = JSON.stringify(block.input);
      const cut = Math.ceil(json.length / 3);
      for (const part of [json.slice(0, cut), json.slice(cut, 2 * cut), json.slice(2 * cut)]) {
        send('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: part } });
      }
    }
    send('content_block_stop', { index });
  });
  // message_delta's usage is cumulative for the whole message.
  send('message_delta', { delta: { stop_reason: stopReason, stop_sequence: null }, usage });
  send('message_stop', {});
  res.end();
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/**
 * Start the fake on 127.0.0.1. Returns `{ url, port, requests, unknown, close,
 * toolUses(sessionId, kind) }`. `log` prints one line per request.
 */
export async function startFakeAnthropic({ port = 0, log = false } = {}) {
  const requests = [];
  const unknown = [];
  const server = http.createServer(async (req, res) => {
    const raw = await readBody(req);
    let body = null;
    try { body = raw ? JSON.parse(raw) : null; } catch { body = null; }
    const url = new URL(req.url, 'http://fake');
    const session = req.headers['x-claude-code-session-id'] || null;
    const json = (status, value) => {
      res.writeHead(status, { 'content-type': 'application/json', 'request-id': id('req') });
      res.end(JSON.stringify(value));
    };

    if (req.method === 'POST' && url.pathname === '/v1/messages/count_tokens') {
      requests.push({ path: url.pathname, session, kind: 'count_tokens', model: body?.model });
      return json(200, { input_tokens: Math.max(1, Math.round(raw.length / 4)) });
    }
    if (req.method === 'POST' && url.pathname === '/v1/messages' && body) {
      const answer = decide(body);
      const model = body.model || 'claude-sonnet-4-5';
      const record = {
        path: url.pathname, session, kind: answer.kind, scenario: answer.scenario, step: answer.step,
        model, stream: Boolean(body.stream), max_tokens: body.max_tokens,
        first_user_text: firstUserText(body.messages).slice(-200),
        system_excerpt: systemText(body.system).slice(0, 200),
        tools: (body.tools || []).map((t) => t.name),
        beta: req.headers['anthropic-beta'] || null,
        retry: req.headers['x-stainless-retry-count'] || null,
        body_keys: Object.keys(body),
        tool_results: toolResultsOf(lastUserMessage(body.messages)).map((b) => ({
          tool_use_id: b.tool_use_id,
          is_error: Boolean(b.is_error),
          text: typeof b.content === 'string' ? b.content : textsOf(b.content).join('\n'),
        })),
        last_user_text: textsOf(lastUserMessage(body.messages)?.content).join('\n'),
      };
      if (answer.error) {
        record.error = answer.error;
        requests.push(record);
        if (log) console.error(`[fake-anthropic] ${session} ${answer.kind}/${answer.scenario} step ${answer.step}: HTTP ${answer.error.status}`);
        return json(answer.error.status, { type: 'error', error: { type: answer.error.type, message: answer.error.message } });
      }
      if (answer.delayMs) await new Promise((r) => setTimeout(r, answer.delayMs));
      const usage = usageFor(answer.kind, answer.step, answer.scenario);
      record.usage = usage;
      record.tool_uses = answer.blocks.filter((b) => b.type === 'tool_use').map((b) => ({ id: b.id, name: b.name, input: b.input }));
      requests.push(record);
      if (log) {
        console.error(`[fake-anthropic] ${session} ${answer.kind}/${answer.scenario} step ${answer.step} model ${model} stream ${record.stream}: ${
          answer.blocks.map((b) => (b.type === 'text' ? 'text' : `tool_use ${b.name}`)).join(', ')}`);
      }
      if (body.stream) {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'request-id': id('req') });
        return writeSse(res, model, answer.blocks, usage);
      }
      const stopReason = answer.blocks.some((b) => b.type === 'tool_use') ? 'tool_use' : 'end_turn';
      return json(200, { id: id('msg'), type: 'message', role: 'assistant', model, content: answer.blocks,
        stop_reason: stopReason, stop_sequence: null, usage });
    }
    unknown.push({ method: req.method, path: req.url, body: raw.slice(0, 500) });
    if (log) console.error(`[fake-anthropic] unknown ${req.method} ${req.url}`);
    return json(404, { type: 'error', error: { type: 'not_found_error', message: `fake-anthropic: no route ${req.method} ${url.pathname}` } });
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  const actual = server.address().port;
  return {
    url: `http://127.0.0.1:${actual}`,
    port: actual,
    requests,
    unknown,
    /** The tool_use blocks answered for one Claude Code session, for one kind of
     * conversation (main or subagent). */
    toolUses(session, kind) {
      return requests.filter((r) => r.session === session && r.kind === kind).flatMap((r) => r.tool_uses || []);
    },
    close: () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(() => resolve()); }),
  };
}

// Standalone: `node fake-anthropic.mjs [port]` serves until interrupted, logging each call.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const fake = await startFakeAnthropic({ port: Number(process.argv[2] || 0), log: true });
  console.error(`fake Anthropic API on ${fake.url}`);
}
