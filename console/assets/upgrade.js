// upgrade.js: the Upgrade dialog (Automic CAU's "Upgrade Agent", done
// better). It starts a run over selected agents or every agent matching a
// filter: per platform the agents and a target version list newest first
// (quarantined releases marked), custom text, scope, limits, the rollout
// controls the server has, a preview of the plan with the agents left
// out and why (what `molt upgrade` shows before it asks), then a
// confirmation and the run page.
//
// Callers (operators only: the server refuses others anyway):
//   openUpgrade({agentIDs: [...]})      the selected agents
//   openUpgrade({filter: {...}, count}) protocol.AgentFilter, count seen
//
// data-test names: upgrade-dialog, upgrade-summary, upgrade-platforms,
// upgrade-platform-row, upgrade-target, upgrade-target-<platform>,
// upgrade-text, upgrade-scope-supervised, upgrade-scope-all,
// upgrade-max-concurrent, upgrade-max-failures, upgrade-min-sample,
// upgrade-force, upgrade-rollout, upgrade-canary, upgrade-canary-cover,
// upgrade-canary-soak, upgrade-waves, upgrade-wave-label,
// upgrade-wave-approve, upgrade-wave-wait, upgrade-wave-done,
// upgrade-rate, upgrade-ramp, upgrade-window, upgrade-start-at,
// upgrade-spread, upgrade-health-halt, upgrade-health-soak,
// upgrade-health-min-agents, upgrade-health-percent, upgrade-preview,
// upgrade-start, upgrade-cancel, upgrade-result, upgrade-plan,
// upgrade-plan-row, upgrade-headline, upgrade-excluded,
// upgrade-excluded-row, upgrade-excluded-more, upgrade-error.

import { api, can, h, mount, field, select, qs, enc, num, showError, toast, modal, confirmDialog, navigate, table } from './lib.js';

// How many selected agents are counted per platform by one summary
// request (the server's bound on id=); a larger selection is counted by
// the preview instead.
const lookupLimit = 1000;

// filterQuery is a protocol.AgentFilter in its query form.
export function filterQuery(f) {
  const q = {};
  for (const k of ['q', 'platform', 'os_family', 'version', 'cluster', 'status', 'upgrade_status']) if (f && f[k]) q[k] = f[k];
  const labels = Object.entries((f && f.labels) || {}).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}=${v}`);
  if (labels.length) q.label = labels;
  if (f && f.inactive) q.inactive = true;
  return q;
}

// filterText says a filter as the CLI does (protocol.AgentFilter.String).
export function filterText(f) {
  const q = filterQuery(f);
  const parts = [];
  for (const k of ['q', 'platform', 'os_family', 'version', 'cluster', 'status', 'upgrade_status', 'label', 'inactive']) {
    if (q[k] === undefined) continue;
    for (const v of [].concat(q[k])) parts.push(`${k}=${v === true ? '1' : v}`);
  }
  return parts.length ? parts.join(' ') : 'every active agent';
}

// parseDuration reads "90s", "5m", "1h30m" (Go's units) into seconds;
// empty is 0. It throws a message naming the field.
export function parseDuration(name, s) {
  s = (s || '').trim();
  if (!s) return 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  const unit = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };
  let total = 0;
  let m;
  let end = 0;
  while ((m = re.exec(s))) {
    total += parseFloat(m[1]) * unit[m[2]];
    end = re.lastIndex;
  }
  if (end !== s.length || end === 0) throw new Error(`${name}: "${s}" is not a duration like 90s, 5m or 1h30m`);
  return Math.round(total);
}

// countOrShare reads "10" or "5%".
function countOrShare(name, s, { min = 1, max = Infinity } = {}) {
  s = (s || '').trim();
  if (!s) return null;
  if (s.endsWith('%')) {
    const p = Number(s.slice(0, -1));
    if (!(p > 0 && p <= 100)) throw new Error(`${name}: "${s}" is not a share from 0% to 100% (or a count)`);
    return { percent: p };
  }
  const n = Number(s);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new Error(`${name}: "${s}" is not a count from ${min}${max < Infinity ? ' to ' + max : ' up'} or a share like 5%`);
  }
  return { count: n };
}

function intField(name, s, { min = 0, max = Infinity } = {}) {
  s = (s || '').trim();
  if (!s) return 0;
  const n = Number(s);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name}: "${s}" is not a whole number from ${min}${max < Infinity ? ' to ' + max : ' up'}`);
  return n;
}

