// agent.js: the Agent page (#/agents/{id}). What the server knows of one
// agent (GET /v1/agents/{id}): its identity, versions (current, previous,
// the one on trial), the last trial's result with its reason and where its
// logs are, workloads, holds; its upgrade history (GET
// /v1/deployments?agent=) and its recent events (GET /v1/events?agent=),
// kept current by the live feed; and the actions its role allows: revoke
// and allow its host again (admin), upgrade (operator).
//
// data-test names: agent-name, agent-id, agent-status, agent-facts,
// agent-versions, agent-current, agent-previous, agent-trial,
// agent-in-flight, agent-last-result, agent-result-outcome,
// agent-result-reason, agent-result-workload, agent-result-logs,
// agent-result-workload-logs, agent-workloads, agent-workload (data-name),
// agent-holds, agent-history, agent-deployment (data-id), agent-events,
// agent-event (data-seq), agent-upgrade, agent-revoke, agent-allow.

import {
  api, can, h, mount, enc, link, timeEl, badge, showError, table, bytes, num, onLive, liveRefresh, action,
  confirmDialog, toast,
} from './lib.js';
import { openUpgrade } from './upgrade.js';
import { workloadHealth } from './fleet.js';

const EVENTS = 50;
const HISTORY = 50;

const upgradeWords = {
  up_to_date: 'up to date', upgrade_recommended: 'upgrade recommended', upgrade_required: 'upgrade required',
  manual_upgrade_required: 'manual upgrade required',
};

// trialPhases are the deployment phases in which the new version runs on
// trial (switched to, not committed).
const trialPhases = new Set(['restarting', 'watching']);

function kv(pairs) {
  return h('dl', { class: 'kv' }, pairs.filter(Boolean).map(([k, v, test]) => [h('dt', {}, k), h('dd', test ? { 'data-test': test } : {}, v)]));
}

const none = (text = '—') => h('span', { class: 'muted' }, text);
const mono = (t, attrs = {}) => (t ? h('span', { class: 'mono', ...attrs }, t) : none());

// versions are what the agent runs, ran and tries. previous_version and
// trial_version come from the server; an older server has neither, so
// they are read from the last trial and the order in flight.
export function agentVersions(a) {
  const r = a.last_result;
  let previous = a.previous_version || '';
  if (!previous && r && r.outcome === 'committed' && r.version === a.version) previous = r.previous || '';
  let trial = a.trial_version || '';
  if (!trial && a.upgrade && trialPhases.has(a.upgrade.phase)) trial = a.upgrade.version;
  return { current: a.version, previous, trial };
}

function versionsCard(a) {
  const v = agentVersions(a);
  const up = a.upgrade;
  return h('section', { class: 'card', 'data-test': 'agent-versions', 'aria-labelledby': 'ag-ver-h' },
    h('h2', { id: 'ag-ver-h' }, 'Versions'),
    kv([
      ['Current', mono(v.current), 'agent-current'],
      ['Previous', v.previous ? mono(v.previous) : none('none kept'), 'agent-previous'],
      ['On trial', v.trial ? h('span', {}, mono(v.trial), ' ', badge('trial')) : none('no trial'), 'agent-trial'],
      up ? ['Upgrade in flight', h('span', { 'data-test': 'agent-in-flight' },
        mono(up.version), ' ', badge(up.phase), up.total ? ` ${Math.floor(((up.done || 0) / up.total) * 100)}% of ${bytes(up.total)}` : '',
        up.order_id ? [' · ', link('/deployments/' + enc(up.order_id), up.order_id)] : null)] : null,
      ['Target', a.target_version ? mono(a.target_version) : none('no policy target')],
      ['Upgrade status', h('span', { class: `badge b-${a.upgrade_status}` }, upgradeWords[a.upgrade_status] || a.upgrade_status || '—')],
      ['Floor', mono(a.floor)],
      ['Supervisor', a.supervised ? mono(a.supervisor_version || '?') : h('span', {}, 'unsupervised (upgrades are manual)')],
      ['Protocol', String(a.protocol_version || '—')],
    ]));
}

