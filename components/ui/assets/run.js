// One run: what it is about (title, definition, project folder, session), its fields, its
// subagent runs, its prompts (status, model, tokens, cost, latency) and its logs (tool
// calls, state changes), following new ones live: the feed tells when the run or one of
// its subagents changes; prompts and logs are re-read every 2 s while the view is open.
// Model calls are listed under the user prompt they served (their `parent_prompt_id`),
// and a user prompt's row says how many calls it made and what they cost.

import { api } from './api.js';
import { onEvent } from './feed.js';
import { el, statusBadge, money, count, when, runLabel, projectLabel, shortId, FINAL } from './format.js';
import { stopButton } from './actions.js';
import { approvalList } from './needs.js';

/** A prompt's row; `calls` (its model calls, for a prompt that has any) fills the Calls
 * cell, `child` marks a model call listed under its user prompt. */
function promptRow(p, { calls = [], child = false } = {}) {
  // What was asked, else the prompt's name (a hook's user prompt is named after its event).
  const text = (p.prompt_text || p.prompt_name || '').slice(0, 160);
  const cost = calls.reduce((sum, c) => sum + (Number(c.cost_usd) || 0), 0);
  return el('tr', { 'data-prompt-id': p.id, 'data-parent-prompt-id': child ? p.parent_prompt_id : undefined, class: child ? 'model-call' : undefined },
    el('td', { class: 'wrap label', style: child ? '--depth: 1' : undefined, title: p.prompt_text && p.prompt_name ? p.prompt_name : undefined },
      child ? [el('span', { class: 'marker', 'aria-hidden': 'true', text: '↳' }), el('span', { class: 'visually-hidden', text: 'model call: ' })] : null,
      text || el('span', { class: 'empty', text: '—' })),
    el('td', { class: 'num', 'data-col': 'calls' }, calls.length ? `${count(calls.length)} ${calls.length === 1 ? 'call' : 'calls'} · ${money(cost)}` : ''),
    el('td', {}, statusBadge(p.status)),
    el('td', {}, p.model_used || '—'),
    el('td', { class: 'num' }, count(p.tokens_input)),
    el('td', { class: 'num' }, count(p.tokens_output)),
    el('td', { class: 'num' }, money(p.cost_usd)),
    el('td', { class: 'num' }, p.latency_ms == null ? '—' : `${count(p.latency_ms)} ms`),
    el('td', { class: 'optional' }, p.prompt_type),
    el('td', { class: 'optional' }, when(p.created_at)));
}

/** The prompts in the order a person reads them: top-level prompts as the API lists them
 * (newest first), each followed by its model calls, oldest first. A call whose user prompt
 * is not loaded stays at the top level. */
function promptRows(prompts) {
  const ids = new Set(prompts.map((p) => p.id));
  const calls = new Map();
  for (const p of prompts) {
    const parent = p.parent_prompt_id;
    if (parent && parent !== p.id && ids.has(parent)) {
      if (!calls.has(parent)) calls.set(parent, []);
      calls.get(parent).push(p);
    }
  }
  const oldestFirst = (a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : a.id < b.id ? -1 : 1);
  const rows = [];
  for (const p of prompts) {
    if (p.parent_prompt_id && p.parent_prompt_id !== p.id && ids.has(p.parent_prompt_id)) continue;
    const mine = (calls.get(p.id) || []).sort(oldestFirst);
    rows.push({ key: p.id, tr: promptRow(p, { calls: mine }) });
    for (const c of mine) rows.push({ key: c.id, tr: promptRow(c, { child: true }) });
  }
  return rows;
}

