// events.js: the event log, live. The newest page of GET /v1/events, then
// every new event as the shell's live feed delivers it, newest on top;
// filters by event id (named from the server's catalogue), agent and run,
// kept in the address; "Load older" pages back with before_id. At most
// MAX_ROWS events are kept on the page, so a tab left open for a day of
// rollouts stays small.
//
// data-test names: events-filters, events-event-input, events-event-add,
// events-group, events-chip (data-id), events-agent, events-run,
// events-apply, events-clear, events-pause, events-state, events-pending,
// events-table, event-row (data-seq, data-id), event-time, event-id,
// event-agent, event-run, event-deployment, event-message, event-fields,
// events-older, events-count, events-error.

import { api, h, mount, qs, enc, link, timeEl, absTime, showError, onLive, setQuery, num } from './lib.js';

const MAX_ROWS = 1000;
const PAGE = 200;
const OLDER_PAGE = 200;

// Groups of the catalogue by hundreds, for a quick filter.
const GROUPS = [
  ['Deployments (264, 277, 7xx)', (id) => id === 264 || id === 277 || (id >= 700 && id < 800)],
  ['Runs (8xx)', (id) => id >= 800 && id < 900],
  ['Agents (9xx)', (id) => id >= 900 && id < 1000],
  ['Releases, settings, tokens, sign-in (10xx)', (id) => id >= 1000 && id < 1100],
  ['Hooks (11xx)', (id) => id >= 1100 && id < 1200],
  ['Server (12xx)', (id) => id >= 1200 && id < 1300],
];

const label = (e) => `${e.id} ${String(e.name || '').replaceAll('_', ' ')}`;

