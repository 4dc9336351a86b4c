// deployment.js: one deployment's DEPLOY report (#/deployments/{id}),
// GET /v1/deployments/{id}: the deployment (agent, run, versions, state,
// reason, the workload that failed, wave or canary, times) and every step,
// on the server and on the agent, with its time and how long it took until
// the next one. Live while it runs (the live feed, and a poll for the
// download's progress); operators get Skip Upgrade, Cancel and Retry when
// the server allows them, with its answer shown as it is.
//
// data-test names: deployment, dep-id, dep-state, dep-repair, dep-agent,
// dep-run, dep-versions, dep-reason, dep-workload, dep-wave, dep-created,
// dep-started, dep-ended, dep-duration, dep-progress, dep-actions,
// dep-skip, dep-cancel, dep-retry, steps, step (data-name on it),
// step-time, step-name, step-duration, step-detail.

import { api, enc, h, mount, link, timeEl, absTime, duration, bytes, badge, errorBox, can, liveRefresh, navigate } from './lib.js';
import { kindCell, stateCell, waveText, depActions } from './history.js';

const terminal = new Set(['succeeded', 'failed', 'rolled_back', 'skipped', 'cancelled']);

function ms(t) {
  if (!t) return NaN;
  const d = new Date(t);
  return isNaN(d) || d.getUTCFullYear() <= 1 ? NaN : d.getTime();
}

// stepTime shows a step's time to the millisecond: steps of one
// deployment are often less than a second apart.
function stepTime(t) {
  const d = new Date(t);
  const ms3 = String(d.getMilliseconds()).padStart(3, '0');
  return h('time', { datetime: d.toISOString(), 'data-test': 'step-time' }, `${absTime(d)}.${ms3}`);
}

function stepsTable(rep) {
  const d = rep.deployment;
  const steps = rep.steps || [];
  if (!steps.length) return h('p', { class: 'muted', 'data-test': 'steps' }, 'No steps yet: the agent has not been asked to upgrade.');
  const first = ms(steps[0].at);
  const end = ms(d.ended);
  const rows = steps.map((s, i) => {
    const at = ms(s.at);
    const next = i + 1 < steps.length ? ms(steps[i + 1].at) : (terminal.has(d.state) ? end : Date.now());
    const took = isNaN(next) ? null : Math.max(0, next - at);
    const server = s.name.startsWith('server: ');
    return { s, i, at, took, last: i === steps.length - 1, server };
  });
  return h('table', { 'data-test': 'steps', class: 'dep-steps' },
    h('caption', {}, `${steps.length} step${steps.length === 1 ? '' : 's'}, in order`),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col', class: 'num' }, '#'),
      h('th', { scope: 'col' }, 'Time'),
      h('th', { scope: 'col', class: 'num' }, 'Since start'),
      h('th', { scope: 'col', class: 'num' }, 'Duration'),
      h('th', { scope: 'col' }, 'Where'),
      h('th', { scope: 'col' }, 'Step'),
      h('th', { scope: 'col' }, 'Detail'))),
    h('tbody', {}, rows.map((r) => h('tr', { 'data-test': 'step', 'data-name': r.s.name },
      h('td', { class: 'num' }, String(r.i + 1)),
      h('td', { class: 'mono' }, stepTime(r.s.at)),
      h('td', { class: 'num' }, duration(r.at - first)),
      h('td', { class: 'num', 'data-test': 'step-duration', title: r.last ? (terminal.has(d.state) ? 'until the deployment ended' : 'so far') : 'until the next step' },
        r.took === null ? '—' : duration(r.took) + (r.last && !terminal.has(d.state) ? ' …' : '')),
      h('td', {}, r.server ? 'server' : 'agent'),
      h('td', { 'data-test': 'step-name' }, h('strong', {}, r.server ? r.s.name.slice(8) : r.s.name)),
      h('td', { 'data-test': 'step-detail', class: 'dep-detail' }, r.s.detail || h('span', { class: 'muted' }, '—'))))));
}