function numField(name, s, { min = 0, max = Infinity } = {}) {
  s = (s || '').trim();
  if (!s) return 0;
  const n = Number(s);
  if (!isFinite(n) || n < min || n > max) throw new Error(`${name}: "${s}" is not a number from ${min}${max < Infinity ? ' to ' + max : ' up'}`);
  return n;
}

const list = (s) => (s || '').split(',').map((x) => x.trim()).filter(Boolean);

// platformsOf counts the selection per platform: the summary of a filter,
// or of the selected agents (id=..., inactive ones too, since the fleet
// may show them). null: not known.
async function platformsOf({ agentIDs, filter }) {
  if (filter) {
    const s = await api('GET', '/v1/agents/summary' + qs(filterQuery(filter)));
    return { total: s.total, platforms: s.platforms || [] };
  }
  if (!agentIDs || !agentIDs.length || agentIDs.length > lookupLimit) return null;
  const s = await api('GET', '/v1/agents/summary' + qs({ id: agentIDs, inactive: true }));
  return { total: s.total, platforms: s.platforms || [], missing: agentIDs.length - s.total };
}

function quarantineOf(rel, platform) {
  return (rel.quarantined || []).find((q) => q.platform === platform);
}

// openUpgrade opens the dialog; it resolves when the dialog closes.
export async function openUpgrade({ agentIDs, filter, count } = {}) {
  if (!can('operator')) {
    toast('Starting an upgrade run needs the operator role.', 'error');
    return;
  }
  const ids = (agentIDs || []).filter(Boolean);
  if (!ids.length && !filter) {
    toast('Select agents (or a filter) to upgrade first.', 'error');
    return;
  }
  const body = h('div', { 'data-test': 'upgrade-dialog', class: 'upgrade' }, h('p', { class: 'muted' }, 'Loading the selection and the releases…'));
  const m = modal('Upgrade agents', body, { wide: true });
  let rels;
  let plats;
  try {
    [rels, plats] = await Promise.all([api('GET', '/v1/releases'), platformsOf({ agentIDs: ids, filter })]);
  } catch (e) {
    showError(body, e);
    return;
  }
  const releases = rels.releases || [];
  build(m, body, { ids, filter, count, releases, plats });
}

