// Agent definitions: list, create, edit, delete, and Run (for a definition with a
// command). A rejected form shows the API's message next to the field its
// `details.field` names (422 validation, 409 duplicate name); a policy rule that does not
// parse is shown at the rule list that holds it.
//
// The form's extra parts, both optional:
// - Policy (`policy`): a budget (`max_cost_usd`), tool rules to deny and to ask a person
//   about (Claude Code's permission-rule syntax, one rule per line) and how long a Stop
//   waits for a follow-up (`hold_on_stop_secs`).
// - Dispatch (`command`, `working_dir`, `timeout_secs`): what a runner starts for Run.
//   The command is written one argument per line (no shell quoting to get wrong); text
//   that starts with `[` is read as a JSON array instead.

import { api } from './api.js';
import { el, when, money, AGENT_TYPES } from './format.js';

const FIELDS = ['name', 'agent_type', 'description', 'capabilities', 'default_model',
  'policy_max_cost_usd', 'policy_deny_tools', 'policy_ask_tools', 'policy_hold_on_stop_secs', 'policy',
  'command', 'working_dir', 'timeout_secs'];

function field(id, label, control, hint) {
  control.id = `def-${id}`;
  control.name = id;
  control.setAttribute('aria-describedby', hint ? `def-${id}-error def-${id}-hint` : `def-${id}-error`);
  return el('div', { class: control.tagName === 'TEXTAREA' ? 'wide' : undefined },
    el('label', { for: control.id }, label, control),
    hint ? el('p', { class: 'hint', id: `def-${id}-hint`, text: hint }) : null,
    el('p', { class: 'field-error', id: `def-${id}-error`, role: 'alert' }));
}

/** The form field an API error names: `policy.deny_tools[1]` → `policy_deny_tools`,
 * `command[0]` → `command`; a policy error without a known part → the policy's own line. */
export function fieldOf(name) {
  if (!name) return 'form';
  const plain = String(name).replace(/\[\d+\]/g, '').replace(/\.\d+(?=\.|$)/g, '').replace(/\./g, '_');
  if (FIELDS.includes(plain)) return plain;
  if (plain.startsWith('policy')) return 'policy';
  if (plain.startsWith('command') || plain.startsWith('dispatch')) return 'command';
  return 'form';
}

const lines = (text) => text.split('\n').map((s) => s.trim()).filter(Boolean);

/** The command field's text as an argv: one argument per line, or a JSON array. A JSON
 * text that does not parse is sent as it is, so the API's message names the problem. */
export function parseCommand(text) {
  const t = text.trim();
  if (!t) return null;
  if (t.startsWith('[')) {
    try { return JSON.parse(t); } catch { return t; }
  }
  return text.split('\n').map((s) => s.replace(/\r$/, '')).filter((s) => s.trim() !== '');
}

/** A number field's value: absent when blank, the typed text when it is not a number (the
 * API's 422 then says why). */
function number(control) {
  const raw = control.value.trim();
  if (raw === '') return undefined;
  const n = Number(raw);
  return Number.isFinite(n) ? n : raw;
}

/** What a definition's policy says, in a few words for its row. */
function policySummary(policy) {
  if (!policy || typeof policy !== 'object') return '';
  const parts = [];
  if (typeof policy.max_cost_usd === 'number') parts.push(`budget ${money(policy.max_cost_usd)}`);
  if (Array.isArray(policy.deny_tools) && policy.deny_tools.length) parts.push(`deny ${policy.deny_tools.join(', ')}`);
  if (Array.isArray(policy.ask_tools) && policy.ask_tools.length) parts.push(`ask ${policy.ask_tools.join(', ')}`);
  if (policy.hold_on_stop_secs) parts.push(`hold ${policy.hold_on_stop_secs} s at stop`);
  return parts.join(' · ');
}

const hasCommand = (d) => Array.isArray(d.command) && d.command.length > 0;

