// Pending approvals, kept for every view: read from the API when the page starts, when a
// view asks (the Needs you view on opening) and every 15 s, and kept in step by the feed's
// `approval_update` events (an approval as it now is: pending ones join, decided, expired
// or cancelled ones leave). The header's count, the tab title and the notifications
// follow this one list.

import { api } from './api.js';
import { onFeed } from './feed.js';

/** id → approval, for the approvals that wait. */
const pending = new Map();
/** Ids seen no longer pending: a list read before the decision cannot bring them back. */
const settled = new Set();
/** Ids the feed brought while a list was being read: that list may predate them. */
const arrivedDuringRead = new Set();
const listeners = new Set();
/** False until the first list arrived: approvals in it are not "new" (no notification). */
let loaded = false;

const oldestFirst = (a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : a.id < b.id ? -1 : 1);

/** The approvals that wait, the one waiting longest first. */
export function pendingApprovals(filter = () => true) {
  return [...pending.values()].filter(filter).sort(oldestFirst);
}

/** `fn(added)` after every change; `added` lists approvals that arrived since (none for a
 * removal or the first read). */
export function onApprovals(fn) { listeners.add(fn); return () => listeners.delete(fn); }

function changed(added = []) {
  for (const fn of listeners) {
    try { fn(added); } catch (err) { console.warn('approvals listener failed', err); }
  }
}

/** Take an approval as it now is (from the feed, or the answer to a decision). */
export function take(approval) {
  if (!approval || !approval.id) return;
  if (approval.status === 'pending') {
    if (settled.has(approval.id)) return;
    const fresh = !pending.has(approval.id);
    if (reading) arrivedDuringRead.add(approval.id);
    pending.set(approval.id, approval);
    changed(fresh && loaded ? [approval] : []);
  } else {
    settled.add(approval.id);
    if (pending.delete(approval.id)) changed();
  }
}

/** Forget one without knowing what became of it (a 409 whose approval cannot be read). */
export function drop(id) {
  settled.add(id);
  if (pending.delete(id)) changed();
}

let reading = null;
/** Re-read the pending approvals from the API (page by page, up to 1,000). */
export function refresh() {
  if (reading) return reading;
  arrivedDuringRead.clear();
  reading = (async () => {
    const list = [];
    for (let offset = 0; offset < 1000; offset += 200) {
      const page = await api('GET', `/api/approvals?status=pending&limit=200&offset=${offset}`);
      list.push(...page);
      if (page.length < 200) break;
    }
    const seen = new Set();
    const added = [];
    for (const a of list) {
      if (a.status !== 'pending' || settled.has(a.id)) continue;
      seen.add(a.id);
      if (!pending.has(a.id) && loaded) added.push(a);
      pending.set(a.id, a);
    }
    for (const id of [...pending.keys()]) if (!seen.has(id) && !arrivedDuringRead.has(id)) pending.delete(id);
    loaded = true;
    changed(added);
  })().finally(() => { reading = null; });
  return reading;
}

/** Start following: the feed's events, and a light re-read every 15 s. */
export function followApprovals() {
  onFeed('approval_update', (event) => take(event.data));
  setInterval(() => refresh().catch(() => {}), 15000);
}

/** The words a person needs to recognise a tool call: for Bash its command, for a file
 * tool its path, for a search its pattern; else the input as JSON. Cut to `max`. */
export function inputExcerpt(approval, max = 200) {
  const input = approval.tool_input;
  const cut = (s) => (s.length > max ? `${s.slice(0, max - 1)}…` : s);
  if (input === null || input === undefined) return '';
  if (typeof input !== 'object') return cut(String(input));
  const pick = (...keys) => keys.map((k) => input[k]).find((v) => typeof v === 'string' && v !== '');
  const tool = approval.tool_name || '';
  let text;
  if (/^(Bash|BashOutput|PowerShell)$/.test(tool)) text = pick('command');
  else if (/^(Read|Write|Edit|MultiEdit|NotebookEdit|NotebookRead)$/.test(tool)) text = pick('file_path', 'notebook_path', 'path');
  else if (/^(Grep|Glob)$/.test(tool)) text = [pick('pattern'), pick('path')].filter(Boolean).join(' in ');
  else if (tool === 'WebFetch') text = pick('url');
  else if (tool === 'WebSearch') text = pick('query');
  else if (tool === 'Task') text = pick('description', 'prompt');
  if (!text) text = pick('command', 'file_path', 'path', 'url', 'pattern', 'query', 'description');
  if (!text) {
    try { text = JSON.stringify(input); } catch { text = String(input); }
    if (text === '{}') text = '';
  }
  return cut(text.replace(/\s+/g, ' ').trim());
}
