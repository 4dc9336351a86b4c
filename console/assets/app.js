// app.js: the console's shell. Sign-in, the navigation, the hash router
// and the live feed (Server-Sent Events) that keeps every page current and
// says so when the server is away.
//
// data-test names: signin-form, signin-token, signin-submit, signin-error,
// who, signout, live, banner, nav-<page>.

import { api, session, can, h, mount, showError, emitLive, refreshTimes } from './lib.js';

// Each page is a module loaded when first opened: the shell starts with
// only itself and lib.js, and a page that fails to load breaks only itself.
const pages = [
  { path: '/fleet', mod: './fleet.js', nav: 'Fleet' },
  { path: '/agents/:id', mod: './agent.js', under: '/fleet' },
  { path: '/runs', mod: './runs.js', nav: 'Runs' },
  { path: '/runs/:id', mod: './run.js', under: '/runs' },
  { path: '/history', mod: './history.js', nav: 'Upgrade History' },
  { path: '/deployments/:id', mod: './deployment.js', under: '/history' },
  { path: '/releases', mod: './releases.js', nav: 'Releases' },
  { path: '/events', mod: './events.js', nav: 'Events' },
  { path: '/settings', mod: './settings.js', nav: 'Settings', role: 'admin' },
];

const main = document.getElementById('main');
let cleanup = null;
let navSeq = 0; // the newest navigation; an older one still loading gives way

function match(path) {
  const parts = path.split('/').filter(Boolean);
  for (const p of pages) {
    const pp = p.path.split('/').filter(Boolean);
    if (pp.length !== parts.length) continue;
    const params = {};
    let ok = true;
    pp.forEach((seg, i) => {
      if (seg.startsWith(':')) params[seg.slice(1)] = decodeURIComponent(parts[i]);
      else if (seg !== parts[i]) ok = false;
    });
    if (ok) return { page: p, params };
  }
  return null;
}

