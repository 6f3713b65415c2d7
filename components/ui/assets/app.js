// The dashboard's entry: the header (totals of /api/runtime/stats and the connection
// indicator), the views by URL hash, and the live feed every view listens to.

import { api } from './api.js';
import { follow, onEvent, onState } from './feed.js';
import { el, money, count, parseHash, RUN_STATUSES } from './format.js';
import { renderRuns } from './runs.js';
import { renderRun } from './run.js';
import { renderSessions, renderSession } from './sessions.js';
import { renderDefinitions } from './definitions.js';

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
  if (view === 'run' && arg) leave = renderRun(main, arg);
  else if (view === 'sessions') leave = renderSessions(main);
  else if (view === 'session' && arg) leave = renderSession(main, arg);
  else if (view === 'definitions') leave = renderDefinitions(main);
  else leave = renderRuns(main, params);
}

async function start() {
  const indicator = document.getElementById('connection');
  onState((state) => { indicator.dataset.state = state; indicator.textContent = STATE_TEXT[state] || state; });
  // The snapshot's cursor first: whatever changes after it arrives through the feed.
  const snapshot = await api('GET', '/api/events/snapshot');
  window.addEventListener('hashchange', route);
  route();
  onEvent(refreshStats);
  refreshStats();
  setInterval(refreshStats, 5000);
  follow(snapshot.cursor);
}

start().catch((err) => {
  document.getElementById('main').replaceChildren(el('p', { class: 'field-error', role: 'alert', text: `Cannot reach the API: ${err.message}` }));
});
