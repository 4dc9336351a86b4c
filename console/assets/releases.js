// releases.js: Releases (#/releases). The imported releases, newest first
// (GET /v1/releases): version, platforms, size, floor, when it was released
// and imported, and the platforms it is quarantined for with the reason.
// Admins import a pack by upload (POST /v1/releases, the file as it is,
// application/octet-stream, as `molt release import` sends it) with the
// upload's progress and the server's answer to the signature check: the
// release, or its 422 pack_rejected message as it is; and remove a release
// (after a confirmation). Operators quarantine a release per platform with
// a reason, and lift a quarantine.
//
// data-test names: releases, release-import (the form), release-file,
// release-upload, release-abort, release-progress, release-progress-text,
// release-result (data-outcome="imported"|"rejected"|"invalid" on it),
// releases-table, release-row (data-version on it), release-version,
// release-platforms, release-floor, release-size, release-quarantined,
// quarantine-entry (data-platform on it), release-quarantine,
// release-unquarantine (data-platform on it), release-remove,
// quarantine-form, quarantine-platform (checkboxes, value = platform),
// quarantine-reason, quarantine-submit.

import {
  api, enc, h, mount, timeEl, bytes, badge, showError, errorBox, table, field, can, action,
  confirmDialog, modal, toast, liveRefresh, session, ApiError,
} from './lib.js';

// maxPack is the server's limit on a pack (protocol.MaxPackSize).
const maxPack = 2 * 1024 ** 3;

// The release events: imported, rejected, removed, quarantined,
// unquarantined.
const releaseEvents = new Set([1000, 1001, 1002, 1007, 1008]);

// upload sends file to POST /v1/releases with XMLHttpRequest, whose upload
// progress fetch does not give; onProgress(sent, total). It resolves with
// the release, or rejects with an ApiError carrying the server's message.
function upload(file, onProgress, signal) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/v1/releases');
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    xhr.setRequestHeader('X-CSRF-Token', session.csrf);
    xhr.responseType = 'text';
    xhr.upload.addEventListener('progress', (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size));
    xhr.addEventListener('load', () => {
      let data = null;
      try {
        data = xhr.responseText ? JSON.parse(xhr.responseText) : null;
      } catch {
        data = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(data);
        return;
      }
      const msg = data && data.error ? data.error : `${xhr.status} ${xhr.statusText || 'error'}`;
      if (xhr.status === 401) window.dispatchEvent(new CustomEvent('molt:signedout', { detail: msg }));
      reject(new ApiError(xhr.status, data && data.code ? data.code : '', msg));
    });
    xhr.addEventListener('error', () => reject(new ApiError(0, 'network', 'the upload failed: the server cannot be reached or closed the connection')));
    xhr.addEventListener('abort', () => reject(new ApiError(0, 'aborted', 'the upload was stopped')));
    if (signal) signal.addEventListener('abort', () => xhr.abort());
    xhr.send(file);
  });
}

