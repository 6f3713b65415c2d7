// What a person can do to a run from any view: Stop. Stopping is final (a cancelled run
// never runs again), so the button asks once more on the spot ("Confirm stop", for 5 s)
// rather than in a modal. It PATCHes the run to `cancelled` with a reason; the agent is
// stopped at its next hook (a dispatched process is ended by its runner).

import { api } from './api.js';
import { el, runLabel } from './format.js';

export const STOP_REASON = 'Stopped from the dashboard';

/** A Stop button for `run`; `onStopped(run)` gets the run as the API answered. */
export function stopButton(run, onStopped = () => {}) {
  const label = runLabel(run);
  const button = el('button', { type: 'button', class: 'danger small stop', 'aria-label': `Stop ${label}`, text: 'Stop' });
  const error = el('span', { class: 'field-error', role: 'alert' });
  let armed = null;
  const disarm = () => {
    clearTimeout(armed);
    armed = null;
    button.textContent = 'Stop';
    button.setAttribute('aria-label', `Stop ${label}`);
    button.classList.remove('armed');
  };
  button.addEventListener('click', async () => {
    if (!armed) {
      button.textContent = 'Confirm stop';
      button.setAttribute('aria-label', `Confirm stop ${label}`);
      button.classList.add('armed');
      armed = setTimeout(disarm, 5000);
      return;
    }
    disarm();
    button.disabled = true;
    button.textContent = 'Stopping…';
    error.textContent = '';
    try {
      onStopped(await api('PATCH', `/api/runtime/agents/${run.id}`, { status: 'cancelled', error_message: STOP_REASON }));
    } catch (err) {
      error.textContent = ` ${err.message}`;
      button.disabled = false;
      button.textContent = 'Stop';
    }
  });
  return el('span', { class: 'stop-control' }, button, error);
}