function logRow(l) {
  let detail = '';
  if (l.log_type === 'state_change' && l.details && typeof l.details === 'object') {
    detail = `${l.details.from ?? '∅'} → ${l.details.to ?? '?'}`;
  } else if (l.details && typeof l.details === 'object' && l.details.tool_name) {
    detail = l.details.tool_name;
  }
  return el('tr', { 'data-log-id': l.id },
    el('td', {}, when(l.created_at)),
    el('td', {}, l.log_level ?? ''),
    el('td', {}, l.log_type ?? ''),
    el('td', { class: 'wrap' }, l.message ?? ''),
    el('td', { class: 'wrap' }, detail));
}

/** A run under this one as one list item: its link, status and cost, indented by its
 * depth below the viewed run (1: a child). */
function subagentItem(run, depth = 1) {
  return el('li', { 'data-run-id': run.id, 'data-depth': depth, style: depth > 1 ? `--depth: ${depth - 1}` : undefined },
    el('a', { href: `#/run/${run.id}`, text: runLabel(run) }), ' ',
    statusBadge(run.status), ' ',
    el('span', { class: 'meta', 'data-col': 'cost', text: money(run.cost_usd) }));
}

/** A table; the columns at `numeric` align right, those at `optional` give way on a phone. */
function table(label, headers, tbody, numeric = [], optional = []) {
  const cls = (i) => (numeric.includes(i) ? 'num' : optional.includes(i) ? 'optional' : undefined);
  return el('div', { class: 'table-wrap' }, el('table', { 'aria-label': label },
    el('thead', {}, el('tr', {}, headers.map((h, i) => el('th', { scope: 'col', class: cls(i), text: h })))), tbody));
}

/** Keep a container's keyed children in step with `rows` ([{key, tr}] in order): a row
 * whose markup is unchanged stays the same node, a changed one is replaced, rows are
 * moved only where the order asks, rows no longer listed go. */
function sync(container, rows, attr) {
  const existing = new Map([...container.children].map((node) => [node.getAttribute(attr), node]));
  let cursor = container.firstElementChild;
  for (const { key, tr } of rows) {
    let node = existing.get(String(key));
    existing.delete(String(key));
    if (!node || node.outerHTML !== tr.outerHTML) {
      if (node) {
        if (cursor === node) cursor = tr;
        node.replaceWith(tr);
      }
      node = tr;
    }
    if (cursor === node) cursor = cursor.nextElementSibling;
    else container.insertBefore(node, cursor);
  }
  for (const gone of existing.values()) gone.remove();
}