function parseHash() {
  const raw = location.hash.replace(/^#/, '');
  const [path, query] = raw.split('?');
  return { path: path || '/fleet', query: new URLSearchParams(query || '') };
}

async function route() {
  const seq = ++navSeq;
  const { path, query } = parseHash();
  if (cleanup) {
    try {
      cleanup();
    } catch (e) {
      console.error(e);
    }
    cleanup = null;
  }
  if (!session.role) return;
  const m = match(path);
  for (const a of document.querySelectorAll('#nav a')) {
    const on = m && (a.dataset.path === m.page.path || a.dataset.path === m.page.under);
    if (on) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  // Each navigation renders into a view of its own: a page still loading
  // when the next one opens writes into a detached element.
  const view = h('div', { class: 'view' });
  main.replaceChildren(view);
  if (!m || (m.page.role && !can(m.page.role))) {
    document.title = 'Not found · molt';
    mount(main, h('h1', {}, 'Not found'), h('p', {}, 'No page ', h('code', {}, path), ' here. ', h('a', { href: '#/fleet' }, 'Go to the fleet.')));
    return;
  }
  document.title = (m.page.nav || m.page.under.slice(1).replace(/^./, (c) => c.toUpperCase())) + ' · molt';
  let mod;
  try {
    mod = await import(m.page.mod);
  } catch (e) {
    showError(view, `This page could not be loaded (${e.message}); reload to try again.`);
    return;
  }
  if (seq !== navSeq) return;
  try {
    const c = await mod.render(view, m.params, query);
    if (typeof c === 'function') {
      if (seq === navSeq) cleanup = c;
      else c(); // the page was left while it rendered
    }
  } catch (e) {
    if (e.status === 401) return;
    showError(view, e);
  }
  main.focus({ preventScroll: true });
}

// ----- sign-in -----

function showSignin(message) {
  session.role = '';
  stopLive();
  document.getElementById('top').hidden = true;
  document.title = 'Sign in · molt';
  const err = h('div', { 'data-test': 'signin-error', 'aria-live': 'assertive' });
  if (message) showError(err, message);
  const input = h('input', { id: 'token', type: 'password', name: 'token', autocomplete: 'current-password', required: true, 'data-test': 'signin-token', spellcheck: 'false' });
  const form = h('form', { class: 'signin', 'data-test': 'signin-form' },
    h('h1', {}, 'Sign in to molt'),
    h('p', {}, 'Paste an API token. ', h('code', {}, 'molt token create --role operator'), ' makes one; ',
      h('code', {}, 'molt console link'), ' prints a one-time sign-in link.'),
    h('div', { class: 'field' }, h('label', { for: 'token' }, 'API token'), input),
    err,
    h('button', { type: 'submit', class: 'primary', 'data-test': 'signin-submit' }, 'Sign in'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await signIn({ token: input.value.trim() });
      input.value = '';
    } catch (ex) {
      showError(err, ex);
      input.focus();
    }
  });
  mount(main, form);
  input.focus();
}

async function signIn(body) {
  const s = await api('POST', '/v1/session', body, { quiet401: true });
  setSession(s);
  if (!location.hash || location.hash.startsWith('#signin')) history.replaceState(null, '', '#/fleet');
  await route();
}

function setSession(s) {
  session.role = s.role;
  session.tokenName = s.token_name || '';
  session.tokenID = s.token_id || '';
  session.csrf = s.csrf;
  session.expires = s.expires;
  const nav = document.getElementById('nav');
  mount(nav, pages.filter((p) => p.nav && (!p.role || can(p.role))).map((p) =>
    h('a', { href: '#' + p.path, 'data-path': p.path, 'data-test': 'nav-' + p.path.slice(1) }, p.nav)));
  mount(document.getElementById('who'), `${session.tokenName || 'token ' + session.tokenID} · ${session.role}`);
  document.getElementById('top').hidden = false;
  startLive();
}

document.getElementById('signout').addEventListener('click', async () => {
  try {
    await api('DELETE', '/v1/session');
  } catch (e) {
    if (e.status !== 401) {
      banner(e.message, 'error');
      return;
    }
  }
  session.csrf = '';
  history.replaceState(null, '', '#/fleet');
  showSignin('Signed out.');
});

window.addEventListener('molt:signedout', (e) => {
  if (session.role) showSignin(e.detail);
});

// ----- live feed -----

let source = null;
let retry = null;
let everConnected = false;
let down = false;

function banner(text, kind = 'info') {
  const b = document.getElementById('banner');
  if (!text) {
    b.hidden = true;
    return;
  }
  b.className = 'banner b-' + kind;
  b.textContent = text;
  b.hidden = false;
}

function liveState(state) {
  const el = document.getElementById('live');
  el.dataset.state = state;
  el.textContent = { live: '● live', reconnecting: '○ reconnecting…', off: '' }[state];
}

function startLive() {
  stopLive();
  source = new EventSource('/v1/events/stream');
  source.addEventListener('hello', () => {
    liveState('live');
    if (down) {
      banner('Reconnected to the server.', 'ok');
      setTimeout(() => !down && banner(''), 4000);
      emitLive(null); // anything may have changed meanwhile
    }
    down = false;
    everConnected = true;
  });
  source.addEventListener('event', (m) => {
    try {
      emitLive(JSON.parse(m.data));
    } catch (e) {
      console.error(e);
    }
  });
  source.onerror = async () => {
    liveState('reconnecting');
    if (!down && everConnected) banner('The server cannot be reached; reconnecting…', 'warn');
    down = true;
    if (source.readyState === EventSource.CLOSED) {
      // A refused stream (401, 503) is not retried by the browser.
      try {
        await api('GET', '/v1/session', undefined, { quiet401: true });
      } catch (e) {
        if (e.status === 401) {
          showSignin('Your session has ended: sign in again.');
          return;
        }
      }
      retry = setTimeout(startLive, 3000);
    }
  };
}

function stopLive() {
  clearTimeout(retry);
  if (source) source.close();
  source = null;
  liveState('off');
}

setInterval(() => refreshTimes(main), 15000);

window.addEventListener('hashchange', () => {
  if (location.hash.startsWith('#signin=')) return boot();
  route();
});

async function boot() {
  const code = location.hash.startsWith('#signin=') ? decodeURIComponent(location.hash.slice(8)) : '';
  if (code) {
    history.replaceState(null, '', location.pathname + '#/fleet');
    try {
      await signIn({ code });
    } catch (e) {
      showSignin(e.message);
    }
    return;
  }
  try {
    setSession(await api('GET', '/v1/session', undefined, { quiet401: true }));
  } catch (e) {
    showSignin(e.status === 401 ? '' : e.message);
    return;
  }
  if (!location.hash) history.replaceState(null, '', '#/fleet');
  await route();
}

boot();
