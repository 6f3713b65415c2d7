// Small formatting and DOM helpers shared by the views.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

/** A status as text (never colour alone): the badge carries the word and a symbol. */
export function statusBadge(status) {
  return el('span', { class: 'status', 'data-status': status, text: status });
}

export function money(usd) {
  const n = Number(usd) || 0;
  return `$${n.toFixed(n !== 0 && n < 0.01 ? 4 : 2)}`;
}

export function count(n) {
  return (Number(n) || 0).toLocaleString('en-US');
}

/** What a run is about, for a person: its title, else its definition's name. */
export function runLabel(run) {
  return run.title || run.agent_name || run.orchestrator_agent_id || run.id;
}

/** The last segment of a folder path ("/home/dev/shop/" → "shop"), for a short label. */
export function folderName(path) {
  const parts = String(path).split(/[\\/]+/).filter(Boolean);
  return parts.length ? parts[parts.length - 1] : String(path);
}

/** A project folder: its last segment, the whole path as a title; a dash when unknown. */
export function projectLabel(path) {
  if (!path) return el('span', { class: 'empty', text: '—' });
  return el('span', { class: 'project', title: path, text: folderName(path) });
}

/** A long id (a UUID) cut to its first 8 characters, the whole id as a title. */
export function shortId(id) {
  const s = String(id);
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-/i.test(s)) return el('span', { text: s });
  return el('span', { title: s, text: `${s.slice(0, 8)}…` });
}

export function tokens(run) {
  return count((run.tokens_input || 0) + (run.tokens_output || 0));
}

/** A time as "HH:MM:SS" today, else "YYYY-MM-DD HH:MM", with the exact time as a title. */
export function when(iso) {
  if (!iso) return el('span', { class: 'empty', text: '—' });
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return el('span', { text: iso });
  const today = new Date().toDateString() === d.toDateString();
  const text = today ? d.toLocaleTimeString('en-GB') : `${d.toISOString().slice(0, 10)} ${d.toTimeString().slice(0, 5)}`;
  return el('time', { datetime: iso, title: iso, text });
}

export const RUN_STATUSES = ['initializing', 'planning', 'executing', 'reviewing', 'completed', 'failed', 'cancelled'];
export const FINAL = new Set(['completed', 'failed', 'cancelled']);
export const AGENT_TYPES = ['planner', 'builder', 'reviewer', 'tester', 'orchestrator', 'utility'];

/** The view's state lives in the hash: `#/view/arg?key=value`. */
export function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, query = ''] = raw.split('?');
  const [view = 'runs', ...rest] = path.split('/');
  return { view: view || 'runs', arg: rest.map(decodeURIComponent).join('/'), params: new URLSearchParams(query) };
}

export function setHashParams(view, params) {
  const q = params.toString();
  history.replaceState(null, '', `#/${view}${q ? `?${q}` : ''}`);
}
