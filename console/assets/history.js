// history.js: Upgrade History (#/history). Every deployment of every run,
// repair and activation upgrade, newest first, paged and filtered on the
// server (GET /v1/deployments: agent, run, state, kind, since, until,
// limit, offset; total), kept current by the live feed. Each row links to
// its DEPLOY report (#/deployments/{id}), its run and its agent; repairs
// are marked REPAIR as `molt history` marks them by their kind. Operators
// get Skip Upgrade on a deployment its agent has not started, Cancel on a
// stuck one and Retry on a stuck or failed one; the server's answer is
// shown as it is.
//
// data-test names: history, history-run (the run's summary when filtered
// by run), history-filters, filter-agent, filter-run, filter-state,
// filter-kind, filter-time, filter-since, filter-until, filter-limit, filter-apply,
// filter-clear, history-table, history-row (data-id, data-state,
// data-kind on it), dep-link, dep-run, dep-agent, dep-state, dep-repair,
// dep-skip, dep-cancel, dep-retry, page-prev, page-info, page-next.

import {
  api, qs, enc, h, mount, link, timeEl, badge, showError, table, pager, field, select,
  can, action, confirmDialog, liveRefresh, onLive, debounce, setQuery, navigate, num,
} from './lib.js';

const pageSizes = ['25', '50', '100', '200'];

// The deployment states, in order (protocol.DeploymentStates).
export const states = ['pending', 'waiting_for_host', 'waiting_for_window', 'requested', 'downloading', 'staged',
  'restarting', 'watching', 'stuck', 'succeeded', 'failed', 'rolled_back', 'skipped', 'cancelled'];

const queued = new Set(['pending', 'waiting_for_host', 'waiting_for_window']);
const inProgress = new Set(['requested', 'downloading', 'staged', 'restarting', 'watching']);

const timePresets = [
  ['', 'Any time'], ['1h', 'Last hour'], ['24h', 'Last 24 hours'], ['168h', 'Last 7 days'], ['720h', 'Last 30 days'],
  ['custom', 'Custom range…'],
];

// kindCell marks a deployment's kind: REPAIR (the agent came back on
// another version than its last target), activation, revert.
export function kindCell(d) {
  const out = [];
  if (d.kind === 'repair') {
    out.push(h('span', { class: 'badge b-repair', 'data-test': 'dep-repair', title: 'Repair: the agent came back with another version than its last successful target' }, 'REPAIR'));
  } else {
    out.push(h('span', { class: 'muted' }, d.kind || 'upgrade'));
  }
  if (d.revert) out.push(' ', h('span', { class: 'badge b-revert', title: 'Back to the version the agent ran before' }, 'revert'));
  return out;
}

export function waveText(d) {
  if (d.canary) return 'canary';
  return d.wave ? `wave ${d.wave}` : '';
}

// stateCell is the state badge, with the download's progress while one
// runs.
export function stateCell(d) {
  const pct = inProgress.has(d.state) && d.total > 0 ? ` ${Math.floor((d.done * 100) / d.total)}%` : '';
  return h('span', { 'data-test': 'dep-state' }, badge(d.state), pct ? h('span', { class: 'muted' }, pct) : null);
}