function resultCard(a) {
  const r = a.last_result;
  const body = [];
  if (!r) {
    body.push(h('p', { class: 'muted' }, 'No trial yet: the agent has not been upgraded since it was installed.'));
  } else {
    const rolled = r.outcome === 'rolled_back';
    body.push(h('p', {}, h('span', { 'data-test': 'agent-result-outcome' }, badge(r.outcome)), ' ',
      rolled ? [mono(r.version), ' failed and was rolled back to ', mono(r.previous || '?')]
        : [mono(r.version), ' committed', r.previous ? [' (from ', mono(r.previous), ')'] : null],
      ' ', timeEl(r.at, true)));
    body.push(kv([
      r.reason ? ['Reason', h('span', {}, r.reason), 'agent-result-reason'] : null,
      r.workload ? ['Failed workload', mono(r.workload), 'agent-result-workload'] : null,
      r.workload_logs ? ['Its logs (on the host)', h('code', { class: 'ag-path' }, r.workload_logs), 'agent-result-workload-logs'] : null,
      r.logs ? ['Agent logs (on the host)', h('code', { class: 'ag-path' }, r.logs), 'agent-result-logs'] : null,
      r.order_id ? ['Deployment', link('/deployments/' + enc(r.order_id), r.order_id)] : null,
      r.supervisor ? ['Supervisor upgrade', h('span', {},
        mono(r.supervisor.from), ' → ', mono(r.supervisor.to), ' ', badge(r.supervisor.upgraded ? 'succeeded' : 'failed'),
        r.supervisor.reason ? ` ${r.supervisor.reason}` : '')] : null,
    ]));
  }
  return h('section', { class: 'card', 'data-test': 'agent-last-result', 'aria-labelledby': 'ag-res-h' },
    h('h2', { id: 'ag-res-h' }, 'Last trial'), body);
}

function workloadsSection(a) {
  const ws = a.workloads || [];
  const wh = workloadHealth(ws);
  return h('section', { 'aria-labelledby': 'ag-wl-h' },
    h('h2', { id: 'ag-wl-h' }, 'Workloads ', ws.length ? h('span', { class: 'muted' }, `(${wh.text})`) : null),
    table({
      attrs: { 'data-test': 'agent-workloads' },
      empty: a.supervised ? 'The supervisor runs no workload of yours.' : 'No workloads: the agent is not supervised.',
      rows: ws,
      rowAttrs: (w) => ({ 'data-test': 'agent-workload', 'data-name': w.name }),
      columns: [
        { label: 'Name', cell: (w) => mono(w.name) },
        { label: 'Version', cell: (w) => mono(w.version) },
        { label: 'State', cell: (w) => badge(w.state) },
        { label: 'Health', cell: (w) => {
          const bits = [];
          if (w.restarts) bits.push(`${num(w.restarts)} restart${w.restarts === 1 ? '' : 's'}`);
          if (w.last_exit) bits.push(`last exit: ${w.last_exit}`);
          if (w.reason) bits.push(w.reason);
          if (w.state === 'crashed' && w.restarts >= 3) bits.unshift('crash loop');
          return bits.length ? bits.join(' · ') : (w.state === 'ready' ? 'ok' : '—');
        } },
        { label: 'Since', cell: (w) => timeEl(w.since) },
      ],
    }));
}

function historyTable(deps) {
  return table({
    attrs: { 'data-test': 'agent-history' },
    empty: 'No upgrade yet.',
    rows: deps,
    rowAttrs: (d) => ({ 'data-test': 'agent-deployment', 'data-id': d.id }),
    columns: [
      { label: 'Deployment', cell: (d) => link('/deployments/' + enc(d.id), d.id) },
      { label: 'Kind', cell: (d) => d.kind === 'repair' ? h('span', { class: 'badge ag-repair', title: 'The agent came back with another version than its last successful target: the server repaired it' }, 'REPAIR') : d.kind },
      { label: 'Run', cell: (d) => d.run_id ? link('/runs/' + enc(d.run_id), d.run_id) : none() },
      { label: 'Versions', cell: (d) => h('span', {}, mono(d.from || '?'), ' → ', mono(d.target), d.revert ? ' (revert)' : '') },
      { label: 'State', cell: (d) => badge(d.state) },
      { label: 'Reason', cell: (d) => d.reason ? h('span', {}, d.reason, d.workload ? [' (workload ', mono(d.workload), ')'] : null) : none() },
      { label: 'Created', cell: (d) => timeEl(d.created) },
      { label: 'Ended', cell: (d) => timeEl(d.ended) },
    ],
  });
}

