// run.js: one run (#/runs/{id}). Live progress (a bar and the counts per
// deployment state, per wave with the wave's state), the run's settings
// and rollout controls, its plan and who was left out, the actions its
// status allows (pause, resume, promote, cancel, roll back with a
// preview), the run report (how it ended, failures by reason, waves,
// stage times p50/p95) and its deployments, paged on the server, with
// Skip on one its host has not started. Redrawn on the run's events.
//
// data-test names: run-title, run-status, run-reason, run-text, run-start-at,
// run-actions, run-pause, run-resume, run-promote, run-cancel,
// run-rollback, run-progress, run-ended, run-count-<state>, run-waves,
// wave-row (data-wave), wave-state, run-settings, run-plan,
// run-excluded, run-report, report-states, report-versions,
// report-failures, report-health, report-waves, report-stages,
// report-stage-row (data-stage), run-deployments, run-dep-state,
// dep-row (data-dep, data-state), dep-link, dep-state, dep-reason,
// dep-skip, rollback-dialog, rollback-plan, rollback-excluded,
// rollback-text, rollback-force, rollback-start.

import { api, h, mount, qs, enc, num, can, link, badge, timeEl, table, pager, select, field, setQuery, showError, toast, action, confirmDialog, modal, navigate, liveRefresh, duration, absTime, relTime } from './lib.js';
import { progressBar, endedCount, fmtCounts, fmtTarget, fmtRequested, stateOrder } from './runs.js';
import { filterText } from './upgrade.js';

const pageSize = 50;
const queued = (s) => s === 'pending' || s === 'waiting_for_host' || s === 'waiting_for_window';
const ended = (r) => r.status === 'ended_ok' || r.status === 'ended_not_ok' || r.status === 'cancelled';

// fmtSeconds says a stage's time as precisely as it is worth reading.
export function fmtSeconds(s) {
  if (s === undefined || s === null) return '—';
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${(Math.round(s * 10) / 10).toFixed(1)} s`;
  return duration(Math.round(s) * 1000);
}

// secs says a setting's seconds the way they are given: 90s, 5m, 1h30m.
export function secs(n) {
  n = Math.round(n || 0);
  if (!n) return '0s';
  const parts = [];
  for (const [u, d] of [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]]) {
    if (n >= d) {
      parts.push(Math.floor(n / d) + u);
      n %= d;
    }
  }
  return parts.join('');
}

// A run's reason reads as a warning while it is paused (someone has to
// act) and as an error once it ended badly.
const reasonClass = { paused: 'note run-reason-warn', ended_not_ok: 'error', cancelled: 'error' };

function fmtSelection(s) {
  if (!s) return '—';
  if (s.all) return 'all agents';
  if (s.filter) {
    const t = filterText(s.filter);
    return t === 'every active agent' ? t : 'agents matching ' + t;
  }
  if (s.labels && Object.keys(s.labels).length) return 'label ' + Object.entries(s.labels).map(([k, v]) => `${k}=${v}`).sort().join(', ');
  const ids = s.agent_ids || [];
  if (ids.length > 5) return `${num(ids.length)} agents: ${ids.slice(0, 5).join(', ')}, …`;
  if (ids.length) return 'agents ' + ids.join(', ');
  return '—';
}

// settingsRows are the run's limits and rollout controls (those it set),
// as `molt runs show` lists them.
function settingsRows(r) {
  const out = [];
  const add = (k, v) => out.push([k, v]);
  add('Target', h('span', { class: 'mono' }, fmtTarget(r)));
  if (fmtRequested(r) !== fmtTarget(r)) add('Requested', h('span', { class: 'mono' }, fmtRequested(r)));
  add('Selection', fmtSelection(r.selection));
  add('Scope', r.scope === 'all' ? 'all agents' : 'supervised agents only');
  add('Max concurrent', r.max_concurrent_percent ? `${r.max_concurrent_percent}% of the run's agents` : num(r.max_concurrent));
  if (r.failure_threshold) add('Failure threshold', `pause after ${num(r.failure_threshold)} failed or rolled back`);
  if (r.max_failures_percent) add('Max failures', `${r.max_failures_percent}% of those ended, once ${num(Math.max(1, r.min_sample || 0))} ended`);
  if (r.canary) add('Canaries', `${num(r.canary)}${(r.canary_cover || []).length ? ', covering ' + r.canary_cover.join(', ') : ''}, soak ${secs(r.canary_soak_seconds || 300)}`);
  if ((r.waves || []).length) add('Waves', r.waves.join(', '));
  if ((r.wave_label || []).length) add('Waves by label', r.wave_label.join(', '));
  if (r.wave_approve) add('Next wave', 'on promotion');
  else if (r.wave_wait_seconds) add('Wave wait', secs(r.wave_wait_seconds));
  if (r.wave_done_percent) add('Wave done at', `${r.wave_done_percent}% succeeded`);
  if (r.rate_per_minute) add('Rate', `${num(r.rate_per_minute)} a minute${r.ramp > 1 ? `, ×${r.ramp} every minute` : ''}`);
  if (r.start_at && !r.start_at.startsWith('0001')) add('Start at', timeEl(r.start_at, true));
  if (r.spread_seconds) add('Spread', secs(r.spread_seconds));
  if (r.window) add('Window', r.window);
  if (r.no_health_halt) add('Health halt', 'off');
  else {
    const parts = [`soak ${secs(r.health_soak_seconds || 900)}`, `${r.health_min_agents || 2} agents`, `${r.health_percent || 10}%`];
    add('Health halt', parts.join(', '));
  }
  if (r.created_by) add('Created by', r.created_by);
  add('Created', timeEl(r.created, true));
  if (r.ended && !r.ended.startsWith('0001')) add('Ended', timeEl(r.ended, true));
  return out;
}