// depActions are the operator's actions the server allows on d in its
// state: skip (not started), cancel (stuck), retry (stuck or failed).
// done(newDeployment, verb) runs after one succeeded.
export function depActions(d, done) {
  if (!can('operator')) return [];
  const out = [];
  if (queued.has(d.state)) {
    out.push(h('button', {
      type: 'button', 'data-test': 'dep-skip', title: 'Skip Upgrade: leave this agent out of its run',
      onclick: async (e) => {
        const btn = e.currentTarget;
        const ok = await confirmDialog(`Skip the upgrade of ${d.agent_name || d.agent_id}?`,
          h('p', {}, `Deployment ${d.id} (to ${d.target}) will not start: the agent is left out of its run and is not repaired later.`),
          'Skip Upgrade', true);
        if (!ok) return;
        const r = await action(btn, () => api('POST', `/v1/deployments/${enc(d.id)}/skip`), (x) => `Deployment ${x.id} is ${x.state}.`).catch(() => null);
        if (r) done(r, 'skip');
      },
    }, 'Skip Upgrade'));
  }
  if (d.state === 'stuck') {
    out.push(h('button', {
      type: 'button', 'data-test': 'dep-cancel', title: 'End this stuck deployment',
      onclick: async (e) => {
        const btn = e.currentTarget;
        const ok = await confirmDialog(`Cancel deployment ${d.id}?`,
          h('p', {}, 'The stuck deployment ends: its agent is left out of the run and is not repaired back to an older version.'),
          'Cancel deployment', true);
        if (!ok) return;
        const r = await action(btn, () => api('POST', `/v1/deployments/${enc(d.id)}/cancel`), (x) => `Deployment ${x.id} is ${x.state}.`).catch(() => null);
        if (r) done(r, 'cancel');
      },
    }, 'Cancel'));
  }
  if (d.state === 'stuck' || d.state === 'failed') {
    out.push(h('button', {
      type: 'button', 'data-test': 'dep-retry', title: 'Queue the same upgrade again, in the same run and wave',
      onclick: async (e) => {
        const r = await action(e.currentTarget, () => api('POST', `/v1/deployments/${enc(d.id)}/retry`), (x) => `Deployment ${d.id} retried as ${x.id} (${x.state}).`).catch(() => null);
        if (r) done(r, 'retry');
      },
    }, 'Retry'));
  }
  return out;
}

function agentCell(d) {
  return link(`/agents/${enc(d.agent_id)}`, d.agent_name || d.agent_id, { 'data-test': 'dep-agent', title: d.agent_id });
}

function versions(d) {
  return h('span', { class: 'mono' }, d.from || '—', ' → ', d.target);
}

function oneLine(s, n = 90) {
  if (!s) return '';
  const t = s.replace(/\s+/g, ' ');
  return t.length > n ? t.slice(0, n - 1) + '…' : t;
}

// pageLimit reads the page size from the address: 1 to 1000, 50 when
// absent or wrong.
function pageLimit(v) {
  const n = parseInt(v || '', 10);
  return n >= 1 && n <= 1000 ? String(n) : '50';
}