function importForm(onImported) {
  const fileIn = h('input', { type: 'file', accept: '.pack,.zip,.tar,.tgz,.gz,application/zip', 'data-test': 'release-file', required: true });
  const go = h('button', { type: 'submit', class: 'primary', 'data-test': 'release-upload' }, 'Upload and verify');
  const abort = h('button', { type: 'button', 'data-test': 'release-abort', hidden: true }, 'Stop upload');
  const bar = h('progress', { max: '100', value: '0', 'data-test': 'release-progress', 'aria-label': 'Upload' });
  const barText = h('span', { 'data-test': 'release-progress-text' });
  const progress = h('div', { class: 'rel-progress', hidden: true }, bar, ' ', barText);
  const result = h('div', { 'aria-live': 'polite' });
  let ctl = null;
  abort.addEventListener('click', () => ctl && ctl.abort());

  const form = h('form', { class: 'card rel-import', 'data-test': 'release-import', 'aria-labelledby': 'rel-import-h' },
    h('h2', { id: 'rel-import-h' }, 'Import a release'),
    h('p', { class: 'muted' }, 'A pack as ', h('code', {}, 'molt pack build'), ' writes it. The server checks its signature against its trusted keys and every file against the signed manifest before it is listed.'),
    h('div', { class: 'row' }, field('Pack file', fileIn), h('div', { class: 'actions' }, go, abort)),
    progress, result);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const file = fileIn.files && fileIn.files[0];
    mount(result);
    const refuse = (msg) => mount(result, h('div', { class: 'error', role: 'alert', 'data-test': 'release-result', 'data-outcome': 'invalid' }, msg));
    if (!file) {
      refuse('Choose a pack file first.');
      return;
    }
    if (file.size > maxPack) {
      refuse(`${file.name} is ${bytes(file.size)}, over the server's limit of ${bytes(maxPack)}.`);
      return;
    }
    ctl = new AbortController();
    go.disabled = true;
    fileIn.disabled = true;
    abort.hidden = false;
    progress.hidden = false;
    bar.max = file.size || 1;
    bar.value = 0;
    barText.textContent = `0 of ${bytes(file.size)}`;
    const started = Date.now();
    try {
      const rel = await upload(file, (sent, total) => {
        bar.max = total || 1;
        bar.value = sent;
        const pct = total ? Math.floor((sent * 100) / total) : 100;
        barText.textContent = sent >= total
          ? `${bytes(total)} sent: the server is checking the signature and the files…`
          : `${bytes(sent)} of ${bytes(total)} (${pct}%)`;
      }, ctl.signal);
      barText.textContent = `${bytes(file.size)} sent in ${((Date.now() - started) / 1000).toFixed(1)} s.`;
      mount(result, h('div', { class: 'note rel-ok', role: 'status', 'data-test': 'release-result', 'data-outcome': 'imported' },
        h('strong', {}, `Imported ${rel.version}`), ` for ${(rel.platforms || []).join(', ')}: the signature and every file checked out.`,
        rel.floor ? ` Floor ${rel.floor}.` : ''));
      fileIn.value = '';
      onImported(rel);
    } catch (ex) {
      if (ex.code !== 'aborted' && ex.code !== 'network') barText.textContent = `${bytes(file.size)} sent; the server's answer:`;
      const box = h('div', { class: 'error', role: 'alert', 'data-test': 'release-result', 'data-outcome': 'rejected' },
        ex.code === 'pack_rejected' ? h('strong', {}, 'Refused: ') : null, ex.message);
      mount(result, box);
    } finally {
      ctl = null;
      go.disabled = false;
      fileIn.disabled = false;
      abort.hidden = true;
    }
  });
  return form;
}

// quarantineDialog asks for the platforms and the reason.
function quarantineDialog(rel, done) {
  const already = new Set((rel.quarantined || []).map((q) => q.platform));
  const free = (rel.platforms || []).filter((p) => !already.has(p));
  const boxes = free.map((p) => h('input', { type: 'checkbox', value: p, checked: free.length === 1, 'data-test': 'quarantine-platform', id: 'qp-' + p.replace(/[^a-z0-9]/gi, '-') }));
  const reason = h('input', { type: 'text', maxlength: '1024', placeholder: 'e.g. crashes at start on this platform', 'data-test': 'quarantine-reason', size: 50 });
  const err = h('div', { 'aria-live': 'assertive' });
  const submit = h('button', { type: 'submit', class: 'danger', 'data-test': 'quarantine-submit' }, 'Quarantine');
  const form = h('form', { 'data-test': 'quarantine-form' },
    h('p', {}, 'A quarantined release is not recommended to the agents of that platform and upgrade on activation passes it over there. Runs already under way are not changed.'),
    h('fieldset', {}, h('legend', {}, 'Platforms'),
      boxes.map((b) => h('div', { class: 'rel-check' }, b, ' ', h('label', { for: b.id, class: 'mono' }, b.value)))),
    field('Reason', reason, 'Recorded with the quarantine and shown here and in the events; at most 1024 characters.'),
    err,
    h('footer', {}, h('button', { type: 'button', onclick: () => m.close() }, 'Cancel'), submit));
  const m = modal(`Quarantine release ${rel.version}`, form);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const platforms = boxes.filter((b) => b.checked).map((b) => b.value);
    if (!platforms.length) {
      mount(err, errorBox('Choose at least one platform.'));
      return;
    }
    submit.disabled = true;
    try {
      const r = await api('POST', `/v1/releases/${enc(rel.version)}/quarantine`, { platforms, reason: reason.value.trim() });
      m.close();
      toast(`Release ${r.version} is quarantined for ${platforms.join(', ')}.`);
      done();
    } catch (ex) {
      showError(err, ex);
    } finally {
      submit.disabled = false;
    }
  });
  (boxes[0] || reason).focus();
}

