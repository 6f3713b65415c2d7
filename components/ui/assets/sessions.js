// Sessions: each with its runs, cost and status counts (GET /api/runtime/sessions), and a
// session's runs as a table (GET /api/runtime/sessions/{id}). Re-read on feed events.

import { api } from './api.js';
import { onEvent } from './feed.js';
import { el, money, count, when, RUN_STATUSES } from './format.js';
import { RunRows } from './runs.js';

function statusCounts(byStatus) {
  const parts = RUN_STATUSES.filter((s) => byStatus && byStatus[s]).map((s) => `${byStatus[s]} ${s}`);
  return parts.length ? parts.join(', ') : 'no runs';
}

function card(s) {
  return el('article', { class: 'card', 'data-session-id': s.session_id },
    el('h3', {}, el('a', { href: `#/session/${encodeURIComponent(s.session_id)}`, text: s.session_id })),
    el('p', { class: 'meta' }, `${count(s.runs)} runs · ${count(s.active_runs)} active · ${money(s.cost_usd)} · ${count(s.tokens_input + s.tokens_output)} tokens`),
    el('p', { class: 'meta' }, statusCounts(s.agents_by_status)),
    el('p', { class: 'meta' }, 'last activity ', when(s.last_activity_at)));
}

export function renderSessions(main) {
  const list = el('div', { class: 'cards' });
  const empty = el('p', { class: 'empty', text: 'No sessions yet.' });
  main.replaceChildren(el('h2', { text: 'Sessions' }), list, empty);
  let pending = null;
  const load = async () => {
    const sessions = await api('GET', '/api/runtime/sessions?limit=100');
    list.replaceChildren(...sessions.map(card));
    empty.hidden = sessions.length > 0;
  };
  const later = () => { clearTimeout(pending); pending = setTimeout(() => load().catch(() => {}), 200); };
  const off = onEvent(later);
  const timer = setInterval(later, 5000);
  load().catch((err) => console.warn('sessions', err));
  return () => { off(); clearInterval(timer); clearTimeout(pending); };
}

export function renderSession(main, id) {
  const title = el('h2', { text: `Session ${id}` });
  const meta = el('p', { class: 'meta' });
  const tbody = el('tbody');
  main.replaceChildren(
    el('p', {}, el('a', { href: '#/sessions', text: '← all sessions' })), title, meta,
    el('div', { class: 'table-wrap' }, el('table', { 'aria-label': 'Runs of the session' },
      el('thead', {}, el('tr', {}, ['Definition', 'Session', 'Status', 'Cost', 'Tokens', 'Last activity']
        .map((h) => el('th', { scope: 'col', text: h })))), tbody)));
  const rows = new RunRows(tbody, (run) => run.session_id === id);
  const load = async () => {
    const s = await api('GET', `/api/runtime/sessions/${encodeURIComponent(id)}`);
    meta.textContent = `${s.runs.length} runs · ${count(s.active_runs)} active · ${money(s.cost_usd)} · ${statusCounts(s.agents_by_status)}`;
    rows.replace(s.runs);
  };
  const off = onEvent((event) => rows.upsert(event.data, true));
  const timer = setInterval(() => load().catch(() => {}), 5000);
  load().catch((err) => { title.textContent = err.status === 404 ? `Session ${id} not found` : err.message; });
  return () => { off(); clearInterval(timer); };
}