// toLocalInput turns an RFC 3339 time into a datetime-local value.
function toLocalInput(v) {
  const d = new Date(v);
  if (!v || isNaN(d)) return '';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

function fromLocalInput(v) {
  if (!v) return '';
  const d = new Date(v);
  return isNaN(d) ? '' : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

export async function render(main, params, query) {
  const f = {
    agent: query.get('agent') || '',
    run: query.get('run') || '',
    state: query.get('state') || '',
    kind: query.get('kind') || '',
    since: query.get('since') || '',
    until: query.get('until') || '',
    limit: pageLimit(query.get('limit')),
    offset: Math.max(0, parseInt(query.get('offset') || '0', 10) || 0),
  };
  // A duration from the address (since=2h) that no preset names becomes
  // one, so Apply keeps it.
  const isDuration = (v) => /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(v);
  const presets = !f.until && isDuration(f.since) && !timePresets.some(([v]) => v === f.since)
    ? [...timePresets.slice(0, -1), [f.since, `Last ${f.since}`], timePresets[timePresets.length - 1]] : timePresets;
  const preset = !f.since && !f.until ? '' : (!f.until && presets.some(([v]) => v === f.since) ? f.since : 'custom');

  const runBox = h('div', { 'data-test': 'history-run' });
  const errBox = h('div', { 'aria-live': 'polite' });
  const listBox = h('div', { 'aria-live': 'off' });
  const status = h('p', { class: 'muted', role: 'status', 'data-test': 'history-status' });

  // ----- filters -----
  const agentIn = h('input', { type: 'search', value: f.agent, placeholder: 'id or name', 'data-test': 'filter-agent', size: 18, spellcheck: 'false' });
  const runSel = select([['', 'Any run']], f.run, { 'data-test': 'filter-run' });
  const stateSel = select([['', 'Any state'], ...states.map((s) => [s, s.replaceAll('_', ' ')])], f.state, { 'data-test': 'filter-state' });
  const kindSel = select([['', 'Any kind'], ['upgrade', 'upgrade (a run)'], ['repair', 'REPAIR'], ['activation', 'activation']], f.kind, { 'data-test': 'filter-kind' });
  const timeSel = select(presets, preset, { 'data-test': 'filter-time' });
  const sinceIn = h('input', { type: 'datetime-local', value: toLocalInput(f.since), 'data-test': 'filter-since' });
  const untilIn = h('input', { type: 'datetime-local', value: toLocalInput(f.until), 'data-test': 'filter-until' });
  const sizeSel = select(pageSizes.includes(f.limit) ? pageSizes : [f.limit, ...pageSizes], f.limit, { 'data-test': 'filter-limit' });
  const custom = h('div', { class: 'row hist-custom' }, field('From', sinceIn), field('Until', untilIn));
  custom.hidden = preset !== 'custom';
  timeSel.addEventListener('change', () => {
    custom.hidden = timeSel.value !== 'custom';
    if (timeSel.value !== 'custom') apply();
  });
  for (const el of [runSel, stateSel, kindSel, sizeSel]) el.addEventListener('change', () => apply());

  function apply() {
    f.agent = agentIn.value.trim();
    f.run = runSel.value;
    f.state = stateSel.value;
    f.kind = kindSel.value;
    f.limit = sizeSel.value;
    if (timeSel.value === 'custom') {
      f.since = fromLocalInput(sinceIn.value);
      f.until = fromLocalInput(untilIn.value);
    } else {
      f.since = timeSel.value;
      f.until = '';
    }
    f.offset = 0;
    save();
    loadRun();
    load();
  }

  function save() {
    setQuery({ agent: f.agent, run: f.run, state: f.state, kind: f.kind, since: f.since, until: f.until,
      limit: f.limit === '50' ? '' : f.limit, offset: f.offset || '' });
  }

  const form = h('form', { class: 'toolbar hist-filters', 'data-test': 'history-filters', role: 'search', 'aria-label': 'Filter the history' },
    field('Agent', agentIn), field('Run', runSel), field('State', stateSel), field('Kind', kindSel),
    field('Created', timeSel), custom, field('Per page', sizeSel),
    h('div', { class: 'hist-buttons' },
      h('button', { type: 'submit', class: 'primary', 'data-test': 'filter-apply' }, 'Apply'),
      h('button', { type: 'button', 'data-test': 'filter-clear', onclick: () => navigate('/history') }, 'Clear')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    apply();
  });

  mount(main, h('section', { 'data-test': 'history', 'aria-labelledby': 'hist-h1' },
    h('h1', { id: 'hist-h1' }, 'Upgrade History'),
    h('p', { class: 'muted' }, 'Every deployment of every run, repair and activation upgrade, newest first. A deployment opens its DEPLOY report: every step with its time.'),
    form, runBox, errBox, status, listBox));

  // The runs for the filter: the newest first, the one asked for kept;
  // a run the live feed names that the list lacks reloads it.
  const knownRuns = new Set();
  function loadRuns() {
    return api('GET', '/v1/runs').then((r) => {
      const runs = (r && r.runs) || [];
      runs.forEach((x) => knownRuns.add(x.id));
      const opts = [['', 'Any run'], ...runs.slice(0, 300).map((x) => [x.id, `${x.id} · ${x.status.replaceAll('_', ' ')}${x.text ? ' · ' + oneLine(x.text, 40) : ''}`])];
      const cur = runSel.value || f.run;
      if (cur && !opts.some(([v]) => v === cur)) opts.push([cur, cur]);
      mount(runSel, opts.map(([v, t]) => h('option', { value: v, selected: v === cur }, t)));
    }).catch(() => {
      if (f.run && !runSel.querySelector('option[value="' + CSS.escape(f.run) + '"]')) runSel.append(h('option', { value: f.run, selected: true }, f.run));
    });
  }
  loadRuns();
  const reloadRuns = debounce(loadRuns, 2000);

  // ----- the run's summary, when filtered by one -----
  async function loadRun() {
    if (!f.run) {
      mount(runBox);
      return;
    }
    try {
      const r = await api('GET', `/v1/runs/${enc(f.run)}`);
      const counts = Object.entries(r.counts || {}).filter(([, n]) => n > 0);
      mount(runBox, h('div', { class: 'card hist-run' },
        h('h2', {}, 'Run ', link(`/runs/${enc(r.id)}`, r.id, { 'data-test': 'history-run-link' }), ' ', badge(r.status)),
        r.text ? h('p', {}, r.text) : null,
        h('dl', { class: 'kv' },
          h('dt', {}, 'Target'), h('dd', { class: 'mono' }, r.target || '—'),
          h('dt', {}, 'Created'), h('dd', {}, timeEl(r.created, true), r.created_by ? ` by ${r.created_by}` : ''),
          r.ended && !r.ended.startsWith('0001') ? [h('dt', {}, 'Ended'), h('dd', {}, timeEl(r.ended, true))] : null,
          r.reason ? [h('dt', {}, 'Reason'), h('dd', {}, r.reason)] : null,
          h('dt', {}, 'Deployments'), h('dd', {}, `${num(r.total)} in all: `,
            counts.length ? counts.map(([s, n], i) => [i ? ', ' : '', `${num(n)} ${s.replaceAll('_', ' ')}`]) : 'none'))));
    } catch (e) {
      showError(runBox, e);
    }
  }

  // ----- the table -----
  let seq = 0;
  async function load() {
    const my = ++seq;
    const q = { agent: f.agent, run: f.run, state: f.state, kind: f.kind, since: f.since, until: f.until, limit: f.limit, offset: f.offset };
    let res;
    try {
      res = await api('GET', '/v1/deployments' + qs(q));
    } catch (e) {
      if (my !== seq) return;
      showError(errBox, e);
      mount(listBox);
      mount(status);
      return;
    }
    if (my !== seq) return;
    mount(errBox);
    const deps = res.deployments || [];
    const total = res.total ?? deps.length;
    const limit = Number(f.limit);
    if (f.offset > 0 && deps.length === 0 && total > 0) {
      // The page emptied (a filter, or deployments removed): show the last one.
      f.offset = Math.max(0, Math.floor((total - 1) / limit) * limit);
      save();
      return load();
    }
    mount(status, total ? `${num(total)} ${total === 1 ? 'deployment matches' : 'deployments match'}.` : '');
    const columns = [
      { label: 'Deployment', cell: (d) => link(`/deployments/${enc(d.id)}`, d.id, { 'data-test': 'dep-link', class: 'mono' }) },
      { label: 'Run', cell: (d) => (d.run_id ? link(`/runs/${enc(d.run_id)}`, d.run_id, { 'data-test': 'dep-run', class: 'mono' }) : h('span', { class: 'muted' }, '—')) },
      { label: 'Agent', cell: agentCell },
      { label: 'Kind', cell: kindCell },
      { label: 'Version', cell: versions },
      { label: 'Wave', cell: (d) => waveText(d) || h('span', { class: 'muted' }, '—') },
      { label: 'State', cell: stateCell },
      { label: 'Created', cell: (d) => timeEl(d.created) },
      { label: 'Ended', cell: (d) => timeEl(d.ended) },
      { label: 'Reason', class: 'hist-reason', cell: (d) => (d.reason ? h('span', { title: d.reason }, oneLine(d.reason)) : h('span', { class: 'muted' }, '—')) },
    ];
    if (can('operator')) {
      columns.push({ label: 'Actions', cell: (d) => h('div', { class: 'hist-actions' }, depActions(d, (nd, verb) => {
        if (verb === 'retry') navigate(`/deployments/${enc(nd.id)}`);
        else load();
      })) });
    }
    const empty = f.agent || f.run || f.state || f.kind || f.since || f.until
      ? 'No deployment matches these filters.' : 'No deployment yet: start a run from the fleet.';
    mount(listBox,
      table({
        columns, rows: deps, empty, caption: 'Deployments, newest first',
        attrs: { 'data-test': 'history-table', class: 'hist-table' },
        rowAttrs: (d) => ({ 'data-test': 'history-row', 'data-id': d.id, 'data-state': d.state, 'data-kind': d.kind, class: d.kind === 'repair' ? 'hist-repair' : '' }),
      }),
      pager({ offset: f.offset, limit, total, onPage: (o) => { f.offset = o; save(); load(); } }));
  }

  await Promise.all([loadRun(), load()]);
  // Deployments change with the events of deployments and runs; a
  // reconnect (null) reloads too.
  const unsubRuns = onLive((ev) => {
    if (ev && ev.run_id && !knownRuns.has(ev.run_id)) {
      knownRuns.add(ev.run_id);
      reloadRuns();
    }
  });
  const unsub = liveRefresh(() => {
    load();
    if (f.run) loadRun();
  }, (ev) => !!(ev.deployment_id || ev.run_id), 1500);
  return () => {
    unsub();
    unsubRuns();
  };
}
