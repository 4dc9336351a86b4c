// fleet.js: the Fleet page (#/fleet). The agents table, filtered, sorted
// and paged by the server (GET /v1/agents with the query of
// protocol.AgentFilter, 50 a page: the browser never holds the whole
// fleet), the version distribution per platform and the counts by status
// and upgrade status (GET /v1/agents/summary) as chips that set the
// filter, row selection and the upgrade dialog. Every filter lives in the
// address, so a view is bookmarkable; the live feed refreshes the page in
// place, keeping the page, the filters and the selection.
//
// data-test names: fleet-filters, filter-search, filter-platform,
// filter-version, filter-status, filter-upgrade-status, filter-os-family,
// filter-cluster, filter-label, filter-inactive, filter-clear,
// fleet-summary, fleet-chart, fleet-chart-platform (data-platform),
// fleet-chart-bar (data-platform, data-version, data-agents),
// chip-status-<status>, chip-upgrade-<upgrade_status> (data-count),
// fleet-total, fleet-table, agent-row (data-id), fleet-select (a row's
// checkbox, data-id), fleet-select-page, fleet-select-all, fleet-selection,
// fleet-clear-selection, fleet-upgrade; in a row: agent-link,
// agent-version, agent-status, agent-upgrade-status, agent-workloads;
// page-prev, page-next, page-info (lib.js's pager).

import {
  api, can, h, mount, qs, enc, link, timeEl, badge, showError, table, pager, field, select, debounce,
  num, liveRefresh, setQuery,
} from './lib.js';
import { openUpgrade } from './upgrade.js';

const PAGE = 50;

const STATUSES = ['online', 'offline', 'busy', 'inactive', 'revoked'];
const UPGRADE = [
  ['up_to_date', 'up to date'],
  ['upgrade_recommended', 'recommended'],
  ['upgrade_required', 'required'],
  ['manual_upgrade_required', 'manual required'],
];
const upgradeWord = Object.fromEntries(UPGRADE);

// The filter fields of the address (protocol.AgentFilterParams); label
// repeats.
const TEXT = ['q', 'platform', 'os_family', 'version', 'cluster', 'status', 'upgrade_status'];
const SORTS = ['name', 'version', 'platform', 'os_family', 'status', 'upgrade_status', 'last_seen', 'supervisor_version', 'cluster'];

// Events that change what the table shows: anything about an agent but a
// download's progress, and what changes upgrade statuses (releases,
// settings, quarantine).
const FLEET_EVENTS = new Set([1000, 1002, 1003, 1007, 1008]);
export const fleetEvent = (ev) => (ev.agent_id && ev.id !== 716) || FLEET_EVENTS.has(ev.id);

function readState(query) {
  const st = { labels: query.getAll('label').filter(Boolean), inactive: query.get('inactive') === '1' };
  for (const k of TEXT) st[k] = query.get(k) || '';
  const sort = query.get('sort') || 'name';
  st.sort = SORTS.includes(sort.replace(/^-/, '')) ? sort : 'name';
  st.offset = Math.max(0, parseInt(query.get('offset') || '0', 10) || 0);
  return st;
}

// filterQuery is the state's filter in its query form (what GET
// /v1/agents and /v1/agents/summary read); without drops facets.
function filterQuery(st, without = []) {
  const o = {};
  for (const k of TEXT) if (!without.includes(k)) o[k] = st[k];
  o.label = st.labels;
  o.inactive = st.inactive;
  return o;
}

// agentFilter is the state's filter as a protocol.AgentFilter (a run's
// Selection.Filter).
export function agentFilter(st) {
  const f = {};
  for (const k of TEXT) if (st[k]) f[k] = st[k];
  for (const kv of st.labels) {
    const i = kv.indexOf('=');
    if (i > 0) (f.labels ||= {})[kv.slice(0, i)] = kv.slice(i + 1);
  }
  if (st.inactive) f.inactive = true;
  return f;
}

// workloadHealth sums up an agent's workloads: "3 ok, 1 crash loop". A
// crashed workload the supervisor restarted again and again is a crash
// loop.
export function workloadHealth(ws) {
  if (!ws || !ws.length) return { text: '—', bad: false };
  const counts = new Map();
  let bad = false;
  for (const w of ws) {
    let word = w.state;
    if (w.state === 'ready') word = 'ok';
    else if (w.state === 'crashed' && w.restarts >= 3) word = 'crash loop';
    if (w.state === 'crashed' || w.state === 'unhealthy') bad = true;
    counts.set(word, (counts.get(word) || 0) + 1);
  }
  const order = ['ok', 'starting', 'stopped', 'unhealthy', 'crashed', 'crash loop'];
  const words = [...counts.keys()].sort((a, b) => order.indexOf(a) - order.indexOf(b));
  return { text: words.map((w) => `${counts.get(w)} ${w}`).join(', '), bad };
}

