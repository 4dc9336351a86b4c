// settings.js: what an admin sets. Every setting GET /v1/settings lists,
// with its value, default and the server's explanation, grouped; version
// control per platform (latest / pinned / none) and maintenance windows
// from the server's key patterns; a form for any key; API tokens,
// enrollment tokens and one-time console sign-in links. Every error of the
// API is shown as the server wrote it, beside the control it is about.
//
// data-test names: settings-error, version-table, version-row
// (data-platform), version-policy, version-pin, version-save,
// version-reset, version-add-platform, version-add, window-row (data-key),
// window-add-label, window-add-value, window-add-spec, window-add,
// setting-row (data-key), setting-input, setting-save, setting-reset,
// setting-value, setting-default (an API error in a row: error), any-key, any-value,
// any-save, any-reset, any-error, tokens-table, token-row (data-id),
// token-revoke, token-name, token-role, token-create, token-error,
// token-secret, token-copy, enroll-table, enroll-row (data-id),
// enroll-revoke, enroll-name, enroll-uses, enroll-expires, enroll-create,
// enroll-error, enroll-secret, enroll-copy, signin-link-make,
// signin-link-url, signin-link-copy, signin-link-error.

import { api, h, mount, enc, timeEl, showError, toast, confirmDialog, field, select, session, badge, num } from './lib.js';

// Settings shown in their own sections; every other key goes into a group
// by its prefix, so a key the server adds shows up without a change here.
const GROUPS = [
  ['activation-upgrade.', 'Upgrade on activation', 'Per OS family: an agent that enrolls with another version than its platform\'s version policy is upgraded to it.'],
  ['hooks.', 'Hooks', 'Commands the server runs when deployments and runs end.'],
  ['agents.', 'Agents', ''],
  ['deployments.', 'Deployments', ''],
  ['releases.', 'Releases', ''],
  ['repair.', 'Repair', ''],
];

// keyPath puts a key into a URL path: keys hold slashes
// (version.linux/amd64) that the route takes as they are.
const keyPath = (key) => '/v1/settings/' + enc(key).replaceAll('%2F', '/');

// shownRows redraws the row of a key on the page (key -> draw(Setting)),
// so a key set from "Set any key" shows its new value where it is listed.
const shownRows = new Map();

export async function render(main) {
  const err = h('div', { 'data-test': 'settings-error' });
  mount(main, h('h1', {}, 'Settings'), h('p', { class: 'muted' }, 'Loading…'));
  let data;
  let releases = [];
  let fleetPlatforms = [];
  try {
    [data, releases, fleetPlatforms] = await Promise.all([
      api('GET', '/v1/settings'),
      api('GET', '/v1/releases').then((r) => r.releases || []),
      // The fleet's platforms, for a policy row even before a release has
      // them; a server without the summary still shows the rest.
      api('GET', '/v1/agents/summary').then((s) => (s.platforms || []).map((p) => p.platform)).catch(() => []),
    ]);
  } catch (e) {
    mount(main, h('h1', {}, 'Settings'), err);
    showError(err, e);
    return;
  }
  shownRows.clear();
  const settings = new Map((data.settings || []).map((s) => [s.key, s]));
  const patterns = data.patterns || [];
  const pattern = (prefix) => patterns.find((p) => p.pattern.startsWith(prefix)) || { description: '', example: '' };

  const sections = [];
  sections.push(versionSection(settings, pattern('version.'), releases, fleetPlatforms));
  sections.push(windowSection(settings, pattern('window.')));
  const used = new Set([...settings.keys()].filter((k) => k.startsWith('version.') || k.startsWith('window.')));
  for (const [prefix, title, intro] of GROUPS) {
    const keys = [...settings.keys()].filter((k) => k.startsWith(prefix) && !used.has(k));
    keys.forEach((k) => used.add(k));
    if (keys.length) sections.push(groupSection(title, intro, keys.map((k) => settings.get(k))));
  }
  const rest = [...settings.keys()].filter((k) => !used.has(k));
  if (rest.length) sections.push(groupSection('Server', '', rest.map((k) => settings.get(k))));
  sections.push(anyKeySection());
  sections.push(await tokensSection());
  sections.push(await enrollSection());
  sections.push(signinSection());

  mount(main,
    h('h1', {}, 'Settings'),
    h('p', { class: 'muted' }, 'Each setting with its current value, its default and what it does. Changes take effect at once and are recorded as event 1003.'),
    h('nav', { class: 'settings-toc', 'aria-label': 'Sections' }, sections.map((s) => h('a', { href: '#/settings', onclick: (e) => {
      e.preventDefault();
      s.scrollIntoView();
      s.querySelector('h2').focus();
    } }, s.querySelector('h2').textContent))),
    err,
    sections);
}