export async function render(main, _params, query) {
  let catalogue = [];
  const byId = new Map();
  const filter = {
    ids: (query.get('id') || '').split(',').map((s) => parseInt(s, 10)).filter((n) => n > 0),
    agent: query.get('agent') || '',
    run: query.get('run') || '',
  };
  let agentID = ''; // filter.agent resolved to an id, for matching live events

  let rows = []; // events shown, newest first
  const seqs = new Set();
  let paused = false;
  let pending = []; // live events that arrived while paused (newest last)
  let loading = true; // the first page is on its way: live events wait in early
  let early = [];
  let failed = false; // the filter was refused: live events would not match it
  let atHead = true; // rows reach up to the newest event (not trimmed at the top)
  let moreOlder = false;
  let gen = 0; // bumps on each reload, so a late answer of an older one is dropped

  // ----- the page -----

  const err = h('div', { 'data-test': 'events-error', 'aria-live': 'assertive' });
  const eventInput = h('input', { type: 'text', list: 'events-catalogue', placeholder: 'e.g. 264 or upgrade failed', 'data-test': 'events-event-input', autocomplete: 'off', spellcheck: 'false', size: 30 });
  const datalist = h('datalist', { id: 'events-catalogue' });
  const chips = h('ul', { class: 'events-chips', 'aria-label': 'Event ids shown' });
  const groupSel = h('select', { 'data-test': 'events-group', onchange: () => {
    const g = GROUPS[parseInt(groupSel.value, 10)];
    groupSel.value = '';
    if (!g) return;
    addIds(catalogue.filter((e) => g[1](e.id)).map((e) => e.id));
  } }, h('option', { value: '' }, 'Add a group…'), GROUPS.map((g, i) => h('option', { value: String(i) }, g[0])));
  const agentIn = h('input', { type: 'text', value: filter.agent, placeholder: 'agent id or name', 'data-test': 'events-agent', spellcheck: 'false', size: 22 });
  const runIn = h('input', { type: 'text', value: filter.run, placeholder: 'r-3', 'data-test': 'events-run', spellcheck: 'false', size: 8 });
  // Freeze, not Pause: the page's words for actions on runs stay theirs.
  const pauseBtn = h('button', { type: 'button', 'data-test': 'events-pause', 'aria-pressed': 'false', onclick: () => (paused ? resume() : pause()) }, 'Freeze');
  const state = h('span', { class: 'events-state', 'data-test': 'events-state', role: 'status', 'aria-live': 'polite' });
  const pendingBtn = h('button', { type: 'button', class: 'link', 'data-test': 'events-pending', hidden: true, onclick: () => resume() });
  const count = h('span', { class: 'muted', 'data-test': 'events-count' });
  const tbody = h('tbody', {});
  const empty = h('tr', {}, h('td', { colspan: 7, class: 'muted empty' }, 'No events match.'));
  const olderBtn = h('button', { type: 'button', 'data-test': 'events-older', onclick: () => loadOlder() }, 'Load older');

  function addIds(ids) {
    const set = new Set(filter.ids);
    for (const id of ids) if (!set.has(id) && set.size < 100) set.add(id);
    filter.ids = [...set].sort((a, b) => a - b);
    drawChips();
    apply();
  }

  // parseEventInput takes "264", "264, 706", "264 upgrade requested" or a
  // unique part of a name; returns the ids or a message.
  function parseEventInput(v) {
    v = v.trim();
    if (!v) return [];
    if (/^\d+(\s*,\s*\d+)*$/.test(v)) {
      const ids = v.split(',').map((s) => parseInt(s, 10));
      const bad = ids.filter((id) => catalogue.length && !byId.has(id));
      if (bad.length) return `No event ${bad.join(', ')} in the catalogue.`;
      return ids;
    }
    const m = /^(\d+)\s/.exec(v);
    if (m && byId.has(parseInt(m[1], 10))) return [parseInt(m[1], 10)];
    const words = v.toLowerCase().replaceAll('_', ' ');
    const found = catalogue.filter((e) => label(e).toLowerCase().includes(words));
    if (found.length === 1) return [found[0].id];
    if (!found.length) return `No event named like "${v}" in the catalogue.`;
    return `"${v}" names ${found.length} events: pick one from the list (${found.slice(0, 5).map(label).join(', ')}${found.length > 5 ? ', …' : ''}).`;
  }

  function addFromInput() {
    const r = parseEventInput(eventInput.value);
    if (typeof r === 'string') {
      showError(err, r);
      eventInput.focus();
      return;
    }
    eventInput.value = '';
    if (r.length) addIds(r);
  }
  eventInput.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      e.preventDefault();
      addFromInput();
    }
  });

  function drawChips() {
    mount(chips, filter.ids.map((id) => {
      const e = byId.get(id);
      const text = e ? label(e) : String(id);
      return h('li', { class: 'events-chip', 'data-test': 'events-chip', 'data-id': id, title: e ? e.description : '' },
        text,
        h('button', { type: 'button', class: 'link', 'aria-label': `Remove ${text} from the filter`, onclick: () => {
          filter.ids = filter.ids.filter((x) => x !== id);
          drawChips();
          apply();
        } }, '×'));
    }));
    chips.hidden = !filter.ids.length;
  }

  const form = h('form', { class: 'events-filters', 'data-test': 'events-filters', 'aria-label': 'Filter events', onsubmit: (e) => {
    e.preventDefault();
    if (eventInput.value.trim()) {
      addFromInput();
      return;
    }
    filter.agent = agentIn.value.trim();
    filter.run = runIn.value.trim();
    apply();
  } },
  h('div', { class: 'row' },
    fieldEl('Event', h('span', { class: 'events-pick' }, eventInput,
      h('button', { type: 'button', 'data-test': 'events-event-add', onclick: addFromInput }, 'Add'))),
    fieldEl('Event group', groupSel),
    fieldEl('Agent', agentIn),
    fieldEl('Run', runIn),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'primary', 'data-test': 'events-apply' }, 'Apply'),
      h('button', { type: 'button', 'data-test': 'events-clear', onclick: () => {
        filter.ids = [];
        filter.agent = filter.run = '';
        agentIn.value = runIn.value = eventInput.value = '';
        drawChips();
        apply();
      } }, 'Clear'))),
  chips, datalist);

  mount(main,
    h('h1', {}, 'Events'),
    h('p', { class: 'muted' }, 'The event log as it is written, newest first. Filter by event, agent or run; the filter stays in the address.'),
    form,
    err,
    h('div', { class: 'toolbar' }, pauseBtn, state, pendingBtn, h('span', { class: 'spacer' }), count),
    h('table', { class: 'events-table', 'data-test': 'events-table' },
      h('caption', { class: 'skip' }, 'Events, newest first'),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, 'Time'),
        h('th', { scope: 'col' }, 'Event'),
        h('th', { scope: 'col' }, 'Agent'),
        h('th', { scope: 'col' }, 'Run'),
        h('th', { scope: 'col' }, 'Deployment'),
        h('th', { scope: 'col' }, 'Message'),
        h('th', { scope: 'col' }, 'Fields'))),
      tbody),
    h('div', { class: 'actions' }, olderBtn));
  drawChips();

  // ----- rows -----

  function rowEl(ev) {
    const info = byId.get(ev.id);
    const name = String(ev.name || (info && info.name) || '').replaceAll('_', ' ');
    const fields = Object.entries(ev.fields || {}).sort(([a], [b]) => a.localeCompare(b));
    return h('tr', { 'data-test': 'event-row', 'data-seq': ev.seq, 'data-id': ev.id },
      h('td', { class: 'events-time', 'data-test': 'event-time' }, timeEl(ev.at), h('div', { class: 'muted events-abs' }, absTime(ev.at))),
      h('td', { 'data-test': 'event-id' },
        h('button', { type: 'button', class: 'link events-idbtn', title: info ? info.description : '', 'aria-label': `Show only event ${ev.id} ${name}`, onclick: () => addIds([ev.id]) },
          h('span', { class: 'mono' }, String(ev.id))),
        ' ', h('span', { title: info ? info.description : '' }, name)),
      h('td', { 'data-test': 'event-agent' }, ev.agent_id ? agentLink(ev.agent_id) : ''),
      h('td', { 'data-test': 'event-run' }, ev.run_id ? link('/runs/' + enc(ev.run_id), ev.run_id, { class: 'mono' }) : ''),
      h('td', { 'data-test': 'event-deployment' }, ev.deployment_id ? link('/deployments/' + enc(ev.deployment_id), ev.deployment_id, { class: 'mono' }) : ''),
      h('td', { class: 'events-msg', 'data-test': 'event-message' }, ev.message),
      h('td', { 'data-test': 'event-fields' }, fields.length
        ? h('dl', { class: 'events-fields' }, fields.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]))
        : ''));
  }

  // Events carry agent ids; the names are asked for in one request per
  // burst of unknown ids (GET /v1/agents?id=...) and put in place.
  const agentNames = new Map(); // id -> name; '' while asked; null: unknown
  let namesTimer = null;
  function agentLink(id) {
    const name = agentNames.get(id);
    if (name === undefined) {
      agentNames.set(id, '');
      if (!namesTimer) namesTimer = setTimeout(resolveNames, 50);
    }
    return link('/agents/' + enc(id), name || id, { class: name ? '' : 'mono', 'data-agent': id, title: id });
  }
  async function resolveNames() {
    namesTimer = null;
    const ids = [...agentNames].filter(([, n]) => n === '').map(([id]) => id).slice(0, 1000);
    if (!ids.length) return;
    try {
      const r = await api('GET', '/v1/agents' + qs({ id: ids, inactive: true, limit: ids.length }));
      for (const a of r.agents || []) agentNames.set(a.id, a.name || null);
    } catch (e) {
      if (e.status === 401) return;
    }
    for (const id of ids) if (agentNames.get(id) === '') agentNames.set(id, null);
    for (const el of tbody.querySelectorAll('a[data-agent]')) {
      const n = agentNames.get(el.dataset.agent);
      if (n && el.textContent !== n) {
        el.textContent = n;
        el.classList.remove('mono');
      }
    }
    if ([...agentNames.values()].includes('')) namesTimer = setTimeout(resolveNames, 50);
  }

  function drawAll() {
    const frag = document.createDocumentFragment();
    for (const ev of rows) frag.append(rowEl(ev));
    if (!rows.length) frag.append(empty);
    tbody.replaceChildren(frag);
    drawMeta();
  }

  function drawMeta() {
    count.textContent = `${num(rows.length)} event${rows.length === 1 ? '' : 's'} shown${rows.length >= MAX_ROWS ? ` (at most ${num(MAX_ROWS)} are kept)` : ''}`;
    olderBtn.hidden = !moreOlder;
    pauseBtn.setAttribute('aria-pressed', paused ? 'true' : 'false');
    pauseBtn.title = paused ? 'Show new events again as they arrive' : 'Stop adding new events to the list while you read it';
    state.textContent = paused
      ? (atHead ? 'Frozen: new events wait until you unfreeze.' : 'Showing older events: the live tail is frozen; unfreeze to go back to the newest.')
      : 'Live: new events appear on top.';
    pendingBtn.hidden = !paused || !pending.length;
    pendingBtn.textContent = `${num(pending.length)} new event${pending.length === 1 ? '' : 's'}: show them`;
  }

  // prepend puts newer events (in any order) on top and trims the bottom.
  function prepend(evs) {
    const fresh = evs.filter((e) => !seqs.has(e.seq)).sort((a, b) => b.seq - a.seq);
    if (!fresh.length) return;
    if (!rows.length) tbody.replaceChildren();
    const frag = document.createDocumentFragment();
    for (const ev of fresh) {
      seqs.add(ev.seq);
      frag.append(rowEl(ev));
    }
    tbody.prepend(frag);
    rows = fresh.concat(rows);
    while (rows.length > MAX_ROWS) {
      seqs.delete(rows.pop().seq);
      tbody.lastElementChild.remove();
      moreOlder = true;
    }
    drawMeta();
  }

  // ----- matching live events -----

  function matches(ev) {
    if (filter.ids.length && !filter.ids.includes(ev.id)) return false;
    if (agentID && ev.agent_id !== agentID) return false;
    if (filter.run && ev.run_id !== filter.run) return false;
    return true;
  }

  const flush = { timer: null, queue: [] };
  function queue(ev) {
    flush.queue.push(ev);
    if (flush.timer) return;
    // A burst (a wave of a thousand agents) is drawn in one go.
    flush.timer = requestAnimationFrame(() => {
      flush.timer = null;
      const q = flush.queue;
      flush.queue = [];
      if (paused) {
        pending = pending.concat(q).slice(-MAX_ROWS);
        drawMeta();
      } else {
        prepend(q);
      }
    });
  }

  const off = onLive((ev) => {
    if (ev === null) {
      // Reconnected: the stream may have missed events meanwhile.
      catchUp();
      return;
    }
    if (failed || !matches(ev)) return;
    if (loading) {
      if (early.length < MAX_ROWS) early.push(ev);
      return;
    }
    if (!atHead) return;
    queue(ev);
  });

  // ----- loading -----

  function params(extra) {
    return qs({ id: filter.ids.join(','), agent: filter.agent, run: filter.run, ...extra });
  }

  async function resolveAgent() {
    agentID = '';
    if (!filter.agent) return;
    const a = await api('GET', '/v1/agents/' + enc(filter.agent));
    agentID = a.id;
  }

  async function load() {
    const my = ++gen;
    loading = true;
    failed = false;
    early = [];
    pending = [];
    atHead = true;
    err.replaceChildren();
    try {
      await resolveAgent();
      const r = await api('GET', '/v1/events' + params({ limit: PAGE }));
      if (my !== gen) return;
      const evs = (r.events || []).slice().reverse();
      rows = [];
      seqs.clear();
      for (const ev of evs) {
        rows.push(ev);
        seqs.add(ev.seq);
      }
      moreOlder = evs.length === PAGE;
      drawAll();
      loading = false;
      const newer = early.filter((e) => !seqs.has(e.seq) && (!rows.length || e.seq > rows[0].seq));
      early = [];
      if (paused) pending = newer;
      else prepend(newer);
    } catch (e) {
      if (my !== gen) return;
      loading = false;
      failed = true;
      rows = [];
      seqs.clear();
      moreOlder = false;
      drawAll();
      showError(err, e);
    }
  }

  async function loadOlder() {
    if (!rows.length) return;
    const my = gen;
    olderBtn.disabled = true;
    try {
      const oldest = rows[rows.length - 1].seq;
      const r = await api('GET', '/v1/events' + params({ before_id: oldest, limit: OLDER_PAGE }));
      if (my !== gen) return;
      const evs = (r.events || []).filter((e) => e.seq < oldest && !seqs.has(e.seq)).reverse();
      moreOlder = (r.events || []).length === OLDER_PAGE;
      const frag = document.createDocumentFragment();
      for (const ev of evs) {
        seqs.add(ev.seq);
        rows.push(ev);
        frag.append(rowEl(ev));
      }
      tbody.append(frag);
      // Over the bound the newest go: the reader is looking back, so the
      // tail pauses until they resume, which reloads the newest page.
      if (rows.length > MAX_ROWS) {
        while (rows.length > MAX_ROWS) {
          seqs.delete(rows.shift().seq);
          tbody.firstElementChild.remove();
        }
        atHead = false;
        paused = true;
        pending = [];
      }
      drawMeta();
    } catch (e) {
      showError(err, e);
    } finally {
      olderBtn.disabled = false;
    }
  }

  // catchUp fetches what arrived after the newest event shown (after a
  // reconnect of the live feed).
  async function catchUp() {
    if (loading || failed || !atHead) return;
    const top = rows.length ? rows[0].seq : 0;
    if (!top) {
      if (!paused) load();
      return;
    }
    try {
      const r = await api('GET', '/v1/events' + params({ after_id: top, limit: MAX_ROWS }));
      const evs = (r.events || []).filter(matches);
      if (paused) pending = pending.concat(evs).slice(-MAX_ROWS);
      else prepend(evs);
      drawMeta();
    } catch (e) {
      showError(err, e);
    }
  }

  function pause() {
    paused = true;
    drawMeta();
  }

  function resume() {
    paused = false;
    if (!atHead) {
      load();
      return;
    }
    const p = pending;
    pending = [];
    prepend(p);
    drawMeta();
  }

  function apply() {
    setQuery({ id: filter.ids.join(','), agent: filter.agent, run: filter.run });
    if (!atHead) paused = false;
    load();
  }

  // The catalogue names the events; the page works without it (ids only).
  api('GET', '/v1/events/catalogue').then((c) => {
    catalogue = (c && c.events) || [];
    for (const e of catalogue) byId.set(e.id, e);
    mount(datalist, catalogue.map((e) => h('option', { value: label(e) })));
    drawChips();
    if (!loading) drawAll();
  }).catch((e) => showError(err, e));

  await load();
  return () => {
    off();
    if (flush.timer) cancelAnimationFrame(flush.timer);
    gen++;
  };
}

function fieldEl(text, control) {
  const input = control.matches('input, select') ? control : control.querySelector('input, select');
  const id = input.id || 'ev-' + Math.random().toString(36).slice(2);
  input.id = id;
  return h('div', { class: 'field' }, h('label', { for: id }, text), control);
}
