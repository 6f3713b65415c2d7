// Follows the live feed from the API itself: the Server-Sent Events of
// /api/events/stream, read with fetch so the token travels in a header (EventSource
// cannot send one). Resumes from the last cursor, so a reconnect delivers what was
// missed; the stream ends itself every ~50 s and is reopened at once. After a failure it
// retries with a backoff doubling from 250 ms, capped at 5 s.

import { authHeaders, ensureToken } from './api.js';

const listeners = new Set();
/** Listeners of other event types (`approval_update`…), by type. */
const typed = new Map();
const stateListeners = new Set();
let cursor = null;
let state = 'connecting';
let failures = 0;

/** `agent_update` events (a run as it now is). */
export function onEvent(fn) { listeners.add(fn); return () => listeners.delete(fn); }
/** Events of another type, e.g. `approval_update` (an approval as it now is). */
export function onFeed(type, fn) {
  if (!typed.has(type)) typed.set(type, new Set());
  typed.get(type).add(fn);
  return () => typed.get(type).delete(fn);
}
export function onState(fn) { stateListeners.add(fn); fn(state); return () => stateListeners.delete(fn); }
export function currentCursor() { return cursor; }

function setState(next) {
  if (next === state) return;
  state = next;
  for (const fn of stateListeners) fn(state);
}

function dispatch(event) {
  if (typeof event.cursor === 'number') cursor = event.cursor;
  const type = event.type || 'agent_update';
  for (const fn of type === 'agent_update' ? listeners : (typed.get(type) || [])) {
    try { fn(event); } catch (err) { console.warn('feed listener failed', err); }
  }
}

/** Parse SSE text into messages; returns the unparsed remainder. */
function parse(buffer, onMessage) {
  let index;
  while ((index = buffer.search(/\r?\n\r?\n/)) !== -1) {
    const block = buffer.slice(0, index);
    buffer = buffer.slice(index + (buffer[index] === '\r' ? 4 : 2));
    let data = '';
    let type = 'message';
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith(':')) continue;
      const [field, ...rest] = line.split(':');
      const value = rest.join(':').replace(/^ /, '');
      if (field === 'data') data += (data ? '\n' : '') + value;
      else if (field === 'event') type = value;
    }
    if (data) onMessage(type, data);
  }
  return buffer;
}

async function connectOnce() {
  const after = cursor === null ? '' : `?after=${cursor}`;
  const res = await fetch(`/api/events/stream${after}`, {
    headers: authHeaders({ Accept: 'text/event-stream' }),
    cache: 'no-store',
  });
  if (res.status === 401) {
    await ensureToken(401);
    return;
  }
  if (!res.ok || !res.body) throw new Error(`feed answered ${res.status}`);
  setState('live');
  failures = 0;
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer = parse(buffer + value, (type, data) => {
      // Every event moves the cursor; listeners get the types they asked for (a type this
      // page does not know is skipped).
      try {
        const event = JSON.parse(data);
        if (!event.type) event.type = type;
        dispatch(event);
      } catch (err) { console.warn('bad feed event', err); }
    });
  }
}

/** Start following from `from` (a snapshot's cursor). Never returns. */
export async function follow(from) {
  cursor = from;
  for (;;) {
    try {
      await connectOnce();
      // The stream ended by itself (it lasts ≤ 50 s): reopen at once from the cursor.
    } catch (err) {
      failures += 1;
      setState(failures >= 4 || !navigator.onLine ? 'offline' : 'reconnecting');
      const delay = Math.min(5000, 250 * 2 ** (failures - 1));
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}