function eventItem(ev) {
  return h('li', { 'data-test': 'agent-event', 'data-seq': ev.seq, class: 'ag-event' },
    timeEl(ev.at), ' ', h('span', { class: 'badge', title: ev.name }, String(ev.id)), ' ',
    h('span', { class: 'mono ag-ev-name' }, ev.name), ' ', h('span', {}, ev.message),
    ev.deployment_id ? [' · ', link('/deployments/' + enc(ev.deployment_id), ev.deployment_id)] : null,
    ev.run_id ? [' · ', link('/runs/' + enc(ev.run_id), ev.run_id)] : null);
}

export async function render(main, params) {
  const ref = params.id;
  let agent = await api('GET', '/v1/agents/' + enc(ref));
  const id = agent.id;

  const head = h('div');
  const cards = h('div', { class: 'cards ag-cards' });
  const wlBox = h('div');
  const histBox = h('div');
  const evList = h('ol', { class: 'ag-events', 'data-test': 'agent-events', reversed: true });
  const evErr = h('div');
  let seen = new Set();

  function renderAgent() {
    const a = agent;
    document.title = `${a.name || a.id} · molt`;
    const acts = [];
    if (can('operator') && a.status !== 'revoked') {
      acts.push(h('button', { type: 'button', class: 'primary', 'data-test': 'agent-upgrade',
        onclick: () => openUpgrade({ agentIDs: [a.id], count: 1 }) }, 'Upgrade…'));
    }
    if (can('admin') && a.status !== 'revoked') {
      acts.push(h('button', { type: 'button', class: 'danger', 'data-test': 'agent-revoke', onclick: (e) => revoke(e.currentTarget) }, 'Revoke…'));
    }
    if (can('admin') && a.host_refused) {
      acts.push(h('button', { type: 'button', 'data-test': 'agent-allow', onclick: (e) => allow(e.currentTarget) }, 'Allow host again…'));
    }
    const labels = Object.keys(a.labels || {}).sort();
    mount(head,
      h('p', { class: 'ag-crumb' }, link('/fleet', '‹ Fleet')),
      h('div', { class: 'toolbar' },
        h('h1', { 'data-test': 'agent-name' }, a.name || a.id),
        h('span', { 'data-test': 'agent-status' }, badge(a.status), a.busy && a.status !== 'revoked' ? [' ', badge('busy')] : null,
          a.host_refused ? [' ', h('span', { class: 'badge b-revoked' }, 'host refused')] : null),
        h('span', { class: 'spacer' }), acts),
      a.status === 'revoked' ? h('p', { class: 'note' }, a.host_refused
        ? 'This agent is revoked: its credential is refused, and its host may not enroll again until an admin allows it.'
        : 'This agent is revoked: its credential is refused. Its host may enroll again (as a new agent).') : null,
      h('section', { class: 'ag-facts', 'data-test': 'agent-facts', 'aria-label': 'Agent' }, kv([
        ['ID', mono(a.id), 'agent-id'],
        ['Hostname', a.hostname || none()],
        ['Platform', mono(a.platform)],
        ['OS family', a.os_family || none()],
        ['Labels', labels.length ? h('span', { class: 'ag-labels' }, labels.map((k) => h('span', { class: 'badge' }, `${k}=${a.labels[k]}`))) : none('none')],
        ['Cluster', a.cluster || none()],
        ['Enrolled', timeEl(a.enrolled, true)],
        ['Last seen', timeEl(a.last_seen, true)],
        ['Holds', a.holds && a.holds.length ? h('ul', { class: 'ag-holds', 'data-test': 'agent-holds' }, a.holds.map((x) => h('li', {}, x))) : h('span', { 'data-test': 'agent-holds' }, none('none'))],
        ['Pending reboot', a.pending_reboot ? h('strong', {}, 'yes') : 'no'],
        ['Free disk', bytes(a.free_disk_bytes)],
      ])));
    mount(cards, versionsCard(a), resultCard(a));
    mount(wlBox, workloadsSection(a));
  }

  async function revoke(btn) {
    const ok = await confirmDialog(`Revoke ${agent.name || agent.id}?`, h('div', {},
      h('p', {}, 'Revoking this agent:'),
      h('ul', {},
        h('li', {}, 'refuses its credential from now on: it can no longer check in or be upgraded;'),
        h('li', {}, 'cancels its open deployment, if it has one;'),
        h('li', {}, 'refuses its host (its machine fingerprint) at enrollment until an admin allows it again.')),
      h('p', {}, 'The agent stays in the list as revoked; nothing is removed from the host. This cannot be undone: the host comes back only as a new agent.')),
    'Revoke', true);
    if (!ok) return;
    try {
      agent = await action(btn, () => api('POST', `/v1/agents/${enc(id)}/revoke`), `Agent ${agent.name || id} revoked.`);
    } catch {
      return; // action showed the server's message
    }
    renderAgent();
  }

  async function allow(btn) {
    const ok = await confirmDialog('Allow this host to enroll again?', h('p', {},
      'The host of this revoked agent may enroll again, with an enrollment token, as a new agent. This agent stays revoked.'), 'Allow host');
    if (!ok) return;
    try {
      agent = await action(btn, () => api('POST', `/v1/agents/${enc(id)}/allow`), 'Its host may enroll again.');
    } catch {
      return;
    }
    renderAgent();
  }

  async function loadAgent() {
    try {
      agent = await api('GET', '/v1/agents/' + enc(id));
      renderAgent();
    } catch (e) {
      if (e.status !== 401) toast(e.message, 'error');
    }
  }

  async function loadHistory() {
    try {
      const r = await api('GET', `/v1/deployments?agent=${enc(id)}&limit=${HISTORY}`);
      const deps = r.deployments || [];
      mount(histBox, historyTable(deps),
        deps.length >= HISTORY ? h('p', {}, link(`/history?agent=${enc(id)}`, 'The whole upgrade history of this agent')) : null);
    } catch (e) {
      showError(histBox, e);
    }
  }

  function addEvents(evs) {
    for (const ev of evs) {
      if (seen.has(ev.seq)) continue;
      seen.add(ev.seq);
      evList.prepend(eventItem(ev)); // newest first
    }
    while (evList.children.length > EVENTS) evList.lastChild.remove();
  }

  async function loadEvents() {
    try {
      const r = await api('GET', `/v1/events?agent=${enc(id)}&limit=${EVENTS}`);
      mount(evList);
      seen = new Set();
      addEvents((r.events || []).filter((ev) => ev.agent_id === id));
      mount(evErr, evList.children.length ? null : h('p', { class: 'muted' }, 'No events about this agent.'));
    } catch (e) {
      showError(evErr, e);
    }
  }

  renderAgent();
  mount(main, head, cards, wlBox,
    h('section', { 'aria-labelledby': 'ag-hist-h' }, h('h2', { id: 'ag-hist-h' }, 'Upgrade history'), histBox),
    h('section', { 'aria-labelledby': 'ag-ev-h' },
      h('h2', { id: 'ag-ev-h' }, 'Recent events ', h('a', { href: `#/events?agent=${enc(id)}`, class: 'ag-more' }, 'all events of this agent')),
      evErr, evList));
  await Promise.all([loadHistory(), loadEvents()]);

  const mine = (ev) => ev.agent_id === id;
  const offEvents = onLive((ev) => {
    if (ev === null) return loadEvents(); // reconnected: anything may have come meanwhile
    if (!mine(ev)) return;
    mount(evErr);
    addEvents([ev]);
  });
  const offAgent = liveRefresh(() => Promise.all([loadAgent(), loadHistory()]), mine, 1500);
  // Last seen and online/offline move without events.
  const timer = setInterval(() => !document.hidden && loadAgent(), 30000);
  return () => {
    offEvents();
    offAgent();
    clearInterval(timer);
  };
}
