// lib.js: what every page of the console shares. The API client, the DOM
// builder (text only: data from the network never becomes HTML), times,
// tables, paging, dialogs and the live event feed.

// ----- session and API -----

export const session = { role: '', tokenName: '', tokenID: '', csrf: '', expires: '' };

const ranks = { viewer: 1, operator: 2, admin: 3 };

// can tells whether the signed-in role may do what needs role. The server
// decides anyway; this only keeps actions a role cannot take off the page.
export function can(role) {
  return (ranks[session.role] || 0) >= (ranks[role] || 99);
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// api calls the operator API and returns the decoded answer (null for
// 204). An error answer throws ApiError carrying the server's message as it
// is; a 401 also tells the app that the session ended.
export async function api(method, path, body, opts = {}) {
  const init = { method, headers: {}, credentials: 'same-origin', cache: 'no-store' };
  if (method !== 'GET' && method !== 'HEAD') init.headers['X-CSRF-Token'] = session.csrf;
  if (body instanceof Blob || body instanceof ArrayBuffer) {
    init.body = body;
    init.headers['Content-Type'] = 'application/octet-stream';
  } else if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (opts.signal) init.signal = opts.signal;
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'the server cannot be reached (' + e.message + ')');
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const msg = data && data.error ? data.error : `${res.status} ${res.statusText || 'error'}`;
    const err = new ApiError(res.status, data && data.code ? data.code : '', msg);
    if (res.status === 401 && !opts.quiet401) {
      window.dispatchEvent(new CustomEvent('molt:signedout', { detail: msg }));
    }
    throw err;
  }
  return data;
}

// qs builds a query string from an object, leaving out empty values;
// arrays repeat the key.
export function qs(obj) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(obj || {})) {
    if (v === undefined || v === null || v === '' || v === false) continue;
    if (Array.isArray(v)) v.forEach((x) => x !== '' && p.append(k, x));
    else p.set(k, v === true ? '1' : String(v));
  }
  const s = p.toString();
  return s ? '?' + s : '';
}

export const enc = encodeURIComponent;

// ----- DOM -----

// h builds an element: attrs sets attributes (on* functions become
// listeners; class, value, checked, disabled, selected set properties);
// children are nodes or text (null and false are skipped, arrays flatten).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'value') el.value = v;
    else if (k === 'checked' || k === 'disabled' || k === 'selected' || k === 'hidden') el[k] = true;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  add(el, children);
  return el;
}

