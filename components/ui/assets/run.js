// One run: what it is about (title, definition, project folder, session), its fields, its
// subagent runs, its prompts (status, model, tokens, cost, latency) and its logs (tool
// calls, state changes), following new ones live: the feed tells when the run or one of
// its subagents changes; prompts and logs are re-read every 2 s while the view is open.
// Model calls are listed under the user prompt they served (their `parent_prompt_id`),
// and a user prompt's row says how many calls it made and what they cost.

import { api } from './api.js';
import { onEvent } from './feed.js';
import { el, statusBadge, money, count, when, runLabel, projectLabel, shortId } from './format.js';

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

/** A subagent run as one list item: its link, status and cost. */
function subagentItem(run) {
  return el('li', { 'data-run-id': run.id },
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
  const summary = el('dl', { class: 'totals', 'aria-label': 'Run' });
  const prompts = el('tbody');
  const logs = el('tbody');
  const subagents = el('ul', { class: 'subagents', 'aria-label': 'Subagents' });
  const subagentSection = el('section', { hidden: true }, el('h2', { text: 'Subagents' }), subagents);
  const title = el('h2', { class: 'run-title', text: 'Run' });
  const about = el('p', { class: 'meta run-about' });
  main.replaceChildren(
    el('p', {}, el('a', { href: '#/runs', text: '← all runs' })),
    title, about, summary,
    subagentSection,
    el('section', {}, el('h2', { text: 'Prompts' }),
      table('Prompts', ['Prompt', 'Calls', 'Status', 'Model', 'In', 'Out', 'Cost', 'Latency', 'Type', 'Created'], prompts, [1, 4, 5, 6, 7], [8, 9])),
    el('section', {}, el('h2', { text: 'Logs' }),
      table('Logs', ['Time', 'Level', 'Type', 'Message', 'Detail'], logs)));

  // The parent's label, once read, for the "subagent of …" line.
  const parentLabels = new Map();
  const showRun = (run) => {
    title.textContent = runLabel(run);
    // Only what is known is shown: a missing definition, project or parent leaves no
    // "null" and no dangling separator behind.
    const parts = [];
    if (run.parent_agent_id) {
      const label = parentLabels.get(run.parent_agent_id) || `run ${run.parent_agent_id.slice(0, 8)}`;
      parts.push(el('span', {}, '↳ subagent of ', el('a', { href: `#/run/${run.parent_agent_id}`, 'data-parent-link': '', text: label })));
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
    if (run.completed_at) items.push(item('ended', when(run.completed_at)));
    if (run.error_message) items.push(item('error', run.error_message));
    summary.replaceChildren(...items);
    if (run.parent_agent_id && !parentLabels.has(run.parent_agent_id)) {
      parentLabels.set(run.parent_agent_id, null);
      api('GET', `/api/runtime/agents/${run.parent_agent_id}`).then((parent) => {
        parentLabels.set(parent.id, runLabel(parent));
        const link = about.querySelector('[data-parent-link]');
        if (link) link.textContent = runLabel(parent);
      }).catch(() => {});
    }
  };

  // Subagent runs, keyed by id; the feed's updates of one are applied to its item alone.
  const children = new Map();
  const showSubagents = () => {
    const ordered = [...children.values()].sort((a, b) => (a.started_at < b.started_at ? -1 : a.started_at > b.started_at ? 1 : 0));
    sync(subagents, ordered.map((run) => ({ key: run.id, tr: subagentItem(run) })), 'data-run-id');
    subagentSection.hidden = children.size === 0;
  };

  let session = null;
  const load = async () => {
    const [run, ps, ls] = await Promise.all([
      api('GET', `/api/runtime/agents/${id}`),
      api('GET', `/api/runtime/prompts?agent_id=${id}&limit=200`),
      api('GET', `/api/runtime/logs?agent_id=${id}&limit=200`),
    ]);
    showRun(run);
    session = run.session_id;
    sync(prompts, promptRows(ps), 'data-prompt-id');
    sync(logs, ls.map((l) => ({ key: l.id, tr: logRow(l) })), 'data-log-id');
    const runs = await api('GET', `/api/runtime/agents?session_id=${encodeURIComponent(session)}&limit=1000`);
    children.clear();
    for (const r of runs) if (r.parent_agent_id === id) children.set(r.id, r);
    showSubagents();
  };
  // A burst of feed events (cost updates come one per model call) is one re-read.
  let pending = null;
  const later = () => { clearTimeout(pending); pending = setTimeout(() => load().catch(() => {}), 150); };
  const off = onEvent((event) => {
    const run = event.data;
    if (!run) return;
    if (run.id === id) { showRun(run); later(); }
    if (run.parent_agent_id === id) { children.set(run.id, run); showSubagents(); }
  });
  const timer = setInterval(() => load().catch(() => {}), 2000);
  load().catch((err) => {
    title.textContent = err.status === 404 ? 'Run not found' : `Run: ${err.message}`;
  });
  return () => { off(); clearInterval(timer); clearTimeout(pending); };
}
