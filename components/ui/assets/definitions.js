// Agent definitions: list, create, edit, delete. A rejected form shows the API's message
// next to the field its `details.field` names (422 validation, 409 duplicate name).

import { api } from './api.js';
import { el, when, AGENT_TYPES } from './format.js';

const FIELDS = ['name', 'agent_type', 'description', 'capabilities', 'default_model'];

function field(id, label, control) {
  control.id = `def-${id}`;
  control.name = id;
  control.setAttribute('aria-describedby', `def-${id}-error`);
  return el('div', {},
    el('label', { for: control.id }, label, control),
    el('p', { class: 'field-error', id: `def-${id}-error`, role: 'alert' }));
}

export function renderDefinitions(main) {
  // No maxlength: a browser would silently cut a long name; the API's rule (and its
  // message, shown at the field) is the one that counts.
  const form = el('form', { class: 'definition', 'aria-label': 'Definition', novalidate: true },
    field('name', 'Name', el('input', { required: true })),
    field('agent_type', 'Type', el('select', {}, AGENT_TYPES.map((t) => el('option', { value: t, text: t })))),
    field('description', 'Description', el('input', {})),
    field('capabilities', 'Capabilities (comma-separated)', el('input', {})),
    field('default_model', 'Default model', el('input', {})),
    el('div', { class: 'actions' },
      el('button', { type: 'submit', id: 'def-submit', text: 'Create definition' }),
      el('button', { type: 'button', class: 'secondary', id: 'def-cancel', hidden: true, text: 'Cancel edit' })),
    el('p', { class: 'field-error', id: 'def-form-error', role: 'alert' }));
  const tbody = el('tbody');
  main.replaceChildren(el('h2', { text: 'Definitions' }), form,
    el('div', { class: 'table-wrap' }, el('table', { 'aria-label': 'Definitions' },
      el('thead', {}, el('tr', {}, ['Name', 'Type', 'Capabilities', 'Default model', 'Updated', 'Actions']
        .map((h) => el('th', { scope: 'col', text: h })))), tbody)));

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
    editing = def.id;
    control('name').value = def.name;
    control('agent_type').value = def.agent_type;
    control('description').value = def.description || '';
    control('capabilities').value = (Array.isArray(def.capabilities) ? def.capabilities : []).join(', ');
    control('default_model').value = def.default_model || '';
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
      el('td', {}, d.default_model || '—'), el('td', {}, when(d.updated_at)),
      el('td', {},
        el('button', { type: 'button', class: 'secondary', 'aria-label': `Edit ${d.name}`, text: 'Edit', onclick: () => edit(d) }), ' ',
        el('button', { type: 'button', class: 'danger', 'aria-label': `Delete ${d.name}`, text: 'Delete', onclick: async () => {
          if (!confirm(`Delete ${d.name} and all its runs?`)) return;
          await api('DELETE', `/api/agents/${d.id}`);
          if (editing === d.id) reset();
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
    try {
      if (editing) await api('PUT', `/api/agents/${editing}`, body);
      else await api('POST', '/api/agents', body);
      reset();
      await load();
    } catch (err) {
      const name = err.details && err.details.field;
      const target = FIELDS.includes(name) ? name : 'form';
      form.querySelector(`#def-${target}-error`).textContent = err.message;
      if (target !== 'form') { control(target).setAttribute('aria-invalid', 'true'); control(target).focus(); }
    }
  });
  load().catch((err) => console.warn('definitions', err));
  return () => {};
}
