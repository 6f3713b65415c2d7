// Sessions: each with what it is about (its first run's title, else its id), its project
// folder, its runs, cost and status counts (GET /api/runtime/sessions), and a session's runs
// as a table, subagents under their parents (GET /api/runtime/sessions/{id}). Cards are
// keyed by session id and redrawn only when what they show changed; re-read on feed events.

import { api } from './api.js';
import { onEvent } from './feed.js';
import { el, money, count, when, projectLabel, shortId, RUN_STATUSES } from './format.js';
import { RunRows, runsHeader } from './runs.js';

function statusCounts(byStatus) {
  const parts = RUN_STATUSES.filter((s) => byStatus && byStatus[s]).map((s) => `${byStatus[s]} ${s}`);
  return parts.length ? parts.join(', ') : 'no runs';
}

function card(s) {
  // Under a title, the folder and the session's id; under a bare id, the folder alone.
  const parts = [];
  if (s.project) parts.push(projectLabel(s.project));
  if (s.title) parts.push(el('span', {}, 'session ', shortId(s.session_id)));
  const about = parts.length ? el('p', { class: 'meta' }, parts.flatMap((part, i) => (i ? [' · ', part] : [part]))) : null;
  return el('article', { class: 'card', 'data-session-id': s.session_id },
    el('h3', { class: s.title ? 'titled' : undefined }, el('a', { href: `#/session/${encodeURIComponent(s.session_id)}`, text: s.title || s.session_id })),
    about,
    el('p', { class: 'meta' }, `${count(s.runs)} runs · ${count(s.active_runs)} active · ${money(s.cost_usd)} · ${count((s.tokens_input || 0) + (s.tokens_output || 0))} tokens`),
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
    // Keyed by session id: a card whose text did not change stays the same node.
    const existing = new Map([...list.children].map((c) => [c.dataset.sessionId, c]));
    let cursor = list.firstElementChild;
    for (const s of sessions) {
      const fresh = card(s);
      let node = existing.get(s.session_id);
      existing.delete(s.session_id);
      if (!node || node.outerHTML !== fresh.outerHTML) {
        if (node) {
          if (cursor === node) cursor = fresh;
          node.replaceWith(fresh);
        }
        node = fresh;
      }
      if (cursor === node) cursor = cursor.nextElementSibling;
      else list.insertBefore(node, cursor);
    }
    for (const gone of existing.values()) gone.remove();
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
  const about = el('p', { class: 'meta' });
  const meta = el('p', { class: 'meta' });
  const tbody = el('tbody');
  main.replaceChildren(
    el('p', {}, el('a', { href: '#/sessions', text: '← all sessions' })), title, about, meta,
    el('div', { class: 'table-wrap' }, el('table', { 'aria-label': 'Runs of the session' }, runsHeader(), tbody)));
  const rows = new RunRows(tbody, (run) => run.session_id === id);
  const load = async () => {
    const s = await api('GET', `/api/runtime/sessions/${encodeURIComponent(id)}`);
    title.textContent = s.title || `Session ${id}`;
    about.replaceChildren(...(s.project ? [projectLabel(s.project), ' · '] : []), `session ${id}`);
    about.hidden = !s.title && !s.project;
    meta.textContent = `${s.runs.length} runs · ${count(s.active_runs)} active · ${money(s.cost_usd)} · ${statusCounts(s.agents_by_status)}`;
    rows.replace(s.runs);
  };
  const off = onEvent((event) => rows.upsert(event.data, true));
  const timer = setInterval(() => load().catch(() => {}), 5000);
  load().catch((err) => { title.textContent = err.status === 404 ? `Session ${id} not found` : err.message; });
  return () => { off(); clearInterval(timer); };
}