function add(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

// mount replaces el's content.
export function mount(el, ...children) {
  el.replaceChildren();
  add(el, children);
  return el;
}

// link is an in-console link (#/path).
export function link(path, text, attrs = {}) {
  return h('a', { href: '#' + path, ...attrs }, text);
}

// ----- times -----

function asDate(t) {
  if (!t) return null;
  const d = t instanceof Date ? t : new Date(t);
  if (isNaN(d) || d.getUTCFullYear() <= 1) return null; // Go's zero time
  return d;
}

export function relTime(t, now = Date.now()) {
  const d = asDate(t);
  if (!d) return '—';
  const s = Math.round((now - d.getTime()) / 1000);
  const a = Math.abs(s);
  let v;
  if (a < 5) return 'just now';
  if (a < 60) v = `${a} s`;
  else if (a < 3600) v = `${Math.floor(a / 60)} min`;
  else if (a < 86400) v = `${Math.floor(a / 3600)} h`;
  else v = `${Math.floor(a / 86400)} d`;
  return s >= 0 ? `${v} ago` : `in ${v}`;
}

export function absTime(t) {
  const d = asDate(t);
  if (!d) return '—';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

// timeEl shows a time relative ("3 min ago") with the absolute time as its
// title, or both when full; the app refreshes relative times every 15 s.
export function timeEl(t, full = false) {
  const d = asDate(t);
  if (!d) return h('span', { class: 'muted' }, '—');
  const el = h('time', { datetime: d.toISOString(), title: absTime(d), 'data-rel': full ? 'full' : 'rel' });
  el.textContent = full ? `${relTime(d)} (${absTime(d)})` : relTime(d);
  return el;
}

export function refreshTimes(root = document) {
  for (const el of root.querySelectorAll('time[data-rel]')) {
    const d = new Date(el.getAttribute('datetime'));
    el.textContent = el.dataset.rel === 'full' ? `${relTime(d)} (${absTime(d)})` : relTime(d);
  }
}

export function duration(ms) {
  if (ms === null || ms === undefined || ms < 0) return '—';
  const s = ms / 1000;
  if (s < 1) return `${Math.round(ms)} ms`;
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

export function bytes(n) {
  if (!n) return '—';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}

export const num = (n) => (n || 0).toLocaleString('en-US');

// ----- small components -----

// badge shows a state word (online, rolled_back, ...) in its colour class.
export function badge(state, attrs = {}) {
  const s = String(state || 'unknown');
  return h('span', { class: 'badge b-' + s.replace(/[^a-z0-9_-]/gi, ''), ...attrs }, s.replaceAll('_', ' '));
}

// showError puts the API's message, as it is, into el (an alert).
export function showError(el, err) {
  const msg = err instanceof Error ? err.message : String(err);
  mount(el, h('div', { class: 'error', role: 'alert', 'data-test': 'error' }, msg));
}

export function errorBox(err) {
  const box = h('div');
  showError(box, err);
  return box.firstChild;
}

export function toast(msg, kind = 'ok') {
  const t = h('div', { class: 'toast t-' + kind, role: kind === 'error' ? 'alert' : 'status', 'data-test': 'toast' }, msg);
  document.getElementById('toasts').append(t);
  setTimeout(() => t.remove(), kind === 'error' ? 10000 : 4000);
}

// action runs fn (an API call) for a button: disabled while it runs, a
// toast on success, the server's message on failure.
export async function action(btn, fn, okMsg) {
  if (btn) btn.disabled = true;
  try {
    const r = await fn();
    if (okMsg) toast(typeof okMsg === 'function' ? okMsg(r) : okMsg);
    return r;
  } catch (e) {
    toast(e.message, 'error');
    throw e;
  } finally {
    if (btn) btn.disabled = false;
  }
}

// modal opens a <dialog> with a title and content; close() removes it.
export function modal(title, content, { wide = false, onClose } = {}) {
  const id = 'dlg-' + Math.random().toString(36).slice(2);
  const dlg = h('dialog', { class: wide ? 'wide' : '', 'aria-labelledby': id },
    h('header', {}, h('h2', { id }, title),
      h('button', { type: 'button', class: 'link close', 'aria-label': 'Close', onclick: () => close() }, '×')),
    content);
  let closed = false;
  function close() {
    if (closed) return;
    closed = true;
    dlg.close();
    dlg.remove();
    if (onClose) onClose();
  }
  dlg.addEventListener('cancel', (e) => {
    e.preventDefault();
    close();
  });
  document.body.append(dlg);
  dlg.showModal();
  return { dialog: dlg, close };
}

// confirmDialog asks before an action; resolves true when confirmed.
export function confirmDialog(title, body, okLabel = 'Confirm', danger = false) {
  return new Promise((resolve) => {
    let answer = false;
    const ok = h('button', { type: 'button', class: danger ? 'danger' : 'primary', 'data-test': 'confirm-ok', onclick: () => { answer = true; m.close(); } }, okLabel);
    const cancel = h('button', { type: 'button', 'data-test': 'confirm-cancel', onclick: () => m.close() }, 'Cancel');
    const m = modal(title, h('div', {}, h('div', { class: 'body' }, body), h('footer', {}, cancel, ok)), { onClose: () => resolve(answer) });
    ok.focus();
  });
}

// table renders rows. columns: [{label, key (for sorting), cell(row) ->
// node|text, class}]. sort is "key" or "-key"; onSort(newSort) makes the
// sortable headers buttons. rowAttrs(row) adds attributes to each <tr>.
export function table({ columns, rows, sort, onSort, empty = 'Nothing to show.', rowAttrs, caption, attrs = {} }) {
  const desc = sort && sort.startsWith('-');
  const cur = sort ? sort.replace(/^-/, '') : '';
  const head = columns.map((c) => {
    if (!c.key || !onSort) return h('th', { scope: 'col', class: c.class }, c.label);
    const active = c.key === cur;
    return h('th', { scope: 'col', class: c.class, 'aria-sort': active ? (desc ? 'descending' : 'ascending') : 'none' },
      h('button', { type: 'button', class: 'sort', 'data-key': c.key, onclick: () => onSort(active && !desc ? '-' + c.key : c.key) },
        c.label, h('span', { 'aria-hidden': 'true' }, active ? (desc ? ' ▼' : ' ▲') : '')));
  });
  const body = rows.length
    ? rows.map((r) => h('tr', rowAttrs ? rowAttrs(r) : {}, columns.map((c) => h('td', { class: c.class }, c.cell(r)))))
    : [h('tr', {}, h('td', { colspan: columns.length, class: 'muted empty' }, empty))];
  return h('table', attrs, caption ? h('caption', {}, caption) : null, h('thead', {}, h('tr', {}, head)), h('tbody', {}, body));
}

// pager: "1–50 of 50,000" with previous and next.
export function pager({ offset, limit, total, onPage }) {
  const first = total ? offset + 1 : 0;
  const last = Math.min(offset + limit, total);
  return h('nav', { class: 'pager', 'aria-label': 'Pages' },
    h('button', { type: 'button', disabled: offset <= 0, 'data-test': 'page-prev', onclick: () => onPage(Math.max(0, offset - limit)) }, '‹ Previous'),
    h('span', { 'data-test': 'page-info' }, `${num(first)}–${num(last)} of ${num(total)}`),
    h('button', { type: 'button', disabled: last >= total, 'data-test': 'page-next', onclick: () => onPage(offset + limit) }, 'Next ›'));
}

// field wraps a form control with its label.
export function field(label, control, hint) {
  const id = control.id || 'f-' + Math.random().toString(36).slice(2);
  control.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hint ? h('small', { class: 'muted' }, hint) : null);
}

export function select(options, value, attrs = {}) {
  return h('select', attrs, options.map((o) => {
    const [v, t] = Array.isArray(o) ? o : [o, o];
    return h('option', { value: v, selected: v === value }, t);
  }));
}

// debounce delays fn until ms passed without a call.
export function debounce(fn, ms) {
  let t;
  return (...a) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...a), ms);
  };
}

// ----- live feed -----

const listeners = new Set();

// onLive calls fn(event) for every event of the server's live feed (a
// protocol.Event) and fn(null) after a reconnect, when anything may have
// changed; it returns the unsubscribe function.
export function onLive(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function emitLive(ev) {
  for (const fn of [...listeners]) {
    try {
      fn(ev);
    } catch (e) {
      console.error(e);
    }
  }
}

// liveRefresh calls reload at most once per ms while events matching
// match(ev) arrive (and after every reconnect); returns the unsubscribe.
export function liveRefresh(reload, match = () => true, ms = 1000) {
  let timer = null;
  let last = 0;
  return onLive((ev) => {
    if (ev && !match(ev)) return;
    if (timer) return;
    const wait = Math.max(0, last + ms - Date.now());
    timer = setTimeout(() => {
      timer = null;
      last = Date.now();
      reload();
    }, wait);
  });
}

// ----- hash routes -----

// setQuery replaces the page's query in the address (no reload), so a
// filtered view can be bookmarked and survives a refresh.
export function setQuery(q) {
  const path = location.hash.replace(/^#/, '').split('?')[0] || '/fleet';
  history.replaceState(null, '', '#' + path + qs(q));
}

export function navigate(path) {
  location.hash = '#' + path;
}