export function renderDefinitions(main) {
  // No maxlength: a browser would silently cut a long name; the API's rule (and its
  // message, shown at the field) is the one that counts.
  const form = el('form', { class: 'definition', 'aria-label': 'Definition', novalidate: true },
    field('name', 'Name', el('input', { required: true })),
    field('agent_type', 'Type', el('select', {}, AGENT_TYPES.map((t) => el('option', { value: t, text: t })))),
    field('description', 'Description', el('input', {})),
    field('capabilities', 'Capabilities (comma-separated)', el('input', {})),
    field('default_model', 'Default model', el('input', {})),
    el('fieldset', { class: 'policy' },
      el('legend', { text: 'Policy' }),
      el('p', { class: 'hint', text: 'Rules in Claude Code\'s permission syntax, one per line: Bash, Bash(git push:*), Write(src/**), WebFetch.' }),
      field('policy_max_cost_usd', 'Budget (USD)', el('input', { type: 'number', min: 0, step: 'any', inputmode: 'decimal' }),
        'The agent is stopped once its run has cost this much.'),
      field('policy_hold_on_stop_secs', 'Wait at stop (seconds)', el('input', { type: 'number', min: 0, step: 1, inputmode: 'numeric' }),
        'How long a Stop waits for a follow-up before the agent may stop.'),
      field('policy_deny_tools', 'Deny tools', el('textarea', { rows: 3, placeholder: 'Bash(rm -rf:*)\nWebFetch' })),
      field('policy_ask_tools', 'Ask me before', el('textarea', { rows: 3, placeholder: 'Bash(git push:*)\nWrite' })),
      el('p', { class: 'field-error', id: 'def-policy-error', role: 'alert' })),
    el('fieldset', { class: 'dispatch' },
      el('legend', { text: 'Run on a runner' }),
      field('command', 'Command', el('textarea', { rows: 3, placeholder: 'uv\nrun\nadws/adw_plan_build.py\n{input}' }),
        'One argument per line (or a JSON array). {input}, {run_id} and {session_id} are replaced when it runs. A runner starts only programs it allows.'),
      field('working_dir', 'Working folder', el('input', { placeholder: '/srv/app' })),
      field('timeout_secs', 'Time limit (seconds)', el('input', { type: 'number', min: 1, step: 1, inputmode: 'numeric' }))),
    el('div', { class: 'actions' },
      el('button', { type: 'submit', id: 'def-submit', text: 'Create definition' }),
      el('button', { type: 'button', class: 'secondary', id: 'def-cancel', hidden: true, text: 'Cancel edit' })),
    el('p', { class: 'field-error', id: 'def-form-error', role: 'alert' }));
  const tbody = el('tbody');
  const runDialog = dispatchDialog();
  main.replaceChildren(el('h2', { text: 'Definitions' }), form,
    el('div', { class: 'table-wrap' }, el('table', { 'aria-label': 'Definitions' },
      el('thead', {}, el('tr', {}, ['Name', 'Type', 'Capabilities', 'Default model', 'Policy', 'Command', 'Updated', 'Actions']
        .map((h) => el('th', { scope: 'col', text: h })))), tbody)),
    runDialog.node);

  let editing = null;
  const control = (name) => form.elements.namedItem(name);
  const clearErrors = () => {
    for (const f of [...FIELDS, 'form']) {
      const p = form.querySelector(`#def-${f}-error`);
      if (p) p.textContent = '';
      const c = control(f);
      if (c && c.removeAttribute) c.removeAttribute('aria-invalid');
    }
  };
  const reset = () => {
    form.reset();
    editing = null;
    form.querySelector('#def-submit').textContent = 'Create definition';
    form.querySelector('#def-cancel').hidden = true;
    clearErrors();
  };
  const edit = (def) => {
    reset();
    editing = def;
    control('name').value = def.name;
    control('agent_type').value = def.agent_type;
    control('description').value = def.description || '';
    control('capabilities').value = (Array.isArray(def.capabilities) ? def.capabilities : []).join(', ');
    control('default_model').value = def.default_model || '';
    const policy = def.policy && typeof def.policy === 'object' ? def.policy : {};
    control('policy_max_cost_usd').value = policy.max_cost_usd ?? '';
    control('policy_hold_on_stop_secs').value = policy.hold_on_stop_secs ?? '';
    control('policy_deny_tools').value = (policy.deny_tools || []).join('\n');
    control('policy_ask_tools').value = (policy.ask_tools || []).join('\n');
    control('command').value = Array.isArray(def.command) ? def.command.join('\n') : '';
    control('working_dir').value = def.working_dir || '';
    control('timeout_secs').value = def.timeout_secs ?? '';
    form.querySelector('#def-submit').textContent = 'Save changes';
    form.querySelector('#def-cancel').hidden = false;
    control('name').focus();
  };
  form.querySelector('#def-cancel').addEventListener('click', reset);

  const load = async () => {
    const defs = await api('GET', '/api/agents?limit=1000');
    tbody.replaceChildren(...defs.map((d) => el('tr', { 'data-definition-id': d.id },
      el('td', {}, d.name), el('td', {}, d.agent_type),
      el('td', { class: 'wrap' }, (Array.isArray(d.capabilities) ? d.capabilities : []).join(', ')),
      el('td', {}, d.default_model || '—'),
      el('td', { class: 'wrap', 'data-col': 'policy' }, policySummary(d.policy) || el('span', { class: 'empty', text: '—' })),
      el('td', { class: 'wrap', 'data-col': 'command' }, hasCommand(d) ? el('code', { text: d.command.join(' ') }) : el('span', { class: 'empty', text: '—' })),
      el('td', {}, when(d.updated_at)),
      el('td', {},
        hasCommand(d) ? [el('button', { type: 'button', 'aria-label': `Run ${d.name}`, text: 'Run', onclick: () => runDialog.open(d) }), ' '] : null,
        el('button', { type: 'button', class: 'secondary', 'aria-label': `Edit ${d.name}`, text: 'Edit', onclick: () => edit(d) }), ' ',
        el('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${d.name}`, text: 'Delete', onclick: async () => {
          if (!confirm(`Delete ${d.name} and all its runs?`)) return;
          await api('DELETE', `/api/agents/${d.id}`);
          if (editing && editing.id === d.id) reset();
          await load();
        } })))));
  };

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors();
    const text = (name) => control(name).value.trim();
    const body = {
      name: control('name').value,
      agent_type: text('agent_type'),
      description: text('description') || null,
      capabilities: text('capabilities') ? text('capabilities').split(',').map((s) => s.trim()).filter(Boolean) : [],
      default_model: text('default_model') || null,
    };
    // The newer fields are sent when filled in, or (as null) to clear what a definition
    // had; a definition without them is written as before.
    const had = (key) => editing && editing[key] !== undefined && editing[key] !== null;
    const policy = {};
    const max = number(control('policy_max_cost_usd'));
    if (max !== undefined) policy.max_cost_usd = max;
    const hold = number(control('policy_hold_on_stop_secs'));
    if (hold !== undefined) policy.hold_on_stop_secs = hold;
    if (lines(control('policy_deny_tools').value).length) policy.deny_tools = lines(control('policy_deny_tools').value);
    if (lines(control('policy_ask_tools').value).length) policy.ask_tools = lines(control('policy_ask_tools').value);
    if (Object.keys(policy).length) body.policy = policy;
    else if (had('policy')) body.policy = null;
    const command = parseCommand(control('command').value);
    if (command !== null) body.command = command;
    else if (had('command')) body.command = null;
    if (text('working_dir')) body.working_dir = text('working_dir');
    else if (had('working_dir')) body.working_dir = null;
    const timeout = number(control('timeout_secs'));
    if (timeout !== undefined) body.timeout_secs = timeout;
    else if (had('timeout_secs')) body.timeout_secs = null;
    try {
      if (editing) await api('PUT', `/api/agents/${editing.id}`, body);
      else await api('POST', '/api/agents', body);
      reset();
      await load();
    } catch (err) {
      const target = fieldOf(err.details && err.details.field);
      form.querySelector(`#def-${target}-error`).textContent = err.message;
      const c = target === 'form' || target === 'policy' ? null : control(target);
      if (c) { c.setAttribute('aria-invalid', 'true'); c.focus(); }
    }
  });
  load().catch((err) => console.warn('definitions', err));
  return () => { runDialog.close(); };
}

