// The runs table: one <tr> per run, what it is about (its title, else its definition's
// name) and the project folder it worked in. Newest activity first; a subagent run sits
// right under its parent's row, indented and marked "↳" (a parent not in the list leaves
// it a row of its own, with a "subagent of …" hint). Filterable by status and searchable
// (q). Feed events update the one row they change (or insert it) and move rows only where
// the order asks; a light refresh every 5 s picks up what the feed does not carry.
// It shows the newest PAGE runs; "Show more" extends it a page at a time (the refresh then
// reads the longer list, up to the API's 1,000 a request, then page by page).

import { api } from './api.js';
import { onEvent } from './feed.js';
import { el, statusBadge, money, tokens, when, runLabel, projectLabel, shortId, RUN_STATUSES, FINAL, setHashParams } from './format.js';
import { stopButton } from './actions.js';

const PAGE = 200;
const API_MAX_LIMIT = 1000;
/** Deeper nesting than this is drawn at this depth (a tree that deep is a data error). */
const MAX_DEPTH = 8;

const COLUMNS = ['Run', 'Project', 'Session', 'Status', 'Cost', 'Tokens', 'Last activity', 'Actions'];
const COLUMN_CLASS = { Project: 'optional', Session: 'optional', Cost: 'num', Tokens: 'num', 'Last activity': 'optional' };

/** The header row of a runs table (the runs list and a session's runs share it). */
export function runsHeader() {
  return el('thead', {}, el('tr', {}, COLUMNS.map((c) => (c === 'Actions'
    ? el('th', { scope: 'col' }, el('span', { class: 'visually-hidden', text: c }))
    : el('th', { scope: 'col', class: COLUMN_CLASS[c], text: c })))));
}

/** The run's own cell: "↳" and an indent for a subagent under its parent, the title (or
 * the definition's name) as the link, the definition's name beside a title, and for a
 * subagent whose parent is not listed, which run it belongs to. */
function labelCell(run, place) {
  const td = el('td', { class: 'label', 'data-col': 'run', style: place.depth ? `--depth: ${place.depth}` : undefined });
  if (place.depth) {
    td.append(el('span', { class: 'marker', 'aria-hidden': 'true', text: '↳' }), el('span', { class: 'visually-hidden', text: 'subagent: ' }));
  }
  td.append(el('a', { href: `#/run/${run.id}`, text: runLabel(run) }));
  if (run.title && run.agent_name) td.append(' ', el('span', { class: 'sub', text: run.agent_name }));
  if (place.orphanOf) {
    td.append(' ', el('span', { class: 'hint' }, '(subagent of ', el('a', { href: `#/run/${run.parent_agent_id}`, text: place.orphanOf }), ')'));
  }
  return td;
}

function rowCells(run, place, onStopped) {
  return [
    labelCell(run, place),
    el('td', { class: 'optional', 'data-col': 'project' }, projectLabel(run.project)),
    el('td', { class: 'optional', 'data-col': 'session' }, el('a', { href: `#/session/${encodeURIComponent(run.session_id)}` }, shortId(run.session_id))),
    el('td', { 'data-col': 'status' }, statusBadge(run.status)),
    el('td', { class: 'num', 'data-col': 'cost' }, money(run.cost_usd)),
    el('td', { class: 'num', 'data-col': 'tokens' }, tokens(run)),
    el('td', { class: 'optional', 'data-col': 'activity' }, when(run.last_activity_at || run.started_at)),
    // Stop on an active run; the row redraws from the answer (or the feed) once cancelled.
    el('td', { 'data-col': 'actions' }, FINAL.has(run.status) ? null : stopButton(run, onStopped)),
  ];
}

/** What a row shows of a run: a change to any of these redraws the row's cells. */
function runKey(run) {
  return [run.status, run.cost_usd, run.tokens_input, run.tokens_output, run.last_activity_at, run.agent_name,
    run.title ?? null, run.project ?? null, run.parent_agent_id ?? null, run.session_id];
}

const activityOf = (run) => run.last_activity_at || run.started_at || '';

/** Keep a table body in step with a set of runs, touching only rows that changed. */
export class RunRows {
  constructor(tbody, matches = () => true) {
    this.tbody = tbody;
    this.matches = matches;
    /** run id → { run, tr, shown }: `shown` is what the row's cells were drawn from. */
    this.rows = new Map();
    /** run id → label, for every run seen: names the parent in a "subagent of" hint. */
    this.labels = new Map();
  }

  /** Take a run as it now is (from the feed or a list); `arrange` false defers the
   * ordering to the caller (a whole list is arranged once). */
  upsert(run, flash = false, arrange = true) {
    this.labels.set(run.id, runLabel(run));
    const existing = this.rows.get(run.id);
    if (!this.matches(run)) {
      if (existing) {
        existing.tr.remove();
        this.rows.delete(run.id);
        if (arrange) this.arrange();
      }
      return;
    }
    if (existing) {
      if (JSON.stringify(runKey(existing.run)) === JSON.stringify(runKey(run))) return;
      existing.run = run;
      if (flash) { existing.tr.classList.remove('flash'); void existing.tr.offsetWidth; existing.tr.classList.add('flash'); }
    } else {
      const tr = el('tr', { 'data-run-id': run.id, class: flash ? 'flash' : undefined });
      this.rows.set(run.id, { run, tr, shown: null });
    }
    if (arrange) this.arrange();
  }