export function renderRun(main, id) {
  /** run id → run, for the runs under this one (see showSubagents). */
  const children = new Map();
  const summary = el('dl', { class: 'totals', 'aria-label': 'Run' });
  const prompts = el('tbody');
  const logs = el('tbody');
  const subagents = el('ul', { class: 'subagents', 'aria-label': 'Subagents' });
  const treeHeading = el('h2', { text: 'Subagents' });
  const treeTotals = el('p', { class: 'meta tree-totals' });
  const subagentSection = el('section', { hidden: true }, treeHeading, treeTotals, subagents);
  const dispatch = dispatchPart(id);
  const title = el('h2', { class: 'run-title', text: 'Run' });
  const about = el('p', { class: 'meta run-about' });
  const actions = el('div', { class: 'run-actions' });
  // This run's tool calls that wait for a person, with the same buttons as Needs you.
  const waitingSection = el('section', { class: 'needs', 'aria-label': 'Waiting for you', hidden: true }, el('h2', { text: 'Waiting for you' }));
  // (`children` — the runs under this one — is filled below; `update()` re-applies it.)
  const waiting = approvalList({ runId: id, within: (a) => children.has(a.run_id), onCount: (n) => { waitingSection.hidden = n === 0; } });
  waitingSection.append(waiting.node);
  const followup = followupForm(id);
  main.replaceChildren(
    el('p', {}, el('a', { href: '#/runs', text: '← all runs' })),
    title, about, actions, summary,
    waitingSection,
    dispatch.node,
    followup.node,
    subagentSection,
    el('section', {}, el('h2', { text: 'Prompts' }),
      table('Prompts', ['Prompt', 'Calls', 'Status', 'Model', 'In', 'Out', 'Cost', 'Latency', 'Type', 'Created'], prompts, [1, 4, 5, 6, 7], [8, 9])),
    el('section', {}, el('h2', { text: 'Logs' }),
      table('Logs', ['Time', 'Level', 'Type', 'Message', 'Detail'], logs)));

  // The parent's label, once read, for the "subagent of …" line.
  const parentLabels = new Map();
  // The definition's policy (for the budget), read once; a run's own config.policy wins.
  let definition;
  let lastRun = null;
  const budgetOf = (run) => {
    const own = run.config && typeof run.config === 'object' && run.config.policy;
    const policy = own && typeof own === 'object' ? own : definition && definition.policy;
    const max = policy && policy.max_cost_usd;
    return typeof max === 'number' && Number.isFinite(max) ? max : null;
  };
  // The tree's roll-up comes with the single-run GET only: a feed event keeps the last one.
  let tree = null;
  const showRun = (run) => {
    if (run.tree) tree = run.tree;
    lastRun = run;
    dispatch.show(run);
    title.textContent = runLabel(run);
    const active = !FINAL.has(run.status);
    if (active && !actions.querySelector('.stop-control')) actions.replaceChildren(stopButton(run, showRun));
    if (!active) actions.replaceChildren();
    followup.show(active);
    // Only what is known is shown: a missing definition, project or parent leaves no
    // "null" and no dangling separator behind.
    const parts = [];
    if (run.parent_agent_id) {
      const parent = parentLabels.get(run.parent_agent_id);
      const label = (parent && parent.label) || `run ${run.parent_agent_id.slice(0, 8)}`;
      // Under a dispatched run, a session its process started; else a subagent.
      const relation = parent && parent.dispatched ? '↳ started by ' : '↳ subagent of ';
      parts.push(el('span', { 'data-parent': '' }, relation, el('a', { href: `#/run/${run.parent_agent_id}`, 'data-parent-link': '', text: label })));
    }
    if (run.title && run.agent_name) parts.push(el('span', { text: run.agent_type ? `${run.agent_name} (${run.agent_type})` : run.agent_name }));
    if (run.project) parts.push(el('span', {}, 'in ', projectLabel(run.project)));
    parts.push(el('span', {}, 'session ', el('a', { href: `#/session/${encodeURIComponent(run.session_id)}` }, shortId(run.session_id))));
    about.replaceChildren(...parts.flatMap((part, i) => (i ? [' · ', part] : [part])));
    const item = (k, v) => el('div', {}, el('dt', { text: k }), el('dd', {}, v));
    // replaceChildren would print a null as the text "null": absent items are left out.
    const items = [
      item('status', statusBadge(run.status)), item('cost', money(run.cost_usd)),
      item('tokens in', count(run.tokens_input)), item('tokens out', count(run.tokens_output)),
      item('started', when(run.started_at)), item('last activity', when(run.last_activity_at)),
    ];
    const budget = budgetOf(run);
    if (budget !== null) {
      const spent = Number(run.cost_usd) || 0;
      const share = budget > 0 ? Math.min(100, Math.round((spent / budget) * 100)) : 100;
      items.splice(2, 0, el('div', { 'data-col': 'budget' }, el('dt', { text: 'budget' }),
        el('dd', {}, `${money(spent)} of ${money(budget)} (${share}%) `,
          el('meter', { min: 0, max: budget, value: Math.min(spent, budget), high: budget * 0.8, optimum: 0, 'aria-label': 'Spend against budget' }))));
    }
    if (run.completed_at) items.push(item('ended', when(run.completed_at)));
    if (run.error_message) items.push(item('error', run.error_message));
    summary.replaceChildren(...items);
    if (run.parent_agent_id && !parentLabels.has(run.parent_agent_id)) {
      parentLabels.set(run.parent_agent_id, null);
      api('GET', `/api/runtime/agents/${run.parent_agent_id}`).then((parent) => {
        parentLabels.set(parent.id, { label: runLabel(parent), dispatched: Boolean(parent.dispatch) });
        if (lastRun) showRun(lastRun);
      }).catch(() => {});
    }
  };

  // Runs under this one, keyed by id (its subagents; for a dispatched run, the Claude Code
  // sessions its process started and their subagents): drawn as a tree, depth first,
  // oldest first at each level. The feed's updates of one are applied to its item alone.
  const showSubagents = () => {
    const byParent = new Map();
    for (const r of children.values()) {
      if (!byParent.has(r.parent_agent_id)) byParent.set(r.parent_agent_id, []);
      byParent.get(r.parent_agent_id).push(r);
    }
    const ordered = [];
    const seen = new Set();
    const visit = (parent, depth) => {
      const kids = (byParent.get(parent) || []).sort((a, b) => (a.started_at < b.started_at ? -1 : a.started_at > b.started_at ? 1 : 0));
      for (const k of kids) {
        if (seen.has(k.id) || depth > 8) continue;
        seen.add(k.id);
        ordered.push({ key: k.id, tr: subagentItem(k, depth) });
        visit(k.id, depth + 1);
      }
    };
    visit(id, 1);
    sync(subagents, ordered, 'data-run-id');
    waiting.update();
    const dispatched = Boolean(lastRun && lastRun.dispatch);
    treeHeading.textContent = dispatched ? 'Runs it started' : 'Subagents';
    subagents.setAttribute('aria-label', dispatched ? 'Runs it started' : 'Subagents');
    if (tree && tree.runs > 1) {
      treeTotals.textContent = `The whole tree: ${count(tree.runs)} runs · ${money(tree.cost_usd)} · ${count((tree.tokens_input || 0) + (tree.tokens_output || 0))} tokens`;
      treeTotals.hidden = false;
    } else {
      treeTotals.hidden = true;
    }
    subagentSection.hidden = ordered.length === 0;
  };
  const inTree = (run) => {
    // A run belongs when its parent chain reaches this run through runs already known.
    for (let p = run.parent_agent_id, hops = 0; p && hops < 10; hops += 1) {
      if (p === id) return true;
      const up = children.get(p);
      p = up ? up.parent_agent_id : null;
    }
    return false;
  };

  let session = null;
  const load = async () => {
    const [run, ps, ls] = await Promise.all([
      api('GET', `/api/runtime/agents/${id}`),
      api('GET', `/api/runtime/prompts?agent_id=${id}&limit=200`),
      api('GET', `/api/runtime/logs?agent_id=${id}&limit=200`),
    ]);
    if (definition === undefined && run.orchestrator_agent_id) {
      definition = null;
      api('GET', `/api/agents/${run.orchestrator_agent_id}`).then((d) => { definition = d; if (lastRun) showRun(lastRun); }).catch(() => {});
    }
    showRun(run);
    session = run.session_id;
    sync(prompts, promptRows(ps), 'data-prompt-id');
    // A dispatched process's output lines have their own place (Output), not among the logs.
    const isOutput = (l) => l.details && typeof l.details === 'object' && l.details.output;
    sync(logs, ls.filter((l) => !isOutput(l)).map((l) => ({ key: l.id, tr: logRow(l) })), 'data-log-id');
    const runs = await api('GET', `/api/runtime/agents?session_id=${encodeURIComponent(session)}&limit=1000`);
    // A dispatched run's children have sessions of their own: they are among the runs
    // started since it was queued (the list has no parent filter).
    if (run.dispatch && run.dispatch.queued_at) {
      runs.push(...await api('GET', `/api/runtime/agents?since=${encodeURIComponent(run.dispatch.queued_at)}&limit=1000`));
    }
    children.clear();
    // Depth by depth: a grandchild is known once its parent is.
    for (let added = true; added;) {
      added = false;
      for (const r of runs) {
        if (r.id !== id && !children.has(r.id) && (r.parent_agent_id === id || children.has(r.parent_agent_id))) {
          children.set(r.id, r);
          added = true;
        }
      }
    }
    showSubagents();
    await dispatch.load(run, true);
  };
  // A burst of feed events (cost updates come one per model call) is one re-read.
  let pending = null;
  const later = () => { clearTimeout(pending); pending = setTimeout(() => load().catch(() => {}), 150); };
  const off = onEvent((event) => {
    const run = event.data;
    if (!run) return;
    if (run.id === id) { showRun(run); later(); }
    if (run.parent_agent_id === id || children.has(run.id) || inTree(run)) {
      children.set(run.id, run);
      showSubagents();
      // A change below moves the roll-up: re-read the run.
      later();
    }
  });
  const timer = setInterval(() => load().catch(() => {}), 2000);
  // A running process's output is read every 0.7 s (the 2 s re-read covers the rest).
  const fast = setInterval(() => { if (lastRun) dispatch.load(lastRun, true).catch(() => {}); }, 700);
  load().catch((err) => {
    title.textContent = err.status === 404 ? 'Run not found' : `Run: ${err.message}`;
  });
  return () => { off(); clearInterval(timer); clearInterval(fast); clearTimeout(pending); waiting.dispose(); };
}