function section(title, ...content) {
  const id = 'set-' + title.toLowerCase().replace(/[^a-z]+/g, '-');
  return h('section', { class: 'settings-section', 'aria-labelledby': id }, h('h2', { id, tabindex: '-1' }, title), content);
}

// ----- one setting -----

// put sets or (value undefined) resets key; it shows the server's message
// in errEl and returns the new Setting, or null after an error.
async function put(key, value, errEl, btn) {
  errEl.replaceChildren();
  if (btn) btn.disabled = true;
  try {
    const s = value === undefined ? await api('DELETE', keyPath(key)) : await api('PUT', keyPath(key), { value });
    toast(value === undefined ? `${key} is back to its default` : `${key} = ${s.value === '' ? '(empty)' : s.value}`);
    return s;
  } catch (e) {
    showError(errEl, e);
    return null;
  } finally {
    if (btn) btn.disabled = false;
  }
}

const shown = (v) => (v === '' ? h('span', { class: 'muted' }, '(empty)') : h('code', {}, v));

// settingRow is one key: an input fitting its default (true/false is a
// choice), Save and Reset, its current value, default and description.
// onRemoved, for a key that exists only once set (a window), is called
// after its reset instead of showing the default.
function settingRow(s, onRemoved) {
  const isBool = s.default_value === 'true' || s.default_value === 'false';
  const input = isBool
    ? select([['true', 'true'], ['false', 'false']], s.value, { 'data-test': 'setting-input' })
    : h('input', { type: 'text', value: s.value, 'data-test': 'setting-input', spellcheck: 'false', size: 36, placeholder: s.default_value || '' });
  const errEl = h('div', { 'aria-live': 'assertive' });
  const value = h('span', { 'data-test': 'setting-value' });
  const save = h('button', { type: 'submit', class: 'primary', 'data-test': 'setting-save' }, 'Save');
  const reset = h('button', { type: 'button', 'data-test': 'setting-reset', onclick: async () => {
    const r = await put(s.key, undefined, errEl, reset);
    if (r && onRemoved) onRemoved(form);
    else if (r) draw(r);
  } }, onRemoved ? 'Remove' : 'Reset to default');
  function draw(n) {
    input.value = n.value;
    mount(value, shown(n.value), ' ', n.default ? badge('default') : badge('set'));
    reset.disabled = !!n.default;
  }
  const form = h('form', { class: 'settings-row', 'data-test': 'setting-row', 'data-key': s.key, onsubmit: async (e) => {
    e.preventDefault();
    const r = await put(s.key, input.value, errEl, save);
    if (r) draw(r);
  } },
  h('div', { class: 'settings-key' }, h('code', {}, s.key)),
  h('div', { class: 'settings-desc' },
    s.description ? h('p', {}, s.description) : null,
    h('dl', { class: 'kv' },
      h('dt', {}, 'Value'), h('dd', {}, value),
      onRemoved ? null : [h('dt', {}, 'Default'), h('dd', { 'data-test': 'setting-default' }, shown(s.default_value || ''))]),
    h('div', { class: 'row' }, field('New value of ' + s.key, input), h('div', { class: 'actions' }, save, reset)),
    errEl));
  draw(s);
  shownRows.set(s.key, draw);
  if (onRemoved) reset.disabled = false;
  return form;
}

function groupSection(title, intro, list) {
  return section(title, intro ? h('p', { class: 'muted' }, intro) : null, list.map((s) => settingRow(s)));
}

// ----- version control -----

