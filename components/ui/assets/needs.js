// "Needs you": the tool calls that wait for a person, across every session — what the
// agent wants to run (its tool and the command or path), which run and session asked and
// for how long it has waited — with Allow, Deny and "Allow for this session", one at a
// time or several at once (checkboxes). Decisions are POST /api/approvals/{id}/decision;
// a 409 means someone (or something) decided first: the row goes and the page says so.
// The list itself lives in approvals.js (the API, then the feed's approval_update events).

import { api } from './api.js';
import { el, shortId, runLabel } from './format.js';
import { pendingApprovals, onApprovals, refresh, take, drop, inputExcerpt } from './approvals.js';

/** run id → its label, read once per page for the Run column. */
const runLabels = new Map();

function runLink(runId) {
  const a = el('a', { href: `#/run/${runId}`, 'data-run-link': runId, text: runLabels.get(runId) || `run ${String(runId).slice(0, 8)}` });
  if (!runLabels.has(runId)) {
    runLabels.set(runId, null);
    api('GET', `/api/runtime/agents/${runId}`).then((run) => {
      runLabels.set(runId, runLabel(run));
      for (const link of document.querySelectorAll(`[data-run-link="${runId}"]`)) link.textContent = runLabel(run);
    }).catch(() => {});
  }
  return a;
}

/** "12 s", "3 min", "2 h 5 min": how long an approval has waited. */
export function age(iso, now = Date.now()) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

const PAST = { allowed: 'allowed', denied: 'denied', expired: 'expired (the agent stopped waiting)', cancelled: 'cancelled (its run ended)' };

/** A list of pending approvals with their buttons. `runId` limits it to one run's tree
 * (the run view's "Waiting for you"): its own approvals and those `within` accepts (the
 * runs under it); its own say "this run" in the Run column. Returns the node, `update()`
 * (to apply a changed `within`) and `dispose()`. */