/** A dispatched run's part of the view: where its process is (queued, running on which
 * runner, exited with which code, lost), the command it runs, and its output (the run's
 * `performance` logs that carry `details.output`), following live while it runs. Hidden for
 * a run that was not dispatched. */
function dispatchPart(id) {
  const state = el('dl', { class: 'totals dispatch-state', 'aria-label': 'Dispatch' });
  const argv = el('p', { class: 'meta' });
  const output = el('pre', { class: 'output', id: 'run-output', 'aria-label': 'Output', tabindex: 0 });
  const outputNote = el('p', { class: 'meta', id: 'run-output-note' });
  const node = el('section', { class: 'dispatch-section', hidden: true },
    el('h2', { text: 'Process' }), state, argv,
    el('h3', { text: 'Output' }), output, outputNote);
  /** log id → line, and the lines in `seq` order as drawn. */
  const lines = new Map();
  let drawn = [];
  let dispatch = null;
  let reading = false;
  let finalRead = false;
  const item = (k, v) => el('div', { 'data-col': k }, el('dt', { text: k }), el('dd', {}, v));
  const draw = () => {
    const ordered = [...lines.values()].sort((a, b) => a.seq - b.seq || (a.id < b.id ? -1 : 1));
    const atBottom = output.scrollTop + output.clientHeight >= output.scrollHeight - 4;
    const prefix = drawn.length <= ordered.length && drawn.every((l, i) => ordered[i].id === l.id);
    // stderr in its own colour; the server's own lines (`marker`: output cut at the cap,
    // lines lost while the runner was away) set apart.
    const line = (l) => el('span', { class: l.stream === 'stderr' || l.stream === 'marker' ? l.stream : undefined, 'data-seq': l.seq, text: l.text });
    if (prefix) output.append(...ordered.slice(drawn.length).map(line));
    else output.replaceChildren(...ordered.map(line));
    drawn = ordered;
    if (atBottom) output.scrollTop = output.scrollHeight;
    const waitingForRunner = dispatch && dispatch.state === 'queued';
    outputNote.textContent = !ordered.length ? (waitingForRunner ? 'Waiting for a runner to start it…' : 'No output yet.')
      : ordered[0].seq > 1 ? `From line ${count(ordered[0].seq)}: earlier lines are in the run's logs.` : '';
  };
  return {
    node,
    show(run) {
      dispatch = run.dispatch || null;
      node.hidden = !dispatch;
      if (!dispatch) return;
      const items = [item('state', el('span', { class: 'status', 'data-status': dispatch.state === 'running' ? 'executing' : dispatch.state, text: dispatch.state }))];
      if (dispatch.runner) items.push(item('runner', dispatch.runner));
      if (dispatch.exit_code !== null && dispatch.exit_code !== undefined) items.push(item('exit code', String(dispatch.exit_code)));
      if (dispatch.input) items.push(item('input', dispatch.input));
      items.push(item('queued', when(dispatch.queued_at)));
      if (dispatch.started_at) items.push(item('started', when(dispatch.started_at)));
      if (dispatch.ended_at) items.push(item('ended', when(dispatch.ended_at)));
      state.replaceChildren(...items);
      argv.replaceChildren(...(Array.isArray(dispatch.argv) ? [el('code', { text: dispatch.argv.join(' ') })] : []));
      if (!lines.size) draw();
    },
    /** Read the output; `onlyLive` skips it unless the process is queued or running (and
     * once after it ended, for its last lines). */
    async load(run, onlyLive = false) {
      const d = run.dispatch;
      if (!d || reading) return;
      const live = d.state === 'queued' || d.state === 'running';
      if (onlyLive && !live && finalRead) return;
      reading = true;
      try {
        // Output lines are the run's `performance` logs that carry `details.output` (see
        // docs/dispatch.md); nothing else is read here.
        // The logs API has no "after" filter: the newest 200 each time, the newest 1,000 on
        // the first read or when 200 did not reach back to the lines already shown.
        const read = (limit) => api('GET', `/api/runtime/logs?agent_id=${id}&log_type=performance&limit=${limit}`);
        const known = drawn.length ? drawn[drawn.length - 1].seq : 0;
        let logs = await read(lines.size ? 200 : 1000);
        const seqs = logs.map((l) => Number(l.details && l.details.seq) || 0).filter((n) => n > 0);
        if (lines.size && logs.length === 200 && seqs.length && Math.min(...seqs) > known + 1) logs = await read(1000);
        for (const l of logs) {
          const out = l.details && typeof l.details === 'object' ? l.details.output : null;
          if (!out) continue;
          lines.set(l.id, { id: l.id, seq: Number(l.details.seq) || 0, stream: out, text: l.message ?? '' });
        }
        if (!live) finalRead = true;
        draw();
      } finally {
        reading = false;
      }
    },
  };
}