  /** The rows' order: top-level runs (no parent in the list) newest activity first — a
   * tree counts its newest subagent's activity — each followed by its subagents, oldest
   * first, at any depth. Redraws a row whose run or place changed and moves only the
   * rows that are out of place. */
  arrange() {
    const children = new Map();
    const tops = [];
    for (const entry of this.rows.values()) {
      const parent = entry.run.parent_agent_id;
      if (parent && parent !== entry.run.id && this.rows.has(parent)) {
        if (!children.has(parent)) children.set(parent, []);
        children.get(parent).push(entry);
      } else {
        tops.push(entry);
      }
    }
    // A tree's newest activity, memoised; a cycle (not possible through the API) ends the walk.
    const newest = new Map();
    const treeActivity = (entry, seen = new Set()) => {
      if (newest.has(entry.run.id)) return newest.get(entry.run.id);
      seen.add(entry.run.id);
      let latest = activityOf(entry.run);
      for (const child of children.get(entry.run.id) || []) {
        if (seen.has(child.run.id)) continue;
        const a = treeActivity(child, seen);
        if (a > latest) latest = a;
      }
      newest.set(entry.run.id, latest);
      return latest;
    };
    const byIdDesc = (a, b) => (a.run.id < b.run.id ? 1 : a.run.id > b.run.id ? -1 : 0);
    tops.sort((a, b) => {
      const x = treeActivity(a);
      const y = treeActivity(b);
      return x < y ? 1 : x > y ? -1 : byIdDesc(a, b);
    });
    const order = [];
    const placed = new Set();
    const visit = (entry, depth) => {
      if (placed.has(entry.run.id)) return;
      placed.add(entry.run.id);
      const parent = entry.run.parent_agent_id;
      const orphanOf = depth === 0 && parent && !this.rows.has(parent) ? (this.labels.get(parent) || `run ${parent.slice(0, 8)}`) : null;
      order.push({ entry, place: { depth: Math.min(depth, MAX_DEPTH), orphanOf } });
      const kids = (children.get(entry.run.id) || []).slice().sort((a, b) => {
        const x = a.run.started_at || '';
        const y = b.run.started_at || '';
        return x < y ? -1 : x > y ? 1 : -byIdDesc(a, b);
      });
      for (const kid of kids) visit(kid, depth + 1);
    };
    for (const entry of tops) visit(entry, 0);
    // Runs in a parent cycle are reachable from no top: list them at the top level.
    for (const entry of this.rows.values()) visit(entry, 0);

    let cursor = this.tbody.firstElementChild;
    for (const { entry, place } of order) {
      const shown = JSON.stringify([runKey(entry.run), place]);
      if (entry.shown !== shown) {
        entry.tr.replaceChildren(...rowCells(entry.run, place, (stopped) => this.upsert(stopped, true)));
        if (place.depth) entry.tr.dataset.parentId = entry.run.parent_agent_id;
        else delete entry.tr.dataset.parentId;
        entry.tr.classList.toggle('subagent', place.depth > 0);
        entry.shown = shown;
      }
      if (cursor === entry.tr) cursor = cursor.nextElementSibling;
      else this.tbody.insertBefore(entry.tr, cursor);
    }
  }

  /** A fresh list from the API: update what changed, drop what is gone. */
  replace(runs) {
    const seen = new Set();
    for (const run of runs) { seen.add(run.id); this.upsert(run, false, false); }
    for (const [id, entry] of this.rows) {
      if (!seen.has(id)) { entry.tr.remove(); this.rows.delete(id); }
    }
    this.arrange();
  }
}

export function renderRuns(main, params) {
  const status = params.get('status') || '';
  const q = params.get('q') || '';
  const statusSelect = el('select', { id: 'filter-status', name: 'status' },
    el('option', { value: '', text: 'all statuses' }),
    RUN_STATUSES.map((s) => el('option', { value: s, text: s, selected: s === status })));
  const search = el('input', { id: 'filter-q', name: 'q', type: 'search', value: q, placeholder: 'title, folder, definition or session' });
  const tbody = el('tbody');
  const empty = el('p', { class: 'empty', text: 'No runs yet.' });
  const more = el('button', { type: 'button', class: 'secondary', id: 'runs-more', hidden: true, text: `Show ${PAGE} more` });
  let wanted = PAGE;
  const table = el('table', { 'aria-label': 'Runs' }, runsHeader(), tbody);
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
    && (!needle || [run.agent_name, run.session_id, run.title, run.project].some((v) => (v || '').toLowerCase().includes(needle))));
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