function summary(d) {
  const started = ms(d.started);
  const ended = ms(d.ended);
  const took = !isNaN(started) ? (isNaN(ended) ? Date.now() - started : ended - started) : null;
  const kv = (label, value, test) => [h('dt', {}, label), h('dd', test ? { 'data-test': test } : {}, value)];
  const showProgress = d.total > 0 && !terminal.has(d.state);
  return h('dl', { class: 'kv dep-kv' },
    kv('Agent', [link(`/agents/${enc(d.agent_id)}`, d.agent_name || d.agent_id, { 'data-test': 'dep-agent' }), d.agent_name ? h('span', { class: 'muted mono' }, ` ${d.agent_id}`) : null]),
    kv('Run', d.run_id ? link(`/runs/${enc(d.run_id)}`, d.run_id, { 'data-test': 'dep-run' }) : h('span', { class: 'muted' }, d.kind === 'repair' ? 'none: a repair' : 'none')),
    kv('Platform', h('span', { class: 'mono' }, d.platform)),
    kv('Kind', kindCell(d)),
    kv('Version', h('span', { class: 'mono' }, `${d.from || '—'} → ${d.target}`), 'dep-versions'),
    kv('State', stateCell(d)),
    d.reason ? kv('Reason', d.reason, 'dep-reason') : null,
    d.workload ? kv('Failed workload', h('span', { class: 'mono' }, d.workload), 'dep-workload') : null,
    waveText(d) ? kv('Wave', waveText(d), 'dep-wave') : null,
    showProgress ? kv('Download', h('span', {},
      h('progress', { max: String(d.total), value: String(d.done), 'data-test': 'dep-progress', 'aria-label': 'Download' }),
      ` ${bytes(d.done)} of ${bytes(d.total)}`)) : null,
    kv('Created', timeEl(d.created, true), 'dep-created'),
    kv('Started', timeEl(d.started, true), 'dep-started'),
    kv('Ended', timeEl(d.ended, true), 'dep-ended'),
    kv('Duration', took === null ? h('span', { class: 'muted' }, 'not started') : duration(took) + (isNaN(ended) ? ' so far' : ''), 'dep-duration'),
    kv('Updated', timeEl(d.updated, true)));
}

export async function render(main, params) {
  const id = params.id;
  const body = h('div');
  const err = h('div', { 'aria-live': 'polite' });
  mount(main, h('section', { 'data-test': 'deployment', 'aria-labelledby': 'dep-h1' },
    h('p', {}, link('/history', '‹ Upgrade History')),
    h('h1', { id: 'dep-h1' }, 'Deployment ', h('span', { class: 'mono', 'data-test': 'dep-id' }, id)),
    err, body));

  let last = null;
  let seq = 0;
  async function load(first) {
    const my = ++seq;
    let rep;
    try {
      rep = await api('GET', `/v1/deployments/${enc(id)}`);
    } catch (e) {
      if (first) throw e;
      if (my === seq) mount(err, errorBox(e));
      return;
    }
    if (my !== seq) return;
    mount(err);
    last = rep;
    const d = rep.deployment;
    document.title = `Deployment ${d.id} · molt`;
    const acts = depActions(d, (nd, verb) => {
      if (verb === 'retry') navigate(`/deployments/${enc(nd.id)}`);
      else load();
    });
    mount(body,
      h('p', { class: 'dep-headline' }, badge(d.state), ' ', d.kind === 'repair' ? 'Repair of ' : 'Upgrade of ',
        h('strong', {}, d.agent_name || d.agent_id), ` from ${d.from || 'an unknown version'} to ${d.target}`,
        d.run_id ? ` in run ${d.run_id}` : '', '.'),
      can('operator') && acts.length ? h('div', { class: 'actions', 'data-test': 'dep-actions' }, acts) : null,
      h('h2', {}, 'Deployment'),
      summary(d),
      h('h2', {}, 'DEPLOY report'),
      h('p', { class: 'muted' }, 'Every step, on the server and on the agent, with its time; a step\'s duration runs until the next one.'),
      stepsTable(rep));
  }

  await load(true);
  const unsub = liveRefresh(() => load(), (ev) => ev.deployment_id === id, 1000);
  // The download's progress and "so far" durations move without events.
  const timer = setInterval(() => {
    if (last && !terminal.has(last.deployment.state) && document.visibilityState === 'visible') load();
  }, 5000);
  return () => {
    unsub();
    clearInterval(timer);
  };
}
