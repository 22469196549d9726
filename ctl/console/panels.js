// Airlift console: the node-wide panels — health, archive, pull jobs and the
// alarm log. Each takes the JSON of its API route and draws it into the
// elements of index.html.

import { h, setAttr, setText, fmtBytes, fmtDuration, fmtAge, fmtTime, fmtNum } from './dom.js';

/** Tone (colour) of a health verdict, breaker or upload state. */
const TONES = {
  healthy: 'ok', degraded: 'warn', unhealthy: 'bad',
  closed: 'ok', half_open: 'warn', 'half-open': 'warn', open: 'bad',
  uploaded: 'ok', spooled: 'warn', local: 'idle',
  running: 'ok', stopped: 'idle', starting: 'warn',
};
const tone = (s) => TONES[s] || (String(s).startsWith('failed') ? 'bad' : 'warn');

/** GET /api/v1/health into `#health` (and the header badge). */
export function renderHealth(root, badge, health) {
  const status = root.querySelector('.health-status');
  setText(status, health.status);
  status.dataset.tone = tone(health.status);
  setText(badge, health.status);
  badge.dataset.tone = tone(health.status);
  badge.hidden = false;

  const engine = root.querySelector('.health-engine');
  setText(engine, health.engine_connected
    ? `engine connected${health.engine_pid ? ` (pid ${health.engine_pid})` : ''}`
    : 'engine not connected');
  engine.dataset.tone = health.engine_connected ? 'ok' : 'bad';

  setText(root.querySelector('.health-uptime'), fmtDuration(health.uptime_seconds));
  setText(root.querySelector('.health-version'), health.version ?? '–');
  setText(root.querySelector('.health-restarts'), fmtNum(health.engine_restarts));

  const reasons = Array.isArray(health.reasons) ? health.reasons : [];
  root.querySelector('.health-reasons').replaceChildren(...reasons.map((r) => h('li', { text: r })));
}

/** GET /api/v1/archive into `#archive`. */
export function renderArchive(root, archive) {
  const spool = archive.spool || {};
  const limit = spool.limit_bytes || 0;
  const pct = limit > 0 ? Math.min(100, (spool.bytes / limit) * 100) : 0;
  setText(root.querySelector('.spool-text'),
    limit > 0 ? `${fmtBytes(spool.bytes)} / ${fmtBytes(limit)} (${pct.toFixed(1)} %)` : fmtBytes(spool.bytes));
  const bar = root.querySelector('.bar');
  setAttr(bar, 'aria-valuenow', pct.toFixed(1));
  setAttr(bar, 'aria-valuetext', `${pct.toFixed(1)} percent`);
  const fill = bar.querySelector('.bar-fill');
  fill.style.width = `${pct}%`;
  fill.dataset.tone = pct >= 90 ? 'bad' : pct >= 75 ? 'warn' : 'ok';
  setText(root.querySelector('.spool-path'), spool.path ?? '');

  const up = archive.uploads || {};
  setText(root.querySelector('.archive-backlog'),
    up.queue_limit ? `${fmtNum(up.backlog)} / ${fmtNum(up.queue_limit)}` : fmtNum(up.backlog));
  setText(root.querySelector('.archive-unqueued'), fmtNum(up.unqueued));
  setText(root.querySelector('.archive-lag'), fmtNum(up.lag_seconds, 1, 's'));
  root.querySelector('.archive-stopped').hidden = !up.recording_stopped;

  const last = archive.last_upload;
  setText(root.querySelector('.archive-last'), last
    ? `${last.key} (${fmtBytes(last.bytes)}, ${fmtAge(last.age_seconds)} ago)`
    : 'none');

  const targets = Array.isArray(up.targets) ? up.targets : [];
  root.querySelector('.archive-targets').replaceChildren(
    ...(targets.length
      ? targets.map((t) => h('li', { class: 'chip', 'data-tone': tone(t.breaker) }, `${t.name}: `, h('strong', { text: t.breaker })))
      : [h('li', { class: 'chip', 'data-tone': 'idle', text: 'no upload target (local only)' })]),
  );

  const segments = Array.isArray(archive.recent_segments) ? archive.recent_segments : [];
  root.querySelector('.archive-segments').replaceChildren(
    ...segments.map((s) => h(
      'tr',
      { title: s.key || s.path || '' },
      h('td', { text: s.job }),
      h('td', { class: 'mono', text: String(s.sequence) }),
      h('td', { class: 'mono', text: fmtBytes(s.bytes) }),
      h('td', { class: 'mono', text: fmtTime(s.closed_at_ms) }),
      h('td', {}, h('span', { class: 'badge', 'data-tone': tone(s.upload), text: s.upload })),
    )),
  );
}

/** GET /api/v1/pulls into `tbody#pulls`; `onStop(name, button)` for each Stop. */
export function renderPulls(tbody, empty, pulls, onStop) {
  const list = Array.isArray(pulls) ? pulls : [];
  tbody.replaceChildren(...list.map((p) => h(
    'tr',
    { 'data-pull': p.name },
    h('td', { class: 'mono', text: p.name }),
    h('td', {}, h('span', { class: 'badge', 'data-tone': tone(p.state), text: p.state })),
    h('td', { class: 'mono wrap', text: p.source }),
    h('td', { text: p.origin ?? '' }),
    h('td', {}, h('button', {
      type: 'button',
      class: 'btn btn-small pull-stop',
      'aria-label': `Stop pull ${p.name}`,
      text: 'Stop',
      onclick: (ev) => onStop(p.name, ev.currentTarget),
    })),
  )));
  empty.hidden = list.length > 0;
  tbody.closest('table').hidden = list.length === 0;
}

/** The alarm log `ul#alarms`: newest first, at most MAX entries. */
export class AlarmLog {
  static MAX = 200;

  constructor(list, empty) {
    this.list = list;
    this.empty = empty;
  }

  static item(a) {
    return h(
      'li',
      { class: 'alarm', 'data-kind': a.kind },
      h('time', {
        class: 'mono',
        datetime: Number.isFinite(a.at_ms) ? new Date(a.at_ms).toISOString() : null,
        text: fmtTime(a.at_ms),
      }),
      h('span', { class: 'alarm-kind', text: a.kind }),
      a.flow ? h('span', { class: 'alarm-flow', text: a.flow }) : null,
      h('span', { class: 'alarm-msg', text: a.message }),
    );
  }

  /** GET /api/v1/alarms (newest first). */
  set(alarms) {
    const list = Array.isArray(alarms) ? alarms.slice(0, AlarmLog.MAX) : [];
    this.list.replaceChildren(...list.map(AlarmLog.item));
    this.empty.hidden = list.length > 0;
  }

  /** An SSE `alarm` event. */
  add(alarm) {
    this.list.prepend(AlarmLog.item(alarm));
    while (this.list.children.length > AlarmLog.MAX) this.list.lastElementChild.remove();
    this.empty.hidden = true;
  }

  clear() {
    this.set([]);
  }
}