function kv(rows, attrs = {}) {
  return h('dl', { class: 'kv', ...attrs }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function planTable(r, attrs) {
  return table({
    caption: 'Plan',
    attrs,
    columns: [
      { label: 'Platform', cell: (p) => h('code', {}, p.platform) },
      { label: 'Agents', class: 'num', cell: (p) => num(p.agents) },
      { label: 'Target', cell: (p) => p.target },
      { label: 'Reverts', cell: (p) => (p.revert ? `${num(p.revert)} revert to a lower version` : '—') },
    ],
    rows: r.plan || [],
    empty: 'No agent.',
  });
}

function excludedTable(ex, attrs) {
  return table({
    caption: `Left out (${num(ex.length)})`,
    attrs,
    columns: [
      { label: 'Agent', cell: (e) => [link('/agents/' + enc(e.agent_id), e.agent_id, { class: 'mono', title: e.agent_name || e.agent_id }), e.agent_name ? ` (${e.agent_name})` : ''] },
      { label: 'Reason', cell: (e) => e.reason },
    ],
    rows: ex,
  });
}

export async function render(main, { id }, query) {
  let run = await api('GET', '/v1/runs/' + enc(id));
  id = run.id;
  let depState = query.get('state') || '';
  let offset = Math.max(0, parseInt(query.get('offset') || '0', 10) || 0);

  const head = h('div');
  const actions = h('div', { class: 'actions', 'data-test': 'run-actions' });
  const progress = h('section', { 'aria-labelledby': 'run-progress-h' });
  const settings = h('section', { 'aria-labelledby': 'run-settings-h' });
  const report = h('section', { 'aria-labelledby': 'run-report-h', 'data-test': 'run-report' },
    h('h2', { id: 'run-report-h' }, 'Report'), h('p', { class: 'muted' }, 'Reading the report…'));
  const deps = h('div', { 'aria-live': 'off' });
  const depStateSel = select([['', 'Any state'], ...stateOrder.map((s) => [s, s.replaceAll('_', ' ')])], depState, { 'data-test': 'run-dep-state' });
  depStateSel.addEventListener('change', () => {
    depState = depStateSel.value;
    offset = 0;
    keepQuery();
    loadDeps();
  });
  const keepQuery = () => setQuery({ state: depState, offset: offset || '' });

  mount(main, head, actions, progress, settings, report,
    h('section', { 'aria-labelledby': 'run-deps-h' },
      h('h2', { id: 'run-deps-h' }, 'Deployments'),
      h('div', { class: 'toolbar' }, field('State', depStateSel)),
      deps));

  function drawHead() {
    document.title = `Run ${run.id} · molt`;
    mount(head,
      h('h1', { 'data-test': 'run-title' }, `Run ${run.id} `, badge(run.status, { 'data-test': 'run-status' })),
      run.text ? h('p', { 'data-test': 'run-text' }, run.text) : null,
      run.reason ? h('p', { class: reasonClass[run.status] || 'note', 'data-test': 'run-reason' }, run.reason) : null,
      !ended(run) && run.start_at && new Date(run.start_at) > Date.now()
        ? h('p', { class: 'note', 'data-test': 'run-start-at' }, 'Nothing starts before ',
          h('time', { datetime: run.start_at }, `${absTime(run.start_at)} (${relTime(run.start_at)})`), '.') : null,
      !run.reason && run.status === 'running' && run.next_wave_at && !run.next_wave_at.startsWith('0001')
        ? h('p', { class: 'note' }, 'The next wave opens ', timeEl(run.next_wave_at, true), '.') : null);
  }

  function drawActions() {
    if (!can('operator')) {
      actions.replaceChildren();
      return;
    }
    const s = run.status;
    const waitsApproval = (run.waves_status || []).some((w) => w.state === 'approval');
    const btn = (name, label, cls, fn) => h('button', { type: 'button', class: cls || '', 'data-test': 'run-' + name, onclick: (e) => fn(e.currentTarget) }, label);
    const post = (verb, okMsg) => (b) => action(b, () => api('POST', `/v1/runs/${enc(id)}/${verb}`), okMsg).then((r) => {
      run = r;
      redraw();
    }).catch(() => {});
    mount(actions,
      s === 'running' ? btn('pause', 'Pause', '', post('pause', 'Run paused: nothing new starts; deployments in progress finish.')) : null,
      s === 'paused' ? btn('resume', 'Resume', 'primary', post('resume', 'Run resumed.')) : null,
      waitsApproval && (s === 'running' || s === 'paused') ? btn('promote', 'Promote next wave', 'primary', post('promote', 'Next wave opened.')) : null,
      s === 'running' || s === 'paused' ? btn('cancel', 'Cancel run…', 'danger', async (b) => {
        const ok = await confirmDialog(`Cancel run ${id}?`, h('p', {}, 'Deployments not yet started are cancelled; those in progress finish. A cancelled run cannot be resumed.'), 'Cancel the run', true);
        if (ok) post('cancel', 'Run cancelled.')(b);
      }) : null,
      s !== 'running' ? btn('rollback', 'Roll back…', '', () => openRollback()) : null);
  }

  function drawProgress() {
    const done = endedCount(run.counts);
    const counts = stateOrder.filter((s) => (run.counts || {})[s]).map((s) =>
      h('li', { 'data-test': 'run-count-' + s }, badge(s), ' ', h('strong', {}, num(run.counts[s]))));
    const waves = run.waves_status || [];
    mount(progress,
      h('h2', { id: 'run-progress-h' }, 'Progress'),
      progressBar(run.counts, run.total, { 'data-test': 'run-progress' }),
      h('p', { 'data-test': 'run-ended' }, `${num(done)} of ${num(run.total)} deployment${run.total === 1 ? '' : 's'} ended`),
      h('ul', { class: 'run-counts' }, counts.length ? counts : h('li', { class: 'muted' }, 'No deployment.')),
      waves.length > 1 ? table({
        caption: 'Waves',
        attrs: { 'data-test': 'run-waves' },
        rowAttrs: (w) => ({ 'data-test': 'wave-row', 'data-wave': String(w.wave), 'aria-current': w.wave === run.wave && !ended(run) ? 'step' : null }),
        columns: [
          { label: 'Wave', class: 'num', cell: (w) => String(w.wave) },
          { label: 'Name', cell: (w) => w.name },
          { label: 'Agents', class: 'num', cell: (w) => num(w.agents) },
          { label: 'State', cell: (w) => [badge(w.state === 'approval' ? 'approval' : w.state, { 'data-test': 'wave-state' }),
            w.state === 'approval' ? h('small', { class: 'muted' }, ' done; the next wave waits for Promote') : null,
            w.wave === run.wave && run.next_wave_at && !run.next_wave_at.startsWith('0001') ? h('small', {}, ' next ', timeEl(run.next_wave_at)) : null] },
          { label: 'Progress', class: 'runs-progress', cell: (w) => [progressBar(w.counts, w.agents), h('small', {}, `${num(endedCount(w.counts))}/${num(w.agents)} ended`)] },
          { label: 'States', cell: (w) => h('small', {}, fmtCounts(w.counts) || '—') },
        ],
        rows: waves,
      }) : null);
  }

  function drawSettings() {
    const ex = run.excluded || [];
    mount(settings,
      h('h2', { id: 'run-settings-h' }, 'Settings'),
      kv(settingsRows(run), { 'data-test': 'run-settings' }),
      (run.plan || []).length ? planTable(run, { 'data-test': 'run-plan' }) : null,
      ex.length ? h('details', {}, h('summary', {}, `Left out when it was created: ${num(ex.length)}`), excludedTable(ex, { 'data-test': 'run-excluded' })) : null);
  }

  // ----- the report -----
  let reportAt = 0;
  let reportTimer = null;
  let reportStatus = '';
  async function loadReport() {
    reportAt = Date.now();
    reportStatus = run.status;
    let rep;
    try {
      rep = await api('GET', `/v1/runs/${enc(id)}/report`);
    } catch (e) {
      mount(report, h('h2', { id: 'run-report-h' }, 'Report'));
      report.append(h('div'));
      showError(report.lastChild, e);
      return;
    }
    drawReport(rep.summary || {});
  }
  // The report reads every deployment: while the run goes on it is
  // refreshed at most every 5 s (30 s above 1,000 deployments), and at
  // once when the status changes.
  function reportSoon() {
    if (run.status !== reportStatus) {
      clearTimeout(reportTimer);
      reportTimer = null;
      loadReport();
      return;
    }
    if (reportTimer) return;
    reportTimer = setTimeout(() => {
      reportTimer = null;
      loadReport();
    }, Math.max(0, reportAt + (run.total > 1000 ? 30000 : 5000) - Date.now()));
  }

  function drawReport(sum) {
    const agentName = (a) => a.agent_name || a.agent_id;
    const waveNames = new Map((run.waves_status || []).map((w) => [w.wave, w.name]));
    const stages = sum.stages || [];
    mount(report,
      h('h2', { id: 'run-report-h' }, 'Report'),
      ended(run) ? null : h('p', { class: 'muted' }, 'As of ', timeEl(new Date(reportAt), true), ': refreshed every few seconds while the run goes on.'),
      h('p', { 'data-test': 'report-states' }, `${num(sum.total || 0)} deployment${sum.total === 1 ? '' : 's'}: ${fmtCounts(sum.states) || 'none'}`),
      (sum.versions || []).length ? table({
        caption: 'Versions moved',
        attrs: { 'data-test': 'report-versions' },
        columns: [
          { label: 'From', cell: (v) => v.from || '—' },
          { label: 'To', cell: (v) => v.to },
          { label: 'Deployments', class: 'num', cell: (v) => num(v.count) },
          { label: 'Succeeded', class: 'num', cell: (v) => num(v.succeeded) },
        ],
        rows: sum.versions,
      }) : null,
      (sum.failures || []).length ? table({
        caption: 'Failures by reason',
        attrs: { 'data-test': 'report-failures' },
        columns: [
          { label: 'Failed as', cell: (f) => badge(f.state) },
          { label: 'Count', class: 'num', cell: (f) => num(f.count) },
          { label: 'Reason', cell: (f) => f.reason || '—' },
          { label: 'Examples', cell: (f) => [
            (f.examples || []).map((e, i) => [i ? ', ' : '', link('/deployments/' + enc(e.deployment_id), agentName(e), { title: e.reason || '' })]),
            f.count > (f.examples || []).length ? ` +${num(f.count - f.examples.length)} more` : ''] },
        ],
        rows: sum.failures,
      }) : h('p', {}, 'No failures.'),
      (sum.health || []).length ? table({
        caption: 'Health halts',
        attrs: { 'data-test': 'report-health' },
        columns: [
          { label: 'At', cell: (x) => timeEl(x.at) },
          { label: 'Signal', cell: (x) => h('code', {}, x.signal) },
          { label: 'Reason', cell: (x) => x.reason },
        ],
        rows: sum.health,
      }) : null,
      (sum.waves || []).length > 1 ? table({
        caption: 'Waves',
        attrs: { 'data-test': 'report-waves' },
        columns: [
          { label: 'Wave', cell: (w) => `${w.wave}${waveNames.get(w.wave) ? ' · ' + waveNames.get(w.wave) : ''}` },
          { label: 'Deployments', class: 'num', cell: (w) => num(w.total) },
          { label: 'Failures', class: 'num', cell: (w) => num(w.failures) },
          { label: 'Started', cell: (w) => timeEl(w.started) },
          { label: 'Ended', cell: (w) => timeEl(w.ended) },
          { label: 'States', cell: (w) => h('small', {}, fmtCounts(w.states)) },
        ],
        rows: sum.waves,
      }) : null,
      stages.length ? table({
        caption: 'Where the time went',
        attrs: { 'data-test': 'report-stages' },
        rowAttrs: (s) => ({ 'data-test': 'report-stage-row', 'data-stage': s.stage }),
        columns: [
          { label: 'Stage', cell: (s) => s.stage },
          { label: 'Count', class: 'num', cell: (s) => num(s.count) },
          { label: 'p50', class: 'num', cell: (s) => (s.count ? fmtSeconds(s.p50_seconds) : '—') },
          { label: 'p95', class: 'num', cell: (s) => (s.count ? fmtSeconds(s.p95_seconds) : '—') },
          { label: 'Max', class: 'num', cell: (s) => (s.count ? fmtSeconds(s.max_seconds) : '—') },
          { label: 'Slowest', cell: (s) => (s.slowest || []).map((a, i) => [i ? ', ' : '', link('/deployments/' + enc(a.deployment_id), agentName(a)), ` ${fmtSeconds(a.seconds)}`]) },
        ],
        rows: stages,
      }) : null);
  }

  // ----- deployments -----
  let depSeq = 0;
  async function loadDeps() {
    const my = ++depSeq;
    let res;
    try {
      res = await api('GET', '/v1/deployments' + qs({ run: id, state: depState, limit: pageSize, offset }));
    } catch (e) {
      if (my === depSeq) showError(deps, e);
      return;
    }
    if (my !== depSeq) return;
    const total = res.total !== undefined ? res.total : (res.deployments || []).length;
    if (offset > 0 && offset >= total) {
      offset = Math.max(0, Math.floor((total - 1) / pageSize) * pageSize);
      keepQuery();
      return loadDeps();
    }
    const waveName = new Map((run.waves_status || []).map((w) => [w.wave, w.name]));
    const op = can('operator') && !ended(run);
    mount(deps,
      table({
        attrs: { 'data-test': 'run-deployments' },
        caption: `Deployments of ${id}${depState ? ' ' + depState.replaceAll('_', ' ') : ''}, newest first`,
        rowAttrs: (d) => ({ 'data-test': 'dep-row', 'data-dep': d.id, 'data-state': d.state, 'data-agent': d.agent_id }),
        columns: [
          { label: 'Deployment', cell: (d) => link('/deployments/' + enc(d.id), d.id, { 'data-test': 'dep-link' }) },
          { label: 'Agent', cell: (d) => link('/agents/' + enc(d.agent_id), d.agent_name || d.agent_id) },
          { label: 'Platform', cell: (d) => h('code', {}, d.platform) },
          { label: 'Wave', cell: (d) => (d.canary ? 'canary' : waveName.get(d.wave || 0) || String(d.wave || 0)) },
          { label: 'Version', cell: (d) => [d.from || '?', ' → ', d.target, d.revert ? h('span', { class: 'badge' }, 'revert') : null] },
          { label: 'State', cell: (d) => [badge(d.state, { 'data-test': 'dep-state' }),
            d.state === 'downloading' && d.total > 0 ? h('small', {}, ` ${Math.floor((d.done / d.total) * 100)}%`) : null] },
          { label: 'Reason', cell: (d) => h('span', { 'data-test': 'dep-reason' }, d.reason || '', d.workload ? ` (workload ${d.workload})` : '') },
          { label: 'Started', cell: (d) => timeEl(d.started) },
          { label: 'Ended', cell: (d) => timeEl(d.ended) },
          op ? { label: 'Action', cell: (d) => (queued(d.state)
            ? h('button', { type: 'button', 'data-test': 'dep-skip', 'aria-label': `Skip ${d.id} (${d.agent_name || d.agent_id})`,
              onclick: async (e) => {
                const b = e.currentTarget;
                const ok = await confirmDialog(`Skip ${d.id}?`, h('p', {}, `${d.agent_name || d.agent_id} is not upgraded by this run; the run goes on without it.`), 'Skip');
                if (!ok) return;
                action(b, () => api('POST', `/v1/deployments/${enc(d.id)}/skip`), `Skipped ${d.id}.`).then(reload).catch(() => {});
              } }, 'Skip')
            : '') } : null,
        ].filter(Boolean),
        rows: res.deployments || [],
        empty: depState ? 'No deployment in this state.' : 'No deployment.',
      }),
      total > pageSize ? pager({
        offset, limit: pageSize, total,
        onPage: (o) => {
          offset = o;
          keepQuery();
          loadDeps();
        },
      }) : null);
  }

  // ----- roll back -----
  async function openRollback() {
    const body = h('div', { 'data-test': 'rollback-dialog' }, h('p', { class: 'muted' }, 'Planning the rollback…'));
    const m = modal(`Roll back run ${id}`, body, { wide: true });
    const text = h('input', { type: 'text', maxlength: '4096', placeholder: `rollback of ${id}`, 'data-test': 'rollback-text' });
    const force = h('input', { type: 'checkbox', 'data-test': 'rollback-force', id: 'rb-force' });
    const planEl = h('div', { 'aria-live': 'polite' });
    const start = h('button', { type: 'button', class: 'danger', 'data-test': 'rollback-start', disabled: true }, 'Start rollback…');
    let total = 0;
    async function plan() {
      start.disabled = true;
      mount(planEl, h('p', { class: 'muted' }, 'Planning…'));
      try {
        const r = await api('POST', `/v1/runs/${enc(id)}/rollback`, { dry_run: true, force: force.checked });
        total = (r.plan || []).reduce((n, p) => n + p.agents, 0);
        mount(planEl,
          h('p', { class: 'note' }, `A new run moves ${num(total)} agent${total === 1 ? '' : 's'} back to the version each came from, with this run's limits and controls.`),
          planTable(r, { 'data-test': 'rollback-plan' }),
          (r.excluded || []).length ? excludedTable(r.excluded, { 'data-test': 'rollback-excluded' }) : null);
        start.disabled = total === 0;
      } catch (e) {
        showError(planEl, e);
      }
    }
    force.addEventListener('change', plan);
    start.addEventListener('click', async () => {
      const ok = await confirmDialog(`Roll back run ${id}?`, h('p', {}, `Start a run moving ${num(total)} agent${total === 1 ? '' : 's'} back?`), 'Start rollback', true);
      if (!ok) return;
      start.disabled = true;
      try {
        const r = await api('POST', `/v1/runs/${enc(id)}/rollback`, { text: text.value.trim() || undefined, force: force.checked });
        toast(`Started rollback run ${r.id}.`);
        m.close();
        navigate('/runs/' + enc(r.id));
      } catch (e) {
        showError(planEl, e);
        start.disabled = false;
      }
    });
    mount(body,
      field('Text', text),
      h('label', { class: 'upgrade-check', for: 'rb-force' }, force, ' Include agents whose earlier version is quarantined'),
      planEl,
      h('footer', {}, h('button', { type: 'button', onclick: () => m.close() }, 'Close'), start));
    await plan();
  }

  function redraw() {
    drawHead();
    drawActions();
    drawProgress();
    drawSettings();
  }

  let runSeq = 0;
  async function reload() {
    const my = ++runSeq;
    try {
      const r = await api('GET', '/v1/runs/' + enc(id));
      if (my !== runSeq) return;
      run = r;
      redraw();
    } catch (e) {
      if (my === runSeq) showError(actions, e);
      return;
    }
    loadDeps();
    reportSoon();
  }

  redraw();
  // Follow the run from now on; the report (every deployment) may take a
  // while on a large run and loads beside the rest.
  const stop = liveRefresh(reload, (ev) => ev.run_id === id, 1000);
  loadReport();
  await loadDeps();
  return () => {
    stop();
    clearTimeout(reportTimer);
  };
}
