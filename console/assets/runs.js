// runs.js: the Runs page (#/runs): every upgrade run, newest first, with
// its status, target, text, when and by whom, counts and a progress bar;
// filtered by status (kept in the address), paged, and redrawn live as
// the runs' events arrive. Operators get "New upgrade run…" (the Upgrade
// dialog over every active agent).
//
// data-test names: runs-status, runs-new, runs-table, run-row (with
// data-run), run-link, run-status, run-progress, run-counts.

import { api, h, mount, qs, enc, num, can, link, badge, timeEl, table, pager, select, field, setQuery, showError, liveRefresh } from './lib.js';
import { openUpgrade } from './upgrade.js';

export const runStatuses = ['running', 'paused', 'ended_ok', 'ended_not_ok', 'cancelled'];

const pageSize = 50;

// Deployment states grouped as the progress bar shows them.
const stateGroups = [
  { cls: 's-ok', label: 'succeeded', states: ['succeeded'] },
  { cls: 's-bad', label: 'failed or rolled back', states: ['failed', 'rolled_back', 'stuck'] },
  { cls: 's-run', label: 'in progress', states: ['requested', 'downloading', 'staged', 'restarting', 'watching'] },
  { cls: 's-wait', label: 'waiting', states: ['pending', 'waiting_for_host', 'waiting_for_window'] },
  { cls: 's-off', label: 'skipped or cancelled', states: ['skipped', 'cancelled'] },
];

export const terminal = (s) => ['succeeded', 'failed', 'rolled_back', 'skipped', 'cancelled'].includes(s);

export function endedCount(counts) {
  return Object.entries(counts || {}).reduce((n, [s, c]) => n + (terminal(s) ? c : 0), 0);
}

// progressBar is a bar of the deployments by state group, with its words
// for those who do not see colours (the title and the text beside it).
export function progressBar(counts, total, attrs = {}) {
  const parts = [];
  const words = [];
  for (const g of stateGroups) {
    const n = g.states.reduce((s, st) => s + ((counts || {})[st] || 0), 0);
    if (!n) continue;
    words.push(`${num(n)} ${g.label}`);
    if (total) parts.push(h('span', { class: g.cls, 'data-w': String(Math.round((n / total) * 1000) / 10) }));
  }
  const bar = h('div', { class: 'bar runs-bar', role: 'img', 'aria-label': words.join(', ') || 'no deployment', title: words.join(', ') || 'no deployment', ...attrs }, parts);
  // The CSP forbids style attributes in markup, not CSSOM: widths are set
  // as properties.
  for (const s of bar.children) s.style.width = s.dataset.w + '%';
  return bar;
}

// fmtCounts is "succeeded 10, failed 1" in the order of a deployment's
// life (as the CLI says it).
export const stateOrder = ['pending', 'waiting_for_host', 'waiting_for_window', 'requested', 'downloading', 'staged', 'restarting',
  'watching', 'stuck', 'succeeded', 'failed', 'rolled_back', 'skipped', 'cancelled'];

export function fmtCounts(counts) {
  const keys = Object.keys(counts || {}).filter((k) => counts[k]).sort((a, b) => stateOrder.indexOf(a) - stateOrder.indexOf(b));
  return keys.map((k) => `${k.replaceAll('_', ' ')} ${num(counts[k])}`).join(', ');
}

// fmtTarget is the version(s) a run goes to: its plan's, one version when
// every platform goes to the same; what was asked when there is no plan.
export function fmtTarget(r) {
  const plan = [...(r.plan || [])].sort((a, b) => (a.platform < b.platform ? -1 : 1));
  if (!plan.length) return fmtRequested(r);
  const targets = new Set(plan.map((p) => p.target));
  if (targets.size === 1) return plan[0].target;
  if (r.target === 'rollback') return 'rollback (' + [...targets].join(', ') + ')';
  return plan.map((p) => `${p.platform}=${p.target}`).join(' ');
}

export function fmtRequested(r) {
  return [r.target, ...Object.keys(r.target_for || {}).sort().map((k) => `${k}=${r.target_for[k]}`)].join(' ');
}

export async function render(main, params, query) {
  const status = query.get('status') || '';
  let offset = Math.max(0, parseInt(query.get('offset') || '0', 10) || 0);
  const statusSel = select([['', 'Any status'], ...runStatuses.map((s) => [s, s.replaceAll('_', ' ')])], status, { 'data-test': 'runs-status' });
  statusSel.addEventListener('change', () => {
    setQuery({ status: statusSel.value });
    offset = 0;
    load();
  });
  const newBtn = can('operator')
    ? h('button', { type: 'button', class: 'primary', 'data-test': 'runs-new', onclick: () => openUpgrade({ filter: {} }) }, 'New upgrade run…')
    : null;
  const list = h('div', { 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading…'));
  mount(main,
    h('h1', {}, 'Runs'),
    h('div', { class: 'toolbar' }, field('Status', statusSel), h('span', { class: 'spacer' }), newBtn),
    list);

  let seq = 0;
  async function load() {
    const my = ++seq;
    let res;
    try {
      res = await api('GET', '/v1/runs' + qs({ status: statusSel.value }));
    } catch (e) {
      if (my === seq) showError(list, e);
      return;
    }
    if (my !== seq) return;
    const runs = res.runs || [];
    if (offset >= runs.length && offset > 0) offset = Math.floor((runs.length - 1) / pageSize) * pageSize;
    const rows = runs.slice(offset, offset + pageSize);
    const t = table({
      attrs: { 'data-test': 'runs-table' },
      caption: statusSel.value ? `Runs ${statusSel.value.replaceAll('_', ' ')}` : 'Every run, newest first',
      rowAttrs: (r) => ({ 'data-test': 'run-row', 'data-run': r.id, 'data-status': r.status }),
      columns: [
        { label: 'Run', cell: (r) => link('/runs/' + enc(r.id), r.id, { 'data-test': 'run-link' }) },
        { label: 'Status', cell: (r) => [badge(r.status, { 'data-test': 'run-status' }), r.reason ? h('div', { class: 'muted runs-reason' }, r.reason) : null] },
        { label: 'Target', cell: (r) => h('span', { class: 'mono' }, fmtTarget(r)) },
        { label: 'Text', cell: (r) => r.text || h('span', { class: 'muted' }, '—') },
        { label: 'Created', cell: (r) => timeEl(r.created) },
        { label: 'By', cell: (r) => r.created_by || h('span', { class: 'muted' }, '—') },
        { label: 'Progress', class: 'runs-progress', cell: (r) => [progressBar(r.counts, r.total, { 'data-test': 'run-progress' }),
          h('small', {}, `${num(endedCount(r.counts))}/${num(r.total)} ended`)] },
        { label: 'Counts', cell: (r) => h('small', { 'data-test': 'run-counts' }, fmtCounts(r.counts) || '—') },
      ],
      rows,
      empty: statusSel.value ? 'No run in this status.' : 'No run yet.' + (can('operator') ? ' Start one with “New upgrade run…” or from the fleet.' : ''),
    });
    mount(list, t, runs.length > pageSize ? pager({
      offset, limit: pageSize, total: runs.length,
      onPage: (o) => {
        offset = o;
        setQuery({ status: statusSel.value, offset: o || '' });
        load();
      },
    }) : null);
  }
  await load();
  // Any run's event may change the list: a new run, a state, an end.
  return liveRefresh(load, (ev) => !!ev.run_id, 1500);
}