function build(m, body, { ids, filter, count, releases, plats }) {
  // ----- the selection -----
  let what;
  if (filter) {
    const t = filterText(filter);
    what = t === 'every active agent' ? h('strong', {}, 'Every active agent') : [h('strong', {}, 'Every agent matching '), h('code', {}, t)];
  } else {
    const shown = ids.slice(0, 5).join(', ') + (ids.length > 5 ? `, … (+${num(ids.length - 5)})` : '');
    what = [h('strong', {}, `${num(ids.length)} selected agent${ids.length === 1 ? '' : 's'}: `), h('span', { class: 'mono' }, shown)];
  }
  const counts = [];
  if (plats) counts.push(`${num(plats.total)} agent${plats.total === 1 ? '' : 's'} now`);
  if (count !== undefined && count !== null && (!plats || count !== plats.total)) counts.push(`${num(count)} when you chose them`);
  if (plats && plats.missing > 0) counts.push(`${num(plats.missing)} no longer found`);
  const summary = h('p', { 'data-test': 'upgrade-summary' }, what, counts.length ? ` (${counts.join('; ')})` : '');

  // ----- targets -----
  const allVersions = releases.map((r) => r.version);
  // "latest" is the highest release with a pack for the platform,
  // quarantined or not (the server then leaves its agents out).
  const latestFor = (p) => {
    const r = releases.find((x) => (x.platforms || []).includes(p));
    return r ? r.version + (quarantineOf(r, p) ? ', quarantined' : '') : '';
  };
  const targetSel = select([['latest', 'latest (the newest release of each platform)'],
    ...releases.map((r) => {
      const q = (r.quarantined || []).map((x) => x.platform);
      return [r.version, r.version + (q.length ? ` (quarantined for ${q.join(', ')})` : '')];
    })], 'latest', { 'data-test': 'upgrade-target' });
  const perPlatform = new Map(); // platform -> <select>
  let platTable;
  if (plats && plats.platforms.length) {
    const rows = plats.platforms.map((p) => {
      const opts = [['', 'the run target'], ['latest', `latest${latestFor(p.platform) ? ' (' + latestFor(p.platform) + ')' : ''}`]];
      for (const r of releases) {
        if (!(r.platforms || []).includes(p.platform)) continue;
        const q = quarantineOf(r, p.platform);
        opts.push([r.version, r.version + (q ? ` — quarantined: ${q.reason}` : '')]);
      }
      const sel = select(opts, '', { 'data-test': 'upgrade-target-' + p.platform, 'aria-label': `Target for ${p.platform}` });
      perPlatform.set(p.platform, sel);
      return { ...p, sel };
    });
    platTable = table({
      caption: 'Per platform: the agents and their target, newest release first',
      attrs: { 'data-test': 'upgrade-platforms' },
      rowAttrs: (r) => ({ 'data-test': 'upgrade-platform-row', 'data-platform': r.platform }),
      columns: [
        { label: 'Platform', cell: (r) => h('code', {}, r.platform) },
        { label: 'Agents', class: 'num', cell: (r) => num(r.agents) },
        { label: 'Running now', cell: (r) => (r.versions || []).slice(0, 4).map((v) => `${v.version || '?'} ×${num(v.agents)}`).join(', ') + ((r.versions || []).length > 4 ? ', …' : '') },
        { label: 'Target', cell: (r) => r.sel },
      ],
      rows,
      empty: 'No agent matches.',
    });
  } else {
    platTable = h('p', { class: 'muted' }, ids.length > lookupLimit
      ? `${num(ids.length)} agents: the preview counts them per platform.`
      : 'No agent matches the selection now.');
  }
  if (!allVersions.length) platTable = [platTable, h('div', { class: 'error', role: 'alert' }, 'No release is imported: import one on the Releases page first.')];

  // ----- what and how -----
  const text = h('input', { type: 'text', maxlength: '4096', 'data-test': 'upgrade-text', placeholder: 'e.g. monthly update' });
  const scopeSup = h('input', { type: 'radio', name: 'upg-scope', value: 'supervised', checked: true, id: 'upg-scope-sup', 'data-test': 'upgrade-scope-supervised' });
  const scopeAll = h('input', { type: 'radio', name: 'upg-scope', value: 'all', id: 'upg-scope-all', 'data-test': 'upgrade-scope-all' });
  const scope = h('fieldset', { class: 'upgrade-scope' }, h('legend', {}, 'Scope'),
    h('label', { for: 'upg-scope-sup' }, scopeSup, ' Supervised agents only (they roll back by themselves)'),
    h('label', { for: 'upg-scope-all' }, scopeAll, ' All agents: unsupervised ones too, without a safety net (they wait in restarting until someone starts the new version)'));
  const maxConc = h('input', { type: 'text', value: '10', size: '6', 'data-test': 'upgrade-max-concurrent' });
  const maxFail = h('input', { type: 'text', size: '6', placeholder: 'never', 'data-test': 'upgrade-max-failures' });
  const minSample = h('input', { type: 'number', min: '0', size: '6', placeholder: '1', 'data-test': 'upgrade-min-sample' });
  const force = h('input', { type: 'checkbox', 'data-test': 'upgrade-force' });

  // ----- rollout -----
  const inp = (t, attrs = {}) => h('input', { type: 'text', size: '10', ...attrs, 'data-test': 'upgrade-' + t });
  const canary = inp('canary', { type: 'number', min: '0', placeholder: '0' });
  const canaryCover = inp('canary-cover', { placeholder: 'role,region', size: '16' });
  const canarySoak = inp('canary-soak', { placeholder: '5m' });
  const waves = inp('waves', { placeholder: '5%,25%,100%', size: '16' });
  const waveLabel = inp('wave-label', { placeholder: 'ring=early,ring=broad', size: '22' });
  const waveApprove = h('input', { type: 'checkbox', 'data-test': 'upgrade-wave-approve' });
  const waveWait = inp('wave-wait', { placeholder: '0s' });
  const waveDone = inp('wave-done', { type: 'number', min: '1', max: '100', placeholder: '90' });
  const rate = inp('rate', { type: 'number', min: '1', placeholder: 'no limit' });
  const ramp = inp('ramp', { placeholder: 'e.g. 2' });
  const windowIn = inp('window', { placeholder: 'Mon-Fri 01:00-05:00 Europe/Berlin', size: '32' });
  const startAt = inp('start-at', { type: 'datetime-local' });
  const spread = inp('spread', { placeholder: 'e.g. 2h' });
  const healthHalt = h('input', { type: 'checkbox', checked: true, 'data-test': 'upgrade-health-halt' });
  const healthSoak = inp('health-soak', { placeholder: '15m' });
  const healthMin = inp('health-min-agents', { type: 'number', min: '1', placeholder: '2' });
  const healthPct = inp('health-percent', { placeholder: '10' });
  const check = (c, label) => { c.id = 'f-' + Math.random().toString(36).slice(2); return h('label', { class: 'upgrade-check', for: c.id }, c, ' ' + label); };

  const rolloutSec = h('details', { class: 'upgrade-rollout', 'data-test': 'upgrade-rollout' },
    h('summary', {}, 'Rollout: canaries, waves, pace, window, schedule, health halt'),
    h('h3', {}, 'Canaries'),
    h('div', { class: 'row' },
      field('Canaries', canary, 'upgraded first; every platform and OS family gets one'),
      field('Cover label keys', canaryCover, 'every value of these labels gets a canary'),
      field('Canary soak', canarySoak, 'how long they must stay good (default 5m)')),
    h('h3', {}, 'Waves'),
    h('div', { class: 'row' },
      field('Waves (cumulative shares)', waves, 'or waves by label, not both'),
      field('Waves by label', waveLabel, 'in order; agents with none come last'),
      field('Wait between waves', waveWait, 'soak after a wave is done'),
      field('Wave done at (%)', waveDone, 'share that must succeed (default 90)')),
    check(waveApprove, 'Each next wave waits for approval (Promote on the run page)'),
    h('h3', {}, 'Pace and time'),
    h('div', { class: 'row' },
      field('Starts a minute', rate),
      field('Ramp (× every minute)', ramp),
      field('Maintenance window', windowIn, 'deployments start only inside it'),
      field('Start at (your time)', startAt),
      field('Spread starts over', spread)),
    h('h3', {}, 'Health-driven halt'),
    check(healthHalt, 'Halt the run when upgraded agents do worse than before (crash loops, unhealthy or restarting workloads, silence)'),
    h('div', { class: 'row' },
      field('Health soak', healthSoak, 'watch each agent this long (default 15m)'),
      field('Min agents', healthMin, 'default 2; one crash loop is enough'),
      field('Min share (%)', healthPct, 'default 10')));

  // ----- result and buttons -----
  const result = h('div', { 'data-test': 'upgrade-result', 'aria-live': 'polite' });
  const previewBtn = h('button', { type: 'button', 'data-test': 'upgrade-preview' }, 'Preview');
  const startBtn = h('button', { type: 'button', class: 'primary', 'data-test': 'upgrade-start' }, 'Start…');
  const cancelBtn = h('button', { type: 'button', 'data-test': 'upgrade-cancel', onclick: () => m.close() }, 'Cancel');

  function request() {
    const req = { text: text.value.trim(), selection: {}, target: targetSel.value, scope: scopeAll.checked ? 'all' : 'supervised' };
    if (filter) req.selection.filter = filter;
    else req.selection.agent_ids = ids;
    // Per-platform choices: one version everywhere is the run's target;
    // otherwise each differing platform gets its own.
    const chosen = [...perPlatform.entries()].map(([p, s]) => [p, s.value || targetSel.value]);
    const distinct = new Set(chosen.map(([, v]) => v));
    if (chosen.length && distinct.size === 1) req.target = chosen[0][1];
    else {
      for (const [p, v] of chosen) {
        if (v === req.target) continue;
        req.target_for = req.target_for || {};
        req.target_for[p] = v;
      }
    }
    const mc = countOrShare('Max concurrent', maxConc.value || '10', { max: 10000 });
    if (mc.percent) {
      req.max_concurrent_percent = mc.percent;
      req.max_concurrent = 10000;
    } else req.max_concurrent = mc.count;
    const mf = countOrShare('Max failures', maxFail.value);
    if (mf && mf.percent) req.max_failures_percent = mf.percent;
    else if (mf) req.failure_threshold = mf.count;
    req.min_sample = intField('Min sample', minSample.value);
    if (req.min_sample && !req.max_failures_percent) throw new Error('Min sample: only with Max failures as a share (like 2%)');
    req.force = force.checked;
    req.canary = intField('Canaries', canary.value);
    req.canary_cover = list(canaryCover.value);
    req.canary_soak_seconds = parseDuration('Canary soak', canarySoak.value);
    if (req.canary_soak_seconds && !req.canary) throw new Error('Canary soak: only with Canaries');
    req.waves = list(waves.value);
    req.wave_label = list(waveLabel.value);
    req.wave_wait_seconds = parseDuration('Wait between waves', waveWait.value);
    req.wave_approve = waveApprove.checked;
    req.wave_done_percent = intField('Wave done at', waveDone.value, { min: 0, max: 100 });
    req.rate_per_minute = intField('Starts a minute', rate.value);
    req.ramp = numField('Ramp', ramp.value.replace(/x$/i, ''));
    req.window = windowIn.value.trim();
    if (startAt.value) {
      const d = new Date(startAt.value);
      if (isNaN(d)) throw new Error(`Start at: "${startAt.value}" is not a time`);
      req.start_at = d.toISOString();
    }
    req.spread_seconds = parseDuration('Spread starts over', spread.value);
    req.no_health_halt = !healthHalt.checked;
    req.health_soak_seconds = parseDuration('Health soak', healthSoak.value);
    req.health_min_agents = intField('Min agents', healthMin.value);
    req.health_percent = numField('Min share', healthPct.value, { max: 100 });
    if (req.no_health_halt && (req.health_soak_seconds || req.health_min_agents || req.health_percent)) {
      throw new Error('Health soak, min agents and min share: not with the health halt off');
    }
    // Leave out what is not set, as the CLI sends it.
    for (const [k, v] of Object.entries(req)) {
      if (v === '' || v === 0 || v === false || (Array.isArray(v) && !v.length)) delete req[k];
    }
    return req;
  }

  let busy = false;
  async function preview() {
    let req;
    try {
      req = request();
    } catch (e) {
      showError(result, e);
      return null;
    }
    busy = true;
    previewBtn.disabled = startBtn.disabled = true;
    mount(result, h('p', { class: 'muted' }, 'Planning…'));
    try {
      const plan = await api('POST', '/v1/runs', { ...req, dry_run: true });
      const total = showPlan(result, plan, req);
      result.scrollIntoView({ block: 'nearest' });
      return { req, total };
    } catch (e) {
      showError(result, e);
      return null;
    } finally {
      busy = false;
      previewBtn.disabled = startBtn.disabled = false;
    }
  }

  previewBtn.addEventListener('click', () => preview());
  startBtn.addEventListener('click', async () => {
    if (busy) return;
    const p = await preview();
    if (!p) return;
    if (!p.total) return;
    const ok = await confirmDialog('Start the upgrade run?', h('p', {}, `Start upgrading ${num(p.total)} agent${p.total === 1 ? '' : 's'}?`), 'Start upgrading');
    if (!ok) return;
    previewBtn.disabled = startBtn.disabled = true;
    try {
      const run = await api('POST', '/v1/runs', p.req);
      toast(`Started run ${run.id}.`);
      m.close();
      navigate('/runs/' + enc(run.id));
    } catch (e) {
      showError(result, e);
    } finally {
      previewBtn.disabled = startBtn.disabled = false;
    }
  });

  mount(body,
    summary,
    h('h3', {}, 'Target'),
    field('Target version', targetSel, 'for every platform; change it per platform below'),
    platTable,
    h('h3', {}, 'Run'),
    field('Text', text, 'shown in listings, reports and hooks'),
    scope,
    h('div', { class: 'row' },
      field('Max concurrent', maxConc, 'a count, or a share like 5%'),
      field('Max failures', maxFail, 'pause after this many (or halt at this share, like 2%)'),
      field('Min sample', minSample, 'with a share: count it once this many ended')),
    check(force, 'Include agents whose target is quarantined for their platform'),
    rolloutSec,
    result,
    h('footer', {}, cancelBtn, previewBtn, startBtn));
  // The first control, so the dialog opens at its top.
  targetSel.focus();
}