function versionSection(settings, pat, releases, fleetPlatforms) {
  const platforms = new Set(fleetPlatforms);
  for (const r of releases) for (const p of r.platforms || []) platforms.add(p);
  for (const k of settings.keys()) if (k.startsWith('version.')) platforms.add(k.slice(8));
  const versionsFor = (p) => releases.filter((r) => (r.platforms || []).includes(p)).map((r) => r);
  const tbody = h('tbody', {});
  const dlists = h('div', { hidden: true });

  function row(platform) {
    const key = 'version.' + platform;
    const cur = settings.get(key) || { key, value: pat.default || 'latest', default: true, default_value: pat.default || 'latest' };
    const rels = versionsFor(platform);
    const listID = 'versions-' + platform.replace(/[^a-z0-9]/gi, '-');
    dlists.append(h('datalist', { id: listID }, rels.map((r) => h('option', { value: r.version }, (r.quarantined || []).some((q) => q.platform === platform) ? 'quarantined here' : ''))));
    const policy = select([['latest', 'latest'], ['pinned', 'pinned version'], ['none', 'none']], 'latest', { 'data-test': 'version-policy', 'aria-label': `Policy for ${platform}` });
    const pin = h('input', { type: 'text', list: listID, 'data-test': 'version-pin', 'aria-label': `Pinned version for ${platform}`, placeholder: rels[0] ? rels[0].version : '1.5.0', size: 12, spellcheck: 'false' });
    const errEl = h('div', { 'aria-live': 'assertive' });
    const value = h('td', { 'data-test': 'setting-value' });
    const save = h('button', { type: 'button', class: 'primary', 'data-test': 'version-save', onclick: async () => {
      const v = policy.value === 'pinned' ? pin.value.trim() : policy.value;
      const r = await put(key, v, errEl, save);
      if (r) draw(r);
    } }, 'Save');
    const reset = h('button', { type: 'button', 'data-test': 'version-reset', onclick: async () => {
      const r = await put(key, undefined, errEl, reset);
      if (r) draw(r);
    } }, 'Reset');
    policy.addEventListener('change', () => {
      pin.hidden = policy.value !== 'pinned';
      if (!pin.hidden) pin.focus();
    });
    function draw(n) {
      const v = n.value;
      policy.value = v === 'latest' || v === 'none' ? v : 'pinned';
      pin.value = policy.value === 'pinned' ? v : '';
      pin.hidden = policy.value !== 'pinned';
      const newest = rels[0] ? rels[0].version : '';
      mount(value, h('code', {}, v), ' ', n.default ? badge('default') : badge('set'),
        v === 'latest' && newest ? h('div', { class: 'muted' }, `newest with a pack: ${newest}`) : null);
      reset.disabled = !!n.default;
    }
    const tr = h('tr', { 'data-test': 'version-row', 'data-platform': platform },
      h('th', { scope: 'row' }, h('code', {}, platform)),
      value,
      h('td', {}, h('span', { class: 'settings-inline' }, policy, pin), errEl),
      h('td', { class: 'muted' }, rels.length ? `${num(rels.length)} release${rels.length === 1 ? '' : 's'}` : 'no release has a pack'),
      h('td', {}, h('span', { class: 'actions' }, save, reset)));
    draw(cur);
    shownRows.set(key, draw);
    return tr;
  }

  for (const p of [...platforms].sort()) tbody.append(row(p));
  const addIn = h('input', { type: 'text', placeholder: 'linux/arm64', 'data-test': 'version-add-platform', size: 16, spellcheck: 'false' });
  const addErr = h('div', { 'aria-live': 'assertive' });
  const add = h('form', { class: 'row', onsubmit: (e) => {
    e.preventDefault();
    const p = addIn.value.trim();
    addErr.replaceChildren();
    if (!/^[a-z0-9]+\/[a-z0-9]+$/.test(p)) {
      showError(addErr, `"${p}" is not a platform: give goos/goarch, like linux/arm64`);
      return;
    }
    if (!tbody.querySelector(`tr[data-platform="${CSS.escape(p)}"]`)) tbody.append(row(p));
    addIn.value = '';
    tbody.querySelector(`tr[data-platform="${CSS.escape(p)}"] select`).focus();
  } }, field('Another platform', addIn), h('div', { class: 'actions' }, h('button', { type: 'submit', 'data-test': 'version-add' }, 'Add a row')));

  return section('Version control',
    h('p', {}, pat.description || 'The version agents of each platform should run.'),
    h('table', { 'data-test': 'version-table' },
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, 'Platform'),
        h('th', { scope: 'col' }, 'Policy now'),
        h('th', { scope: 'col' }, 'New policy'),
        h('th', { scope: 'col' }, 'Releases'),
        h('th', { scope: 'col' }, 'Actions'))),
      tbody),
    dlists, add, addErr);
}

// ----- maintenance windows -----