function labelsText(labels) {
  return Object.keys(labels || {}).sort().map((k) => `${k}=${labels[k]}`);
}

export async function render(main, params, query) {
  const st = readState(query);
  const sel = { ids: new Set(), all: false }; // all: every agent matching the filter
  let page = { agents: [], total: 0 };
  let summary = null;
  let seq = 0;
  let ctrl = null;
  const canUpgrade = can('operator');

  const summaryBox = h('section', { class: 'fleet-summary', 'data-test': 'fleet-summary', 'aria-labelledby': 'fleet-sum-h' });
  const tableBox = h('div', { class: 'fleet-table-box' });
  const selBox = h('div', { class: 'fleet-selbar', 'data-test': 'fleet-selection', 'aria-live': 'polite' });
  const errBox = h('div');
  const totalEl = h('span', { class: 'muted', 'data-test': 'fleet-total' });

  // ----- filters -----

  const qIn = h('input', { type: 'search', value: st.q, placeholder: 'name, hostname, id, label value', 'data-test': 'filter-search', autocomplete: 'off', spellcheck: 'false' });
  // Platform and version are typed, with the known ones offered (a
  // datalist): any value works before the summary has named them.
  const platformList = h('datalist', { id: 'fleet-platforms' });
  const platformIn = h('input', { type: 'text', value: st.platform, list: 'fleet-platforms', placeholder: 'any, e.g. linux/amd64', size: 14, 'data-test': 'filter-platform', autocomplete: 'off', spellcheck: 'false' });
  const versionList = h('datalist', { id: 'fleet-versions' });
  const versionIn = h('input', { type: 'text', value: st.version, list: 'fleet-versions', placeholder: 'e.g. 1.4.0', size: 10, 'data-test': 'filter-version', autocomplete: 'off', spellcheck: 'false' });
  const statusSel = select([['', 'any'], ...STATUSES.map((s) => [s, s])], st.status, { 'data-test': 'filter-status' });
  const upgradeSel = select([['', 'any'], ...UPGRADE], st.upgrade_status, { 'data-test': 'filter-upgrade-status' });
  const osIn = h('input', { type: 'text', value: st.os_family, placeholder: 'linux', size: 8, 'data-test': 'filter-os-family', autocomplete: 'off', spellcheck: 'false' });
  const clusterIn = h('input', { type: 'text', value: st.cluster, size: 10, 'data-test': 'filter-cluster', autocomplete: 'off', spellcheck: 'false' });
  const labelIn = h('input', { type: 'text', value: st.labels.join(' '), placeholder: 'env=prod ring=early', size: 18, 'data-test': 'filter-label', autocomplete: 'off', spellcheck: 'false' });
  const inactiveIn = h('input', { type: 'checkbox', checked: st.inactive, 'data-test': 'filter-inactive', role: 'switch' });
  const labelErr = h('small', { class: 'fleet-field-error', 'aria-live': 'polite' });

  function fillPlatforms() {
    const names = new Set((summary ? summary.platforms : []).map((p) => p.platform));
    if (st.platform) names.add(st.platform);
    mount(platformList, [...names].sort().map((p) => h('option', { value: p })));
    const versions = new Set();
    for (const p of summary ? summary.platforms : []) if (!st.platform || p.platform === st.platform) p.versions.forEach((v) => versions.add(v.version));
    mount(versionList, [...versions].map((v) => h('option', { value: v })));
  }

  // apply makes a filter change: back to the first page, into the
  // address, reloaded. A selection of "all matching" no longer means the
  // same agents.
  function apply(change) {
    if (Object.entries(change).every(([k, v]) => String(st[k]) === String(v))) return; // nothing changed
    Object.assign(st, change);
    if (!('offset' in change)) st.offset = 0;
    sel.all = false;
    syncControls();
    save();
    // The summary's chips and bars show the filter: they change with it
    // even when the counts need no new answer.
    renderSummary();
    load();
  }

  function save() {
    const q = filterQuery(st);
    if (st.sort !== 'name') q.sort = st.sort;
    if (st.offset) q.offset = st.offset;
    setQuery(q);
  }

  function syncControls() {
    if (document.activeElement !== qIn) qIn.value = st.q;
    if (document.activeElement !== versionIn) versionIn.value = st.version;
    if (document.activeElement !== platformIn) platformIn.value = st.platform;
    if (document.activeElement !== osIn) osIn.value = st.os_family;
    if (document.activeElement !== clusterIn) clusterIn.value = st.cluster;
    if (document.activeElement !== labelIn) labelIn.value = st.labels.join(' ');
    statusSel.value = st.status;
    upgradeSel.value = st.upgrade_status;
    inactiveIn.checked = st.inactive;
    fillPlatforms();
  }

  // typedNow applies what the text fields say; typing waits for a pause
  // (typed), choosing from a list (change) does not.
  function typedNow() {
    const labels = labelIn.value.split(/[\s,]+/).filter(Boolean);
    const wrong = labels.find((kv) => kv.indexOf('=') <= 0);
    labelErr.textContent = wrong ? `label "${wrong}": give key=value, e.g. env=prod` : '';
    apply({
      q: qIn.value.trim(), version: versionIn.value.trim(), os_family: osIn.value.trim(), cluster: clusterIn.value.trim(),
      labels: labels.filter((kv) => kv.indexOf('=') > 0), platform: platformIn.value.trim(),
    });
  }
  const typed = debounce(typedNow, 150);
  for (const el of [qIn, platformIn, versionIn, osIn, clusterIn, labelIn]) el.addEventListener('input', typed);
  for (const el of [platformIn, versionIn]) el.addEventListener('change', typedNow);
  statusSel.addEventListener('change', () => apply({ status: statusSel.value }));
  upgradeSel.addEventListener('change', () => apply({ upgrade_status: upgradeSel.value }));
  inactiveIn.addEventListener('change', () => apply({ inactive: inactiveIn.checked }));

  const filters = h('form', { class: 'fleet-filters', 'data-test': 'fleet-filters', role: 'search', 'aria-label': 'Filter agents', onsubmit: (e) => e.preventDefault() },
    h('div', { class: 'row' },
      field('Search', qIn),
      field('Platform', platformIn),
      platformList,
      field('Version', versionIn),
      versionList,
      field('Status', statusSel),
      field('Upgrade status', upgradeSel),
      h('div', { class: 'field' }, h('label', { for: 'fleet-label-in' }, 'Labels (key=value)'), Object.assign(labelIn, { id: 'fleet-label-in' }), labelErr),
      field('OS family', osIn),
      field('Cluster', clusterIn),
      h('div', { class: 'field fleet-switch' }, h('label', {}, inactiveIn, ' Show inactive')),
      h('button', { type: 'button', 'data-test': 'filter-clear', onclick: () => apply({ q: '', platform: '', os_family: '', version: '', cluster: '', status: '', upgrade_status: '', labels: [], inactive: false }) }, 'Clear filters')));

  // ----- summary: chips and the version chart -----

  function chip(kind, value, word, count) {
    const key = kind === 'status' ? 'status' : 'upgrade_status';
    const on = st[key] === value;
    return h('button', {
      type: 'button', class: `fleet-chip b-${value}`, 'aria-pressed': on ? 'true' : 'false',
      'data-test': `chip-${kind}-${value}`, 'data-count': count,
      title: on ? `Showing ${word} agents: click to show every ${kind === 'status' ? 'status' : 'upgrade status'}` : `Show ${word} agents only`,
      onclick: () => apply({ [key]: st[key] === value ? '' : value }),
    }, h('span', { class: 'fleet-chip-word' }, word), ' ', h('span', { class: 'fleet-chip-n' }, num(count)));
  }

  function chart(platforms) {
    if (!platforms.length) return h('p', { class: 'muted' }, 'No agents match.');
    return h('div', { class: 'fleet-chart', 'data-test': 'fleet-chart' }, platforms.map((p) => {
      const max = Math.max(...p.versions.map((v) => v.agents), 1);
      const shown = p.versions.slice(0, 10);
      const rest = p.versions.slice(10);
      const restN = rest.reduce((n, v) => n + v.agents, 0);
      return h('figure', { class: 'fleet-platform', 'data-test': 'fleet-chart-platform', 'data-platform': p.platform },
        h('figcaption', {}, h('strong', {}, p.platform), ' ', h('span', { class: 'muted' }, `${num(p.agents)} agent${p.agents === 1 ? '' : 's'}`)),
        h('ul', { class: 'fleet-bars', 'aria-label': `Agents per version on ${p.platform}` }, shown.map((v) => {
          const on = st.version === v.version && st.platform === p.platform;
          const pct = p.agents ? Math.round((v.agents / p.agents) * 100) : 0;
          return h('li', {},
            h('button', {
              type: 'button', class: 'fleet-bar', 'aria-pressed': on ? 'true' : 'false',
              'data-test': 'fleet-chart-bar', 'data-platform': p.platform, 'data-version': v.version, 'data-agents': v.agents,
              title: on ? 'Show every version' : `Show the agents of ${p.platform} on ${v.version}`,
              onclick: () => apply(st.version === v.version && st.platform === p.platform ? { version: '' } : { platform: p.platform, version: v.version }),
            },
            h('span', { class: 'fleet-bar-version mono' }, v.version || '(none)'),
            h('span', { class: 'fleet-bar-track', 'aria-hidden': 'true' },
              h('span', { class: 'fleet-bar-fill', 'data-w': Math.max(1, Math.round((v.agents / max) * 100)) })),
            h('span', { class: 'fleet-bar-n' }, `${num(v.agents)} (${pct}%)`)));
        })),
        rest.length ? h('p', { class: 'muted fleet-bar-rest' }, `and ${num(restN)} on ${rest.length} older version${rest.length === 1 ? '' : 's'}`) : null);
    }));
  }

  function renderSummary() {
    if (!summary) return;
    const a = document.activeElement;
    const had = a && summaryBox.contains(a) ? [a.dataset.test, a.dataset.platform, a.dataset.version] : null;
    const statuses = STATUSES.filter((s) => s !== 'inactive' || st.inactive || st.status === 'inactive');
    mount(summaryBox,
      h('h2', { id: 'fleet-sum-h', class: 'fleet-sr' }, 'Overview'),
      h('div', { class: 'fleet-chips', role: 'group', 'aria-label': 'Agents by status' },
        h('span', { class: 'fleet-chips-label' }, 'Status'), statuses.map((s) => chip('status', s, s, summary.by_status[s] || 0))),
      h('div', { class: 'fleet-chips', role: 'group', 'aria-label': 'Agents by upgrade status' },
        h('span', { class: 'fleet-chips-label' }, 'Upgrade'), UPGRADE.map(([v, w]) => chip('upgrade', v, w, summary.by_upgrade_status[v] || 0))),
      h('h3', {}, 'Versions by platform'),
      chart(summary.platforms));
    // The CSP allows no inline style attribute in markup, but a property
    // set from script is not markup: widths go through the CSSOM.
    for (const f of summaryBox.querySelectorAll('.fleet-bar-fill')) f.style.width = f.dataset.w + '%';
    if (had) {
      const el = [...summaryBox.querySelectorAll('button')].find((b) => b.dataset.test === had[0] && b.dataset.platform === had[1] && b.dataset.version === had[2]);
      if (el) el.focus({ preventScroll: true });
    }
  }

  // ----- table -----

  function selectedCount() {
    return sel.all ? page.total : sel.ids.size;
  }

  function renderSelection() {
    const n = selectedCount();
    const onPage = page.agents.length > 0 && page.agents.every((a) => sel.ids.has(a.id));
    const parts = [];
    if (n) parts.push(h('strong', {}, sel.all ? `All ${num(n)} agents matching the filter are selected.` : `${num(n)} agent${n === 1 ? '' : 's'} selected.`));
    if (!sel.all && onPage && page.total > page.agents.length) {
      parts.push(' ', h('button', { type: 'button', class: 'link', 'data-test': 'fleet-select-all', onclick: () => { sel.all = true; renderTable(); } },
        `Select all ${num(page.total)} agents matching the filter`));
    }
    if (n) parts.push(' ', h('button', { type: 'button', class: 'link', 'data-test': 'fleet-clear-selection', onclick: () => { sel.all = false; sel.ids.clear(); renderTable(); } }, 'Clear selection'));
    mount(selBox, parts);
    upgradeBtn.disabled = n === 0;
    upgradeBtn.title = n ? '' : 'Select agents first (the checkboxes), or all agents matching the filter';
  }

  const upgradeBtn = h('button', {
    type: 'button', class: 'primary', 'data-test': 'fleet-upgrade', disabled: true,
    onclick: () => {
      if (sel.all) openUpgrade({ filter: agentFilter(st), count: page.total });
      else openUpgrade({ agentIDs: [...sel.ids], count: sel.ids.size });
    },
  }, 'Upgrade…');

  function toggle(id, on) {
    if (sel.all) {
      // Leaving "all matching": keep what this page shows.
      sel.all = false;
      page.agents.forEach((a) => sel.ids.add(a.id));
    }
    if (on) sel.ids.add(id);
    else sel.ids.delete(id);
    renderTable();
  }

  function columns() {
    const cols = [];
    if (canUpgrade) {
      const all = page.agents.length > 0 && (sel.all || page.agents.every((a) => sel.ids.has(a.id)));
      const some = !all && page.agents.some((a) => sel.ids.has(a.id));
      const head = h('input', { type: 'checkbox', checked: all, 'aria-label': 'Select every agent on this page', 'data-test': 'fleet-select-page',
        onchange: (e) => {
          if (sel.all) sel.all = false;
          page.agents.forEach((a) => (e.target.checked ? sel.ids.add(a.id) : sel.ids.delete(a.id)));
          renderTable();
        } });
      head.indeterminate = some;
      cols.push({ label: head, class: 'fleet-check', cell: (a) => h('input', {
        type: 'checkbox', checked: sel.all || sel.ids.has(a.id), 'aria-label': `Select ${a.name || a.id}`, 'data-test': 'fleet-select', 'data-id': a.id,
        onchange: (e) => toggle(a.id, e.target.checked),
      }) });
    }
    cols.push(
      { label: 'Name', key: 'name', cell: (a) => h('span', {}, link('/agents/' + enc(a.id), a.name || a.id, { 'data-test': 'agent-link' }),
        a.hostname && a.hostname !== a.name ? h('div', { class: 'muted fleet-sub' }, a.hostname) : null) },
      { label: 'Platform', key: 'platform', cell: (a) => h('span', { class: 'mono' }, a.platform) },
      { label: 'OS', key: 'os_family', cell: (a) => a.os_family },
      { label: 'Version', key: 'version', cell: (a) => h('span', { class: 'mono', 'data-test': 'agent-version' }, a.version) },
      { label: 'Supervisor', key: 'supervisor_version', cell: (a) => a.supervised ? h('span', { class: 'mono' }, a.supervisor_version || '?') : h('span', { class: 'muted' }, 'unsupervised') },
      { label: 'Workloads', cell: (a) => {
        const wh = workloadHealth(a.workloads);
        return h('span', { class: wh.bad ? 'fleet-bad' : '', 'data-test': 'agent-workloads' }, wh.text);
      } },
      { label: 'Status', key: 'status', cell: (a) => h('span', { 'data-test': 'agent-status' }, badge(a.status), a.busy && a.status !== 'revoked' ? [' ', badge('busy')] : null) },
      { label: 'Upgrade', key: 'upgrade_status', cell: (a) => h('span', { 'data-test': 'agent-upgrade-status' },
        h('span', { class: `badge b-${a.upgrade_status}` }, upgradeWord[a.upgrade_status] || (a.upgrade_status || '—').replaceAll('_', ' ')),
        a.upgrade_status === 'upgrade_recommended' && a.target_version ? h('span', { class: 'muted fleet-sub' }, ` → ${a.target_version}`) : null) },
      { label: 'Labels', cell: (a) => h('span', { class: 'fleet-labels' }, labelsText(a.labels).map((kv) =>
        h('button', { type: 'button', class: 'fleet-label', title: `Filter by ${kv}`, onclick: () => !st.labels.includes(kv) && apply({ labels: [...st.labels, kv] }) }, kv))) },
      { label: 'Cluster', key: 'cluster', cell: (a) => a.cluster || h('span', { class: 'muted' }, '—') },
      { label: 'Last seen', key: 'last_seen', cell: (a) => timeEl(a.last_seen) },
    );
    return cols;
  }

  function renderTable() {
    const focused = document.activeElement && tableBox.contains(document.activeElement) ? focusKey(document.activeElement) : null;
    mount(tableBox,
      table({
        columns: columns(), rows: page.agents, sort: st.sort, attrs: { 'data-test': 'fleet-table', class: 'fleet-table' },
        caption: h('span', { class: 'fleet-sr' }, 'Agents'),
        empty: 'No agent matches these filters.',
        onSort: (s) => apply({ sort: s, offset: 0 }),
        rowAttrs: (a) => ({ 'data-test': 'agent-row', 'data-id': a.id, class: sel.all || sel.ids.has(a.id) ? 'fleet-selected' : '' }),
      }),
      pager({ offset: st.offset, limit: PAGE, total: page.total, onPage: (o) => { st.offset = o; save(); load(); } }));
    const first = page.total ? st.offset + 1 : 0;
    totalEl.textContent = page.total ? `${num(page.total)} agent${page.total === 1 ? '' : 's'} · showing ${num(first)}–${num(st.offset + page.agents.length)}` : 'no agents';
    renderSelection();
    if (focused) restoreFocus(focused);
  }

  // A live refresh rebuilds the table; the control that had the focus
  // gets it back.
  function focusKey(el) {
    return { test: el.dataset.test, id: el.dataset.id || (el.closest('tr') && el.closest('tr').dataset.id) || '', text: el.textContent };
  }
  function restoreFocus(k) {
    const cands = [...tableBox.querySelectorAll(k.test ? `[data-test="${k.test}"]` : 'button, a, input')];
    const el = cands.find((c) => (c.dataset.id || (c.closest('tr') && c.closest('tr').dataset.id) || '') === k.id && (k.test || c.textContent === k.text));
    if (el) el.focus({ preventScroll: true });
  }

  // ----- loading -----

  // load fetches the page of agents, then, when its query changed (or
  // fresh says the fleet may have), the summary: the table does not wait
  // for the counts. A newer load makes an older answer moot.
  let sumSeq = 0;
  let sumCtrl = null;
  let lastSumQ = null;
  function load(fresh = false) {
    // The chips count every status under the other filters (a facet), so
    // one can switch between them; the chart follows the whole filter but
    // the version, so the chosen version stands among the others.
    const sumQ = filterQuery(st, ['status', 'upgrade_status', 'version']);
    if (st.status === 'inactive') sumQ.inactive = true;
    const sq = qs(sumQ);
    const lists = loadList();
    if (fresh || sq !== lastSumQ) {
      lastSumQ = sq;
      // After the page: both count the whole fleet on the server, and the
      // table is what the person waits for.
      return lists.then(() => lastSumQ === sq && loadSummary(sq));
    }
    return lists;
  }

  async function loadList() {
    const my = ++seq;
    if (ctrl) ctrl.abort();
    ctrl = new AbortController();
    const listQ = { ...filterQuery(st), sort: st.sort === 'name' ? '' : st.sort, limit: PAGE, offset: st.offset };
    try {
      const list = await api('GET', '/v1/agents' + qs(listQ), undefined, { signal: ctrl.signal });
      if (my !== seq) return;
      mount(errBox);
      page = { agents: list.agents || [], total: typeof list.total === 'number' ? list.total : (list.agents || []).length };
      // A server without paging answers every agent: show one page.
      if (page.agents.length > PAGE) page.agents = page.agents.slice(st.offset, st.offset + PAGE);
      if (st.offset && st.offset >= page.total && page.total > 0) {
        // The fleet shrank under this page: show its last one.
        st.offset = Math.floor((page.total - 1) / PAGE) * PAGE;
        save();
        return loadList();
      }
      renderTable();
    } catch (e) {
      if (e.name === 'AbortError' || my !== seq) return;
      showError(errBox, e);
    }
  }

  async function loadSummary(sq) {
    const my = ++sumSeq;
    if (sumCtrl) sumCtrl.abort();
    sumCtrl = new AbortController();
    try {
      const sum = await api('GET', '/v1/agents/summary' + sq, undefined, { signal: sumCtrl.signal });
      if (my !== sumSeq) return;
      summary = sum;
      fillPlatforms();
      renderSummary();
    } catch (e) {
      if (e.name === 'AbortError' || my !== sumSeq) return;
      lastSumQ = null; // asked again next time
      showError(errBox, e);
    }
  }

  mount(main,
    h('div', { class: 'toolbar' },
      h('h1', {}, 'Fleet'), totalEl, h('span', { class: 'spacer' }),
      canUpgrade ? upgradeBtn : null),
    filters,
    errBox,
    summaryBox,
    h('section', { 'aria-label': 'Agents' }, selBox, tableBox));
  fillPlatforms();
  await load();

  const stopLive = liveRefresh(() => load(true), fleetEvent, 3000);
  // Statuses move with time alone (online -> offline): refresh now and
  // then even when no event comes.
  const timer = setInterval(() => !document.hidden && load(true), 30000);
  return () => {
    stopLive();
    clearInterval(timer);
    if (ctrl) ctrl.abort();
    if (sumCtrl) sumCtrl.abort();
  };
}