function quarantineCell(rel, reload) {
  const qs = rel.quarantined || [];
  if (!qs.length) return h('span', { class: 'muted' }, 'none');
  return h('ul', { class: 'rel-quarantines', 'data-test': 'release-quarantined' }, qs.map((q) => h('li', { 'data-test': 'quarantine-entry', 'data-platform': q.platform },
    badge('quarantined'), ' ', h('span', { class: 'mono' }, q.platform), ': ', q.reason,
    h('span', { class: 'muted' }, ' (', q.automatic ? 'by rollbacks' : 'by an operator', ', ', timeEl(q.at), ')'),
    can('operator') ? [' ', h('button', {
      type: 'button', class: 'link', 'data-test': 'release-unquarantine', 'data-platform': q.platform,
      'aria-label': `Lift the quarantine of ${rel.version} on ${q.platform}`,
      onclick: (e) => action(e.currentTarget, () => api('POST', `/v1/releases/${enc(rel.version)}/unquarantine`, { platforms: [q.platform] }),
        `Release ${rel.version} is no longer quarantined for ${q.platform}.`).then(reload, () => {}),
    }, 'Lift')] : null)));
}

export async function render(main) {
  const listBox = h('div');
  const err = h('div', { 'aria-live': 'polite' });

  async function load(first) {
    let res;
    try {
      res = await api('GET', '/v1/releases');
    } catch (e) {
      if (first) throw e;
      showError(err, e);
      return;
    }
    mount(err);
    const rels = res.releases || [];
    const columns = [
      { label: 'Version', cell: (r) => h('strong', { class: 'mono', 'data-test': 'release-version' }, r.version) },
      { label: 'Platforms', cell: (r) => h('span', { 'data-test': 'release-platforms' }, (r.platforms || []).map((p, i) => {
        const q = (r.quarantined || []).some((x) => x.platform === p);
        return [i ? ', ' : '', h('span', { class: 'mono' + (q ? ' rel-qplat' : '') }, p), q ? ' (quarantined)' : ''];
      })) },
      { label: 'Size', class: 'num', cell: (r) => h('span', { 'data-test': 'release-size' }, bytes(r.size)) },
      { label: 'Released', cell: (r) => timeEl(r.released) },
      { label: 'Imported', cell: (r) => timeEl(r.imported) },
      { label: 'Floor', cell: (r) => h('span', { class: 'mono', 'data-test': 'release-floor', title: 'Agents below the floor cannot upgrade to it directly' }, r.floor || '—') },
      { label: 'Quarantine', cell: (r) => quarantineCell(r, () => load()) },
    ];
    if (can('operator')) {
      columns.push({ label: 'Actions', cell: (r) => h('div', { class: 'hist-actions' },
        (r.quarantined || []).length < (r.platforms || []).length
          ? h('button', { type: 'button', 'data-test': 'release-quarantine', onclick: () => quarantineDialog(r, () => load()) }, 'Quarantine…') : null,
        can('admin') ? h('button', {
          type: 'button', class: 'danger', 'data-test': 'release-remove',
          onclick: async (e) => {
            const btn = e.currentTarget;
            const ok = await confirmDialog(`Remove release ${r.version}?`,
              h('p', {}, `Its packs (${(r.platforms || []).join(', ')}, ${bytes(r.size)}) are deleted from the server. Agents running it keep running it. The server refuses while a run, a deployment or a version pin needs it.`),
              'Remove', true);
            if (!ok) return;
            await action(btn, () => api('DELETE', `/v1/releases/${enc(r.version)}`), `Release ${r.version} removed.`).then(() => load(), () => {});
          },
        }, 'Remove') : null) });
    }
    mount(listBox, table({
      columns, rows: rels, caption: `${rels.length} release${rels.length === 1 ? '' : 's'}, newest first`,
      empty: can('admin') ? 'No release imported yet: upload a pack above.' : 'No release imported yet.',
      attrs: { 'data-test': 'releases-table' },
      rowAttrs: (r) => ({ 'data-test': 'release-row', 'data-version': r.version }),
    }));
  }

  mount(main, h('section', { 'data-test': 'releases', 'aria-labelledby': 'rel-h1' },
    h('h1', { id: 'rel-h1' }, 'Releases'),
    can('admin') ? importForm(() => load()) : null,
    h('h2', {}, 'Imported releases'),
    err, listBox));
  await load(true);
  return liveRefresh(() => load(), (ev) => releaseEvents.has(ev.id), 1000);
}