// showPlan shows a dry run as molt upgrade does: the headline, the plan
// per platform and who is left out with why. It returns the agents it
// would upgrade.
function showPlan(el, plan, req) {
  const lines = plan.plan || [];
  const excluded = plan.excluded || [];
  const total = lines.reduce((n, p) => n + p.agents, 0);
  let head;
  if (!total) {
    head = h('div', { class: 'error', role: 'alert', 'data-test': 'upgrade-headline' }, 'no agent to upgrade: the selection matches no agent that needs this target');
  } else {
    let s = `Upgrade run: ${num(total)} agent${total === 1 ? '' : 's'}, at most ${req.max_concurrent_percent ? req.max_concurrent_percent + '% (of the run)' : num(req.max_concurrent)} at once`;
    if (req.failure_threshold) s += `, pause after ${num(req.failure_threshold)} failure(s)`;
    if (req.max_failures_percent) s += `, halt at ${req.max_failures_percent}% failed`;
    head = h('p', { class: 'note', 'data-test': 'upgrade-headline' }, s);
  }
  const planTable = lines.length ? table({
    caption: 'Plan',
    attrs: { 'data-test': 'upgrade-plan' },
    rowAttrs: (p) => ({ 'data-test': 'upgrade-plan-row', 'data-platform': p.platform }),
    columns: [
      { label: 'Platform', cell: (p) => h('code', {}, p.platform) },
      { label: 'Agents', class: 'num', cell: (p) => num(p.agents) },
      { label: 'Target', cell: (p) => p.target },
      { label: 'Reverts', cell: (p) => (p.revert ? `${num(p.revert)} revert to a lower version` : '—') },
    ],
    rows: lines,
  }) : null;
  let ex = null;
  if (excluded.length) {
    const shown = 20;
    const exTable = (rows) => table({
      caption: `Left out (${num(excluded.length)})`,
      attrs: { 'data-test': 'upgrade-excluded' },
      rowAttrs: () => ({ 'data-test': 'upgrade-excluded-row' }),
      columns: [
        { label: 'Agent', cell: (e) => [h('span', { class: 'mono' }, e.agent_id), e.agent_name ? ` (${e.agent_name})` : ''] },
        { label: 'Reason', cell: (e) => e.reason },
      ],
      rows,
    });
    ex = h('div', {}, exTable(excluded.slice(0, shown)));
    if (excluded.length > shown) {
      ex.append(h('button', { type: 'button', class: 'link', 'data-test': 'upgrade-excluded-more', onclick: () => mount(ex, exTable(excluded)) }, `… and ${num(excluded.length - shown)} more: show all`));
    }
  }
  mount(el, head, planTable, ex);
  return total;
}