/** The follow-up box: text sent to the agent (POST …/messages), delivered at its next
 * Stop as its next instruction. Shown while the run is active; a 409 (the run ended in
 * between) shows the API's message. */
function followupForm(id) {
  const text = el('textarea', { id: 'followup-text', name: 'text', rows: 2, placeholder: 'What the agent should do next' });
  const send = el('button', { type: 'submit', text: 'Send follow-up' });
  const status = el('p', { class: 'meta', id: 'followup-status', role: 'status', 'aria-live': 'polite' });
  const error = el('p', { class: 'field-error', id: 'followup-error', role: 'alert' });
  const form = el('form', { class: 'followup' },
    el('label', { for: 'followup-text' }, 'Follow-up', text),
    el('p', { class: 'hint', text: 'Delivered when the agent next stops, as its next instruction (a headless agent waits for it only if its policy holds at stop).' }),
    el('div', { class: 'actions' }, send), status, error);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    status.textContent = '';
    if (!text.value.trim()) { error.textContent = 'Write the follow-up first.'; text.focus(); return; }
    send.disabled = true;
    try {
      await api('POST', `/api/runtime/agents/${id}/messages`, { text: text.value });
      text.value = '';
      status.textContent = 'Sent. It reaches the agent at its next stop; it shows under Prompts as a follow-up.';
    } catch (err) {
      error.textContent = err.message;
    } finally {
      send.disabled = false;
    }
  });
  const node = el('section', { class: 'followup-section' }, form);
  let shown = null;
  return {
    node,
    show(active) {
      // A 409's message stays readable after the run turned final.
      if (shown === active) return;
      shown = active;
      node.hidden = !active && !error.textContent;
    },
  };
}