export function approvalList({ runId = null, within = () => false, onCount = () => {} } = {}) {
  const filter = runId ? (a) => a.run_id === runId || within(a) : () => true;
  const tbody = el('tbody');
  const status = el('p', { class: 'decision-status', role: 'status', 'aria-live': 'polite' });
  const selectAll = el('input', { type: 'checkbox', 'aria-label': 'Select all' });
  const message = el('input', { type: 'text', class: 'decision-message', placeholder: 'optional: why, sent to the agent with Deny', 'aria-label': 'Message to the agent (with Deny)' });
  const allowSelected = el('button', { type: 'button', text: 'Allow selected', disabled: true });
  const denySelected = el('button', { type: 'button', class: 'danger', text: 'Deny selected', disabled: true });
  const empty = el('p', { class: 'empty', text: runId ? 'Nothing of this run waits for you.' : 'Nothing waits for you. Tool calls that need a decision appear here the moment an agent asks.' });
  const headers = ['', 'Tool', 'Input', 'Run', 'Session', 'Waiting', 'Decision'];
  const table = el('div', { class: 'table-wrap' }, el('table', { 'aria-label': 'Pending approvals', class: 'approvals' },
    el('thead', {}, el('tr', {}, headers.map((h, i) => el('th', { scope: 'col', class: h === 'Session' || h === 'Waiting' ? 'optional' : undefined }, i === 0 ? selectAll : h)))),
    tbody));
  const toolbar = el('div', { class: 'toolbar decision-bar' }, allowSelected, denySelected, el('label', {}, 'Message', message));
  const node = el('div', { class: 'approval-list' }, toolbar, table, empty, status);

  /** id → tr, kept while the approval waits (so a checked box stays checked). */
  const rows = new Map();
  const selected = () => [...rows.entries()].filter(([, tr]) => tr.querySelector('input[type=checkbox]').checked).map(([id]) => id);
  const updateBar = () => {
    const n = selected().length;
    allowSelected.disabled = n === 0;
    denySelected.disabled = n === 0;
    allowSelected.textContent = n > 1 ? `Allow ${n} selected` : 'Allow selected';
    denySelected.textContent = n > 1 ? `Deny ${n} selected` : 'Deny selected';
    selectAll.checked = n > 0 && n === rows.size;
    selectAll.indeterminate = n > 0 && n < rows.size;
  };

  /** One decision; resolves to what became of it: 'done' | 'conflict' | an Error. */
  const decide = async (approval, behavior, scope = 'once') => {
    const tr = rows.get(approval.id);
    if (tr) for (const b of tr.querySelectorAll('button')) b.disabled = true;
    const body = { behavior, scope };
    const text = message.value.trim();
    if (behavior === 'deny' && text) body.message = text;
    try {
      take(await api('POST', `/api/approvals/${approval.id}/decision`, body));
      return 'done';
    } catch (err) {
      if (err.status === 409) {
        // Decided elsewhere (another person, the session's rule, the run ending, the wait
        // running out): say what became of it when the API can tell.
        const said = err.details && typeof err.details.status === 'string' ? err.details.status : null;
        const now = said ? null : await api('GET', `/api/approvals/${approval.id}`).catch(() => null);
        if (now && now.status !== 'pending') take(now); else drop(approval.id);
        return { conflict: said || (now ? now.status : null) };
      }
      if (err.status === 404) { drop(approval.id); return { conflict: null }; }
      if (tr) for (const b of tr.querySelectorAll('button')) b.disabled = false;
      return err;
    }
  };
  const describe = (a) => `${a.tool_name}${inputExcerpt(a, 60) ? ` ${inputExcerpt(a, 60)}` : ''}`;
  const say = (text, problem = false) => { status.textContent = text; status.classList.toggle('field-error', problem); };

  const decideOne = async (approval, behavior, scope) => {
    const result = await decide(approval, behavior, scope);
    const verb = behavior === 'allow' ? (scope === 'session' ? 'Allowed for this session' : 'Allowed') : 'Denied';
    if (result === 'done') say(`${verb}: ${describe(approval)}`);
    else if (result instanceof Error) say(`Could not decide ${describe(approval)}: ${result.message}`, true);
    else say(`Already decided elsewhere: ${describe(approval)}${result.conflict ? ` was ${PAST[result.conflict] || result.conflict}` : ''}.`);
  };
  const decideSelected = async (behavior) => {
    const chosen = selected().map((id) => rows.get(id) && pendingApprovals().find((a) => a.id === id)).filter(Boolean);
    allowSelected.disabled = true;
    denySelected.disabled = true;
    const results = await Promise.all(chosen.map((a) => decide(a, behavior)));
    const done = results.filter((r) => r === 'done').length;
    const conflicts = results.filter((r) => r && r.conflict !== undefined).length;
    const errors = results.filter((r) => r instanceof Error);
    const parts = [`${behavior === 'allow' ? 'Allowed' : 'Denied'} ${done} of ${chosen.length}`];
    if (conflicts) parts.push(`${conflicts} already decided elsewhere`);
    if (errors.length) parts.push(`${errors.length} failed: ${errors[0].message}`);
    say(`${parts.join('; ')}.`, errors.length > 0);
    updateBar();
  };
  allowSelected.addEventListener('click', () => decideSelected('allow'));
  denySelected.addEventListener('click', () => decideSelected('deny'));
  selectAll.addEventListener('change', () => {
    for (const tr of rows.values()) tr.querySelector('input[type=checkbox]').checked = selectAll.checked;
    updateBar();
  });

  const row = (a) => {
    const excerpt = inputExcerpt(a);
    let full = '';
    try { full = JSON.stringify(a.tool_input, null, 2); } catch { /* shown as the excerpt */ }
    const label = describe(a);
    const box = el('input', { type: 'checkbox', 'aria-label': `Select ${label}`, onchange: updateBar });
    return el('tr', { 'data-approval-id': a.id },
      el('td', {}, box),
      el('td', { 'data-col': 'tool' }, el('strong', { text: a.tool_name || '?' }),
        a.rule ? el('span', { class: 'sub', text: ` asks by rule ${a.rule}` }) : null),
      el('td', { class: 'wrap', 'data-col': 'input' }, excerpt ? el('code', { class: 'excerpt', title: full, text: excerpt }) : el('span', { class: 'empty', text: '—' })),
      el('td', { 'data-col': 'run' }, runId && a.run_id === runId ? el('span', { class: 'sub', text: 'this run' })
        : a.run_id ? runLink(a.run_id) : el('span', { class: 'empty', text: '—' })),
      el('td', { class: 'optional', 'data-col': 'session' }, a.session_id ? el('a', { href: `#/session/${encodeURIComponent(a.session_id)}` }, shortId(a.session_id)) : '—'),
      el('td', { class: 'optional num', 'data-col': 'age' }, el('time', { datetime: a.created_at, title: a.created_at, text: age(a.created_at) })),
      el('td', { class: 'decision' },
        el('button', { type: 'button', 'aria-label': `Allow ${label}`, text: 'Allow', onclick: () => decideOne(a, 'allow', 'once') }), ' ',
        el('button', { type: 'button', class: 'secondary', 'aria-label': `Allow for this session ${label}`, title: 'Allow this and every later call of the same kind in this session, without asking again', text: 'Allow for this session', onclick: () => decideOne(a, 'allow', 'session') }), ' ',
        el('button', { type: 'button', class: 'danger', 'aria-label': `Deny ${label}`, text: 'Deny', onclick: () => decideOne(a, 'deny', 'once') })));
  };

  const show = () => {
    const list = pendingApprovals(filter);
    const ids = new Set(list.map((a) => a.id));
    for (const [id, tr] of rows) if (!ids.has(id)) { tr.remove(); rows.delete(id); }
    let cursor = tbody.firstElementChild;
    for (const a of list) {
      let tr = rows.get(a.id);
      if (!tr) { tr = row(a); rows.set(a.id, tr); }
      if (cursor === tr) cursor = cursor.nextElementSibling;
      else tbody.insertBefore(tr, cursor);
    }
    empty.hidden = list.length > 0;
    table.hidden = list.length === 0;
    toolbar.hidden = list.length < 2;
    updateBar();
    onCount(list.length);
  };
  const tick = () => {
    const now = Date.now();
    for (const t of tbody.querySelectorAll('time[datetime]')) t.textContent = age(t.getAttribute('datetime'), now);
  };
  const off = onApprovals(show);
  const timer = setInterval(tick, 1000);
  show();
  return { node, update: show, dispose: () => { off(); clearInterval(timer); } };
}

export function renderNeeds(main) {
  const list = approvalList();
  const error = el('p', { class: 'field-error', role: 'alert' });
  main.replaceChildren(
    el('h2', { text: 'Needs you' }),
    el('p', { class: 'meta', text: 'Tool calls an agent wants to make and waits for you to allow. The agent holds until you decide, or until its wait runs out (then it asks at its own terminal).' }),
    error,
    list.node);
  // The view opens on a fresh read; the feed keeps it current from there.
  refresh().then(() => { error.textContent = ''; }).catch((err) => { error.textContent = `Cannot read the approvals: ${err.message}`; });
  return list.dispose;
}
