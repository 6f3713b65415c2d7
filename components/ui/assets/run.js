// One run: its fields, its prompts (status, model, tokens, cost, latency) and its logs
// (tool calls, state changes), following new ones live: the feed tells when the run
// changes; prompts and logs are re-read every 2 s while the view is open.

import { api } from './api.js';
import { onEvent } from './feed.js';
import { el, statusBadge, money, count, when } from './format.js';

function promptRow(p) {
  return el('tr', { 'data-prompt-id': p.id },
    el('td', {}, when(p.created_at)),
    el('td', {}, p.prompt_type),
    el('td', {}, statusBadge(p.status)),
    el('td', {}, p.model_used || '—'),
    el('td', { class: 'num' }, count(p.tokens_input)),
    el('td', { class: 'num' }, count(p.tokens_output)),
    el('td', { class: 'num' }, money(p.cost_usd)),
    el('td', { class: 'num' }, p.latency_ms == null ? '—' : `${count(p.latency_ms)} ms`),
    el('td', { class: 'wrap' }, (p.prompt_name || p.prompt_text || '').slice(0, 160)));
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
    el('td', {}, l.log_level),
    el('td', {}, l.log_type || ''),
    el('td', { class: 'wrap' }, l.message),
    el('td', { class: 'wrap' }, detail));
}

function table(label, headers, tbody) {
  return el('div', { class: 'table-wrap' }, el('table', { 'aria-label': label },
    el('thead', {}, el('tr', {}, headers.map((h) => el('th', { scope: 'col', text: h })))), tbody));
}

export function renderRun(main, id) {
  const summary = el('dl', { class: 'totals', 'aria-label': 'Run' });
  const prompts = el('tbody');
  const logs = el('tbody');
  const title = el('h2', { text: 'Run' });
  main.replaceChildren(
    el('p', {}, el('a', { href: '#/runs', text: '← all runs' })),
    title, summary,
    el('section', {}, el('h2', { text: 'Prompts' }),
      table('Prompts', ['Created', 'Type', 'Status', 'Model', 'In', 'Out', 'Cost', 'Latency', 'Prompt'], prompts)),
    el('section', {}, el('h2', { text: 'Logs' }),
      table('Logs', ['Time', 'Level', 'Type', 'Message', 'Detail'], logs)));

  const showRun = (run) => {
    title.textContent = `${run.agent_name || 'Run'} · ${run.session_id}`;
    const item = (k, v) => el('div', {}, el('dt', { text: k }), el('dd', {}, v));
    summary.replaceChildren(
      item('status', statusBadge(run.status)), item('cost', money(run.cost_usd)),
      item('tokens in', count(run.tokens_input)), item('tokens out', count(run.tokens_output)),
      item('started', when(run.started_at)), item('last activity', when(run.last_activity_at)),
      run.error_message ? item('error', run.error_message) : null);
  };
  // Rows are keyed by id: new ones are added, changed ones replaced, none re-rendered twice.
  const sync = (tbody, items, attr, render) => {
    const existing = new Map([...tbody.children].map((tr) => [tr.getAttribute(attr), tr]));
    let previous = null;
    for (const item of items) {
      const key = String(item.id);
      const fresh = render(item);
      const old = existing.get(key);
      if (old) {
        if (old.textContent !== fresh.textContent) old.replaceWith(fresh); else { previous = old; continue; }
      } else {
        tbody.insertBefore(fresh, previous ? previous.nextSibling : tbody.firstChild);
      }
      previous = fresh;
    }
  };
  const load = async () => {
    const [run, ps, ls] = await Promise.all([
      api('GET', `/api/runtime/agents/${id}`),
      api('GET', `/api/runtime/prompts?agent_id=${id}&limit=200`),
      api('GET', `/api/runtime/logs?agent_id=${id}&limit=200`),
    ]);
    showRun(run);
    sync(prompts, ps, 'data-prompt-id', promptRow);
    sync(logs, ls, 'data-log-id', logRow);
  };
  const off = onEvent((event) => { if (event.data.id === id) { showRun(event.data); load().catch(() => {}); } });
  const timer = setInterval(() => load().catch(() => {}), 2000);
  load().catch((err) => {
    title.textContent = err.status === 404 ? 'Run not found' : `Run: ${err.message}`;
  });
  return () => { off(); clearInterval(timer); };
}
