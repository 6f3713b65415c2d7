// Telling a person who is elsewhere: browser notifications (the Notification API) when an
// approval arrives or a run fails while this tab is hidden. Permission is asked once, on a
// click of "Notify me" (browsers refuse a request no person asked for); the choice is
// remembered in localStorage, so the button does not come back in the next tab.

import { el } from './format.js';

const KEY = 'orchestrator.notify';

const supported = () => typeof window.Notification === 'function';
/** On: the person asked for notifications and the browser allows them. */
export const notificationsOn = () => supported() && Notification.permission === 'granted' && localStorage.getItem(KEY) === 'on';

/** The header's control: "Notify me" until asked, then what was decided (a click on
 * "Notifications on" turns them off again for this browser). */
export function notifyControl() {
  const button = el('button', { type: 'button', class: 'secondary small', id: 'notify-button' });
  const show = () => {
    if (!supported()) { button.hidden = true; return; }
    button.hidden = false;
    button.disabled = false;
    if (Notification.permission === 'denied') {
      button.textContent = 'Notifications blocked';
      button.title = 'This browser blocks notifications from this page; allow them in its site settings.';
      button.disabled = true;
    } else if (notificationsOn()) {
      button.textContent = 'Notifications on';
      button.title = 'You are told when an agent waits for you or a run fails while this tab is hidden. Click to turn off.';
      button.setAttribute('aria-pressed', 'true');
    } else {
      button.textContent = 'Notify me';
      button.title = 'Get a browser notification when an agent waits for you or a run fails while this tab is hidden.';
      button.setAttribute('aria-pressed', 'false');
    }
  };
  button.addEventListener('click', async () => {
    if (notificationsOn()) {
      localStorage.setItem(KEY, 'off');
    } else {
      const answer = Notification.permission === 'granted' ? 'granted' : await Notification.requestPermission();
      localStorage.setItem(KEY, answer === 'granted' ? 'on' : 'off');
    }
    show();
  });
  show();
  return button;
}

/** A notification when the tab is hidden and notifications are on; a click on it brings
 * the tab forward at `hash`. `tag` replaces an earlier notification about the same thing. */
export function notify(title, body, hash, tag) {
  if (!notificationsOn() || !document.hidden) return null;
  try {
    const n = new Notification(title, { body, tag, icon: '/ui/icon.svg' });
    n.onclick = () => {
      window.focus();
      if (hash) location.hash = hash;
      n.close();
    };
    return n;
  } catch (err) {
    console.warn('notification', err);
    return null;
  }
}
