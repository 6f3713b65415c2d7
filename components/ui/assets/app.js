// The dashboard's entry: the header (totals of /api/runtime/stats, the connection
// indicator, the Needs you count and banner, the Notify me button), the views by URL
// hash, and the live feed every view listens to. The tab title counts what waits for a
// person ("(2) Needs you — Agent orchestrator"); opened with nothing in the URL while
// something waits, the page starts on Needs you.

import { api } from './api.js';
import { follow, onEvent, onState } from './feed.js';
import { el, money, count, parseHash, runLabel, RUN_STATUSES } from './format.js';
import { renderRuns } from './runs.js';
import { renderRun } from './run.js';
import { renderSessions, renderSession } from './sessions.js';
import { renderDefinitions } from './definitions.js';
import { renderNeeds } from './needs.js';
import { followApprovals, onApprovals, pendingApprovals, refresh as refreshApprovals, inputExcerpt } from './approvals.js';
import { notifyControl, notify } from './notify.js';

const TITLE = 'Agent orchestrator';

const STATE_TEXT = { connecting: 'connecting…', live: 'live', reconnecting: 'reconnecting…', offline: 'offline — retrying' };

function showTotals(stats) {
  const item = (label, value) => el('div', {}, el('dt', { text: label }), el('dd', { text: value }));
  document.getElementById('totals').replaceChildren(
    ...RUN_STATUSES.filter((s) => stats.agents_by_status[s]).map((s) => item(s, count(stats.agents_by_status[s]))),
    item('cost', money(stats.cost_usd)),
    item('tokens', count(stats.tokens_input + stats.tokens_output)));
}

let statsTimer = null;
function refreshStats() {
  clearTimeout(statsTimer);
  statsTimer = setTimeout(() => api('GET', '/api/runtime/stats').then(showTotals).catch(() => {}), 150);
}

let leave = () => {};
function route() {
  leave();
  const { view, arg, params } = parseHash();
  const main = document.getElementById('main');
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.view === view || (view === 'run' && a.dataset.view === 'runs') || (view === 'session' && a.dataset.view === 'sessions')) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (view === 'needs') leave = renderNeeds(main);
  else if (view === 'run' && arg) leave = renderRun(main, arg);
  else if (view === 'sessions') leave = renderSessions(main);
  else if (view === 'session' && arg) leave = renderSession(main, arg);
  else if (view === 'definitions') leave = renderDefinitions(main);
  else leave = renderRuns(main, params);
  showNeeds();
}

/** The count in the nav, the banner on other views and the tab title. */
function showNeeds() {
  const n = pendingApprovals().length;
  const badge = document.getElementById('needs-count');
  badge.hidden = n === 0;
  badge.textContent = n ? String(n) : '';
  document.getElementById('needs-link').classList.toggle('waiting', n > 0);
  document.getElementById('needs-link').setAttribute('aria-label', n ? `Needs you: ${n} waiting` : 'Needs you');
  document.title = n ? `(${n}) Needs you — ${TITLE}` : TITLE;
  const banner = document.getElementById('needs-banner');
  const onNeeds = parseHash().view === 'needs';
  banner.hidden = n === 0 || onNeeds;
  if (!banner.hidden) {
    banner.replaceChildren(`${n === 1 ? 'An agent waits' : `${n} tool calls wait`} for your decision. `,
      el('a', { href: '#/needs', text: 'Open Needs you' }));
  }
}

/** Tell a person elsewhere: a new approval, a run that failed (once per run). */
function notifyOnEvents() {
  onApprovals((added) => {
    showNeeds();
    if (added.length === 1) {
      const a = added[0];
      notify(`An agent waits for you: ${a.tool_name}`, inputExcerpt(a, 120), '#/needs', 'approvals');
    } else if (added.length > 1) {
      notify(`${added.length} tool calls wait for you`, added.map((a) => a.tool_name).join(', '), '#/needs', 'approvals');
    }
  });
  const failed = new Set();
  onEvent((event) => {
    const run = event.data;
    if (!run || run.status !== 'failed' || failed.has(run.id)) return;
    failed.add(run.id);
    notify(`Run failed: ${runLabel(run)}`, run.error_message || 'failed', `#/run/${run.id}`, `run-${run.id}`);
  });
}

async function start() {
  const indicator = document.getElementById('connection');
  onState((state) => { indicator.dataset.state = state; indicator.textContent = STATE_TEXT[state] || state; });
  // The snapshot's cursor first: whatever changes after it arrives through the feed.
  const snapshot = await api('GET', '/api/events/snapshot');
  document.getElementById('notify-slot').replaceWith(notifyControl());
  followApprovals();
  notifyOnEvents();
  // What waits decides the first view: opened bare, the page shows Needs you first.
  await refreshApprovals().catch((err) => console.warn('approvals', err));
  if (!location.hash.replace(/^#\/?/, '') && pendingApprovals().length) history.replaceState(null, '', '#/needs');
  window.addEventListener('hashchange', route);
  route();
  // After a time offline the feed resumes from its cursor; a re-read covers the rest.
  onState((state) => { if (state === 'live') refreshApprovals().catch(() => {}); });
  onEvent(refreshStats);
  refreshStats();
  setInterval(refreshStats, 5000);
  follow(snapshot.cursor);
}

start().catch((err) => {
  document.getElementById('main').replaceChildren(el('p', { class: 'field-error', role: 'alert', text: `Cannot reach the API: ${err.message}` }));
});
