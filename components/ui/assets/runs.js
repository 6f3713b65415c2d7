// The runs table: one <tr> per run, newest activity first, filterable by status and
// searchable (q). Feed events update the one row they change (or insert it); a light
// refresh every 5 s picks up what the feed does not carry (cost and tokens of prompts).
// It shows the newest PAGE runs; "Show more" extends it a page at a time (the refresh then
// reads the longer list, up to the API's 1,000 a request, then page by page).

import { api } from './api.js';
import { onEvent } from './feed.js';
import { el, statusBadge, money, tokens, when, RUN_STATUSES, setHashParams } from './format.js';

const PAGE = 200;
const API_MAX_LIMIT = 1000;

const COLUMNS = ['Definition', 'Session', 'Status', 'Cost', 'Tokens', 'Last activity'];

function rowCells(run) {
  return [
    el('td', {}, el('a', { href: `#/run/${run.id}`, text: run.agent_name || run.orchestrator_agent_id })),
    el('td', { class: 'wrap' }, el('a', { href: `#/session/${encodeURIComponent(run.session_id)}`, text: run.session_id })),
    el('td', { 'data-col': 'status' }, statusBadge(run.status)),
    el('td', { class: 'num', 'data-col': 'cost' }, money(run.cost_usd)),
    el('td', { class: 'num', 'data-col': 'tokens' }, tokens(run)),
    el('td', { class: 'optional', 'data-col': 'activity' }, when(run.last_activity_at || run.started_at)),
  ];
}

/** Keep a table body in step with a set of runs, touching only rows that changed. */
export class RunRows {
  constructor(tbody, matches = () => true) {
    this.tbody = tbody;
    this.matches = matches;
    this.rows = new Map();
  }

  key(run) { return JSON.stringify([run.status, run.cost_usd, run.tokens_input, run.tokens_output, run.last_activity_at, run.agent_name]); }

  upsert(run, flash = false) {
    const existing = this.rows.get(run.id);
    if (!this.matches(run)) {
      if (existing) { existing.tr.remove(); this.rows.delete(run.id); }
      return;
    }
    const activity = run.last_activity_at || run.started_at;
    if (existing) {
      if (existing.key === this.key(run)) return;
      existing.tr.replaceChildren(...rowCells(run));
      existing.key = this.key(run);
      existing.activity = activity;
      if (flash) { existing.tr.classList.remove('flash'); void existing.tr.offsetWidth; existing.tr.classList.add('flash'); }
      this.place(existing);
      return;
    }
    const tr = el('tr', { 'data-run-id': run.id }, rowCells(run));
    const entry = { tr, key: this.key(run), activity };
    this.rows.set(run.id, entry);
    this.place(entry);
    if (flash) tr.classList.add('flash');
  }

  /** Newest activity first: move the row up to its place (the common case is the top). */
  place(entry) {
    let before = this.tbody.firstElementChild;
    while (before) {
      const other = this.rows.get(before.dataset.runId);
      if (before !== entry.tr && other && other.activity <= entry.activity) break;
      before = before.nextElementSibling;
    }
    if (before !== entry.tr) this.tbody.insertBefore(entry.tr, before);
  }

  /** A fresh list from the API: update what changed, drop what is gone. */
  replace(runs) {
    const seen = new Set();
    for (const run of runs) { seen.add(run.id); this.upsert(run); }
    for (const [id, entry] of this.rows) {
      if (!seen.has(id)) { entry.tr.remove(); this.rows.delete(id); }
    }
  }
}

export function renderRuns(main, params) {
  const status = params.get('status') || '';
  const q = params.get('q') || '';
  const statusSelect = el('select', { id: 'filter-status', name: 'status' },
    el('option', { value: '', text: 'all statuses' }),
    RUN_STATUSES.map((s) => el('option', { value: s, text: s, selected: s === status })));
  const search = el('input', { id: 'filter-q', name: 'q', type: 'search', value: q, placeholder: 'definition or session' });
  const tbody = el('tbody');
  const empty = el('p', { class: 'empty', text: 'No runs yet.' });
  const more = el('button', { type: 'button', class: 'secondary', id: 'runs-more', hidden: true, text: `Show ${PAGE} more` });
  let wanted = PAGE;
  const table = el('table', { 'aria-label': 'Runs' },
    el('thead', {}, el('tr', {}, COLUMNS.map((c, i) => el('th', { scope: 'col', class: [3, 4].includes(i) ? 'num' : i === 5 ? 'optional' : undefined, text: c })))),
    tbody);
  main.replaceChildren(
    el('h2', { text: 'Runs' }),
    el('div', { class: 'toolbar', role: 'search' },
      el('label', { for: 'filter-status' }, 'Status', statusSelect),
      el('label', { for: 'filter-q' }, 'Search', search)),
    el('div', { class: 'table-wrap' }, table),
    empty,
    el('p', {}, more));

  const needle = q.toLowerCase();
  const rows = new RunRows(tbody, (run) => (!status || run.status === status)
    && (!needle || (run.agent_name || '').toLowerCase().includes(needle) || run.session_id.toLowerCase().includes(needle)));
  const showEmpty = () => { empty.hidden = rows.rows.size > 0; };

  const load = async () => {
    const runs = [];
    while (runs.length < wanted) {
      const limit = Math.min(wanted - runs.length, API_MAX_LIMIT);
      const query = new URLSearchParams({ limit: String(limit), offset: String(runs.length) });
      if (status) query.set('status', status);
      if (q) query.set('q', q);
      const page = await api('GET', `/api/runtime/agents?${query}`);
      runs.push(...page);
      if (page.length < limit) break;
    }
    rows.replace(runs);
    // A full list may have more behind it.
    more.hidden = runs.length < wanted;
    showEmpty();
  };
  more.addEventListener('click', () => {
    wanted += PAGE;
    more.disabled = true;
    load().catch((err) => console.warn('runs', err)).finally(() => { more.disabled = false; });
  });
  const apply = () => {
    const next = new URLSearchParams();
    if (statusSelect.value) next.set('status', statusSelect.value);
    if (search.value.trim()) next.set('q', search.value.trim());
    setHashParams('runs', next);
    window.dispatchEvent(new HashChangeEvent('hashchange'));
  };
  statusSelect.addEventListener('change', apply);
  let typing;
  search.addEventListener('input', () => { clearTimeout(typing); typing = setTimeout(apply, 300); });

  const off = onEvent((event) => { rows.upsert(event.data, true); showEmpty(); });
  const timer = setInterval(() => load().catch(() => {}), 5000);
  load().catch((err) => console.warn('runs', err));
  return () => { off(); clearInterval(timer); };
}