/** Run: the input for a definition's `{input}`, then POST /api/runtime/agents with
 * `dispatch`; the page goes to the new run, whose output follows live. */
function dispatchDialog() {
  const title = el('h2', { id: 'run-title', text: 'Run' });
  const command = el('p', { class: 'meta' });
  const input = el('textarea', { id: 'run-input', name: 'input', rows: 3 });
  const error = el('p', { class: 'field-error', id: 'run-error', role: 'alert' });
  const start = el('button', { type: 'submit', text: 'Start run' });
  const cancel = el('button', { type: 'button', class: 'secondary', text: 'Cancel' });
  const form = el('form', { method: 'dialog' }, title, command,
    el('label', { for: 'run-input' }, 'Input', input),
    el('p', { class: 'hint', text: 'Replaces {input} in the command (a task, an issue number…).' }),
    error, el('div', { class: 'actions' }, start, cancel));
  const node = el('dialog', { id: 'run-dialog', 'aria-labelledby': 'run-title' }, form);
  let def = null;
  cancel.addEventListener('click', () => node.close());
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    start.disabled = true;
    try {
      const run = await api('POST', '/api/runtime/agents', { orchestrator_agent_id: def.id, dispatch: { input: input.value } });
      node.close();
      location.hash = `#/run/${run.id}`;
    } catch (err) {
      error.textContent = err.message;
    } finally {
      start.disabled = false;
    }
  });
  return {
    node,
    open(d) {
      def = d;
      title.textContent = `Run ${d.name}`;
      command.replaceChildren(el('code', { text: d.command.join(' ') }), d.working_dir ? ` in ${d.working_dir}` : '');
      input.value = '';
      error.textContent = '';
      node.showModal();
      input.focus();
    },
    close() { if (node.open) node.close(); },
  };
}