function windowSection(settings, pat) {
  const list = h('div', {});
  const none = h('p', { class: 'muted' }, 'No window is set: runs start deployments at any time unless a run has its own window.');
  function row(s) {
    const el = settingRow(s, (gone) => {
      gone.remove();
      none.hidden = list.childElementCount > 0;
    });
    el.dataset.test = 'window-row';
    return el;
  }
  for (const [k, s] of settings) if (k.startsWith('window.')) list.append(row(s));
  none.hidden = list.childElementCount > 0;
  const label = h('input', { type: 'text', placeholder: 'env', 'data-test': 'window-add-label', size: 12, spellcheck: 'false' });
  const value = h('input', { type: 'text', placeholder: 'prod', 'data-test': 'window-add-value', size: 12, spellcheck: 'false' });
  const spec = h('input', { type: 'text', placeholder: 'Mon-Fri 01:00-05:00 Europe/Berlin', 'data-test': 'window-add-spec', size: 34, spellcheck: 'false' });
  const errEl = h('div', { 'aria-live': 'assertive' });
  const btn = h('button', { type: 'submit', class: 'primary', 'data-test': 'window-add' }, 'Add window');
  const form = h('form', { class: 'row', onsubmit: async (e) => {
    e.preventDefault();
    const key = `window.${label.value.trim()}=${value.value.trim()}`;
    const r = await put(key, spec.value.trim(), errEl, btn);
    if (!r) return;
    const old = list.querySelector(`[data-key="${CSS.escape(key)}"]`);
    const n = row({ ...r, description: r.description || pat.description });
    if (old) old.replaceWith(n);
    else list.append(n);
    none.hidden = true;
    label.value = value.value = spec.value = '';
  } }, field('Label', label), field('Value', value), field('Window', spec), h('div', { class: 'actions' }, btn));
  return section('Maintenance windows',
    h('p', {}, pat.description || 'Windows by agent label.'),
    none, list, h('h3', {}, 'Add a window'), form, errEl);
}

// ----- any key -----

function anyKeySection() {
  const key = h('input', { type: 'text', 'data-test': 'any-key', placeholder: 'agents.poll-seconds', size: 30, spellcheck: 'false' });
  const value = h('input', { type: 'text', 'data-test': 'any-value', size: 30, spellcheck: 'false' });
  const errEl = h('div', { 'aria-live': 'assertive', 'data-test': 'any-error' });
  const save = h('button', { type: 'submit', class: 'primary', 'data-test': 'any-save' }, 'Set');
  const done = (r) => r && shownRows.has(r.key) && shownRows.get(r.key)(r);
  const reset = h('button', { type: 'button', 'data-test': 'any-reset', onclick: async () => done(await put(key.value.trim(), undefined, errEl, reset)) }, 'Reset to default');
  return section('Set any key',
    h('p', { class: 'muted' }, 'Any key, as molt settings set KEY VALUE does; a key listed above shows its new value there, a new one (a version.* or window.* key) after a reload.'),
    h('form', { class: 'row', onsubmit: (e) => {
      e.preventDefault();
      put(key.value.trim(), value.value, errEl, save).then(done);
    } }, field('Key', key), field('Value', value), h('div', { class: 'actions' }, save, reset)),
    errEl);
}

// ----- secrets shown once -----

function secretBox(title, secret, testName, warning) {
  const out = h('input', { type: 'text', readonly: true, value: secret, 'data-test': testName, class: 'mono settings-secret', spellcheck: 'false', 'aria-label': title });
  const copy = h('button', { type: 'button', 'data-test': testName.replace(/-(secret|url)$/, '') + '-copy', onclick: async () => {
    out.select();
    try {
      await navigator.clipboard.writeText(secret);
      toast('Copied.');
    } catch {
      toast('Copy did not work here: the text is selected, press Ctrl+C.', 'error');
    }
  } }, 'Copy');
  return h('div', { class: 'settings-once', role: 'status' },
    h('p', {}, h('strong', {}, title)),
    h('div', { class: 'settings-inline' }, out, copy),
    h('p', { class: 'settings-warn' }, warning));
}

// ----- API tokens -----

async function tokensSection() {
  const holder = h('div', {});
  const errEl = h('div', { 'aria-live': 'assertive', 'data-test': 'token-error' });
  const once = h('div', {});
  async function reload() {
    try {
      const r = await api('GET', '/v1/tokens');
      mount(holder, tokenTable(r.tokens || []));
    } catch (e) {
      showError(holder, e);
    }
  }
  function tokenTable(tokens) {
    return h('table', { 'data-test': 'tokens-table' },
      h('thead', {}, h('tr', {}, ['Name', 'Id', 'Role', 'Created', 'Last used', 'State', 'Actions'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, tokens.length ? tokens.map((t) => h('tr', { 'data-test': 'token-row', 'data-id': t.id },
        h('td', {}, t.name || h('span', { class: 'muted' }, '(no name)'), t.id === session.tokenID ? h('span', { class: 'muted' }, ' (this session)') : null),
        h('td', {}, h('code', {}, t.id)),
        h('td', {}, t.role),
        h('td', {}, timeEl(t.created)),
        h('td', {}, timeEl(t.last_used)),
        h('td', {}, t.revoked ? badge('revoked') : badge('active')),
        h('td', {}, t.revoked ? '' : revokeBtn(t)))) : h('tr', {}, h('td', { colspan: 7, class: 'muted empty' }, 'No token.'))));
  }
  function revokeBtn(t) {
    const b = h('button', { type: 'button', class: 'danger', 'data-test': 'token-revoke', onclick: async () => {
      const self = t.id === session.tokenID;
      const ok = await confirmDialog(`Revoke ${t.name || t.id}?`,
        h('div', {}, h('p', {}, `The ${t.role} token ${t.id}${t.name ? ` (${t.name})` : ''} stops working at once, for the CLI and every console session made from it. This cannot be undone.`),
          self ? h('p', { class: 'settings-warn' }, 'This is the token you are signed in with: revoking it signs you out.') : null),
        'Revoke', true);
      if (!ok) return;
      errEl.replaceChildren();
      b.disabled = true;
      try {
        await api('DELETE', '/v1/tokens/' + enc(t.id));
        toast(`Token ${t.id} revoked.`);
        await reload();
      } catch (e) {
        b.disabled = false;
        showError(errEl, e);
      }
    } }, 'Revoke');
    return b;
  }
  const name = h('input', { type: 'text', 'data-test': 'token-name', placeholder: 'ci-pipeline', size: 24 });
  const role = select([['viewer', 'viewer: reads everything'], ['operator', 'operator: runs upgrades'], ['admin', 'admin: settings and tokens too']], 'viewer', { 'data-test': 'token-role' });
  const create = h('button', { type: 'submit', class: 'primary', 'data-test': 'token-create' }, 'Create token');
  const form = h('form', { class: 'row', onsubmit: async (e) => {
    e.preventDefault();
    errEl.replaceChildren();
    once.replaceChildren();
    create.disabled = true;
    try {
      const r = await api('POST', '/v1/tokens', { role: role.value, name: name.value.trim() });
      mount(once, secretBox(`The secret of ${r.token.role} token ${r.token.id}${r.token.name ? ` (${r.token.name})` : ''}`, r.secret, 'token-secret',
        'Copy it now: it is shown only this once and the server keeps only its hash. Anyone who has it acts with this role.'));
      name.value = '';
      await reload();
    } catch (ex) {
      showError(errEl, ex);
    } finally {
      create.disabled = false;
    }
  } }, field('Name', name), field('Role', role), h('div', { class: 'actions' }, create));
  await reload();
  return section('API tokens',
    h('p', { class: 'muted' }, 'Tokens for the CLI, scripts and the console sign-in. Revoking one ends its console sessions too.'),
    holder, h('h3', {}, 'Create a token'), form, errEl, once);
}

// ----- enrollment tokens -----

async function enrollSection() {
  const holder = h('div', {});
  const errEl = h('div', { 'aria-live': 'assertive', 'data-test': 'enroll-error' });
  const once = h('div', {});
  async function reload() {
    try {
      const r = await api('GET', '/v1/enroll-tokens');
      mount(holder, table(r.tokens || []));
    } catch (e) {
      showError(holder, e);
    }
  }
  function state(t) {
    if (t.revoked) return badge('revoked');
    if (new Date(t.expires) <= new Date()) return badge('expired');
    if (t.used >= t.uses) return badge('used_up');
    return badge('active');
  }
  function table(tokens) {
    return h('table', { 'data-test': 'enroll-table' },
      h('thead', {}, h('tr', {}, ['Name', 'Id', 'Created', 'Expires', 'Used', 'State', 'Actions'].map((c) => h('th', { scope: 'col', class: c === 'Used' ? 'num' : '' }, c)))),
      h('tbody', {}, tokens.length ? tokens.map((t) => h('tr', { 'data-test': 'enroll-row', 'data-id': t.id },
        h('td', {}, t.name || h('span', { class: 'muted' }, '(no name)')),
        h('td', {}, h('code', {}, t.id)),
        h('td', {}, timeEl(t.created)),
        h('td', {}, timeEl(t.expires, true)),
        h('td', { class: 'num' }, `${num(t.used)} of ${num(t.uses)}`),
        h('td', {}, state(t)),
        h('td', {}, t.revoked ? '' : revokeBtn(t)))) : h('tr', {}, h('td', { colspan: 7, class: 'muted empty' }, 'No enrollment token.'))));
  }
  function revokeBtn(t) {
    const b = h('button', { type: 'button', class: 'danger', 'data-test': 'enroll-revoke', onclick: async () => {
      const ok = await confirmDialog(`Revoke enrollment token ${t.name || t.id}?`,
        h('p', {}, `No agent can enroll with ${t.id} any more. Agents that enrolled with it keep their own credentials.`), 'Revoke', true);
      if (!ok) return;
      errEl.replaceChildren();
      b.disabled = true;
      try {
        await api('DELETE', '/v1/enroll-tokens/' + enc(t.id));
        toast(`Enrollment token ${t.id} revoked.`);
        await reload();
      } catch (e) {
        b.disabled = false;
        showError(errEl, e);
      }
    } }, 'Revoke');
    return b;
  }
  const name = h('input', { type: 'text', 'data-test': 'enroll-name', placeholder: 'rack-12', size: 20 });
  const uses = h('input', { type: 'number', min: 1, max: 1000000, value: '1', 'data-test': 'enroll-uses', size: 8 });
  const expires = select([['3600', '1 hour'], ['86400', '1 day'], ['604800', '7 days'], ['2592000', '30 days'], ['31536000', '1 year']], '86400', { 'data-test': 'enroll-expires' });
  const create = h('button', { type: 'submit', class: 'primary', 'data-test': 'enroll-create' }, 'Create enrollment token');
  const form = h('form', { class: 'row', onsubmit: async (e) => {
    e.preventDefault();
    errEl.replaceChildren();
    once.replaceChildren();
    create.disabled = true;
    try {
      const r = await api('POST', '/v1/enroll-tokens', { name: name.value.trim(), uses: parseInt(uses.value, 10) || 0, expires_in: parseInt(expires.value, 10) });
      mount(once, secretBox(`The secret of enrollment token ${r.token.id} (${num(r.token.uses)} use${r.token.uses === 1 ? '' : 's'}, until ${new Date(r.token.expires).toLocaleString()})`, r.secret, 'enroll-secret',
        'Copy it now: it is shown only this once. Give it to molt-agent enroll on the hosts to enroll.'));
      name.value = '';
      await reload();
    } catch (ex) {
      showError(errEl, ex);
    } finally {
      create.disabled = false;
    }
  } }, field('Name', name), field('Uses', uses), field('Expires in', expires), h('div', { class: 'actions' }, create));
  await reload();
  return section('Enrollment tokens',
    h('p', { class: 'muted' }, 'What a new host presents to enroll its agent: a number of uses and an expiry.'),
    holder, h('h3', {}, 'Create an enrollment token'), form, errEl, once);
}

// ----- console sign-in links -----

function signinSection() {
  const out = h('div', {});
  const errEl = h('div', { 'aria-live': 'assertive', 'data-test': 'signin-link-error' });
  const btn = h('button', { type: 'button', 'data-test': 'signin-link-make', onclick: async () => {
    errEl.replaceChildren();
    out.replaceChildren();
    btn.disabled = true;
    try {
      const r = await api('POST', '/v1/signin-links');
      mount(out, secretBox(`One-time sign-in link, valid until ${new Date(r.expires).toLocaleTimeString()}`, r.url, 'signin-link-url',
        `Whoever opens it first is signed in as your token (${session.tokenName || session.tokenID}, ${session.role}). Hand it over in person or over a channel you trust; it works once.`));
    } catch (e) {
      showError(errEl, e);
    } finally {
      btn.disabled = false;
    }
  } }, 'Make a one-time sign-in link');
  return section('Console sign-in link',
    h('p', { class: 'muted' }, 'A link that signs someone into this console once, within 10 minutes, with your role (molt console link prints the same).'),
    h('div', { class: 'actions' }, btn), errEl, out);
}
