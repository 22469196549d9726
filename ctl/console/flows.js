// Airlift console: one card per flow — state, start/stop, meters, loudness,
// realtime figures, input controls (gain, mute, pan, source) and SRT links.
// Cards are built once and then updated in place, so a fader being dragged or
// a focused control survives refreshes; a card is rebuilt only when its
// inputs or links change shape.

import { h, setAttr, setText, fmtLevel, fmtNum, whileBusy } from './dom.js';
import { MeterBank } from './meters.js';

/** Levels from SSE newer than this (ms) win over the meters in GET /flows. */
const LIVE_LEVELS_MS = 1500;

let uid = 0;
const nextId = (prefix) => `${prefix}-${++uid}`;

const fmtGain = (db) => `${db > 0 ? '+' : ''}${db.toFixed(1)} dB`;
function fmtPan(pan) {
  if (Math.abs(pan) < 0.005) return 'C';
  return `${pan < 0 ? 'L' : 'R'} ${Math.round(Math.abs(pan) * 100)}`;
}
const fmtLufs = (v) => (typeof v === 'number' && Number.isFinite(v) ? `${v.toFixed(1)} LUFS` : '-inf');

/** The shape of a flow (inputs, links, processors): when it changes, the card is rebuilt. */
function shapeOf(flow) {
  return JSON.stringify([
    (flow.inputs || []).map((i) => [i.name, i.sources || null]),
    (flow.links || []).map((l) => l.name),
    flow.processors || [],
  ]);
}

/**
 * Controls for one input: `div.input[data-input]`. `actions.setGain` etc.
 * return a promise of true (done) or false (refused; the error is shown by
 * the app), after which the control falls back to the last known value.
 */
class InputControl {
  constructor(flow, input, actions) {
    this.flow = flow;
    this.name = input.name;
    this.actions = actions;
    this.known = {}; // the node's last known values: gain_db, muted, pan, selected
    this.editing = false; // the user is moving the gain fader: leave it alone

    const gainId = nextId('gain');
    const panId = nextId('pan');
    this.gain = h('input', {
      id: gainId,
      class: 'gain',
      type: 'range',
      min: -60,
      max: 12,
      step: 0.5,
      'aria-label': `${input.name} gain in dB`,
      onpointerdown: () => { this.editing = true; },
      // A click that moved nothing fires no `change`: stop editing here then.
      onpointerup: () => { if (Number(this.gain.value) === this.known.gain_db) this.editing = false; },
      onpointercancel: () => { this.editing = false; this.show(); },
      onblur: () => { this.editing = false; },
      oninput: () => {
        this.editing = true;
        setText(this.gainValue, fmtGain(Number(this.gain.value)));
      },
      onchange: () => this.sendGain(),
    });
    this.gainValue = h('output', { class: 'gain-value mono', for: gainId });
    this.mute = h('button', {
      type: 'button',
      class: 'btn mute',
      'aria-pressed': 'false',
      'aria-label': `Mute ${input.name}`,
      text: 'Mute',
      onclick: () => this.sendMute(),
    });
    this.pan = h('input', {
      id: panId,
      class: 'pan',
      type: 'range',
      min: -1,
      max: 1,
      step: 0.05,
      'aria-label': `${input.name} pan`,
      oninput: () => setText(this.panValue, fmtPan(Number(this.pan.value))),
      onchange: () => this.sendPan(),
    });
    this.panValue = h('output', { class: 'pan-value mono', for: panId });

    let sourceRow = null;
    if (Array.isArray(input.sources) && input.sources.length > 0) {
      this.source = h(
        'select',
        { class: 'source', 'aria-label': `${input.name} source`, onchange: () => this.sendSource() },
        h('option', { value: 'auto', text: 'auto' }),
        input.sources.map((s) => h('option', { value: s, text: s })),
      );
      this.active = h('span', { class: 'source-active mono' });
      sourceRow = h(
        'div',
        { class: 'ctl-row' },
        h('label', { class: 'ctl-label' }, 'Source', this.source),
        h('span', { class: 'source-now' }, 'on air: ', this.active),
      );
    }

    this.el = h(
      'div',
      { class: 'input', 'data-input': input.name },
      h('div', { class: 'input-head' }, h('h4', { class: 'input-name', text: input.name }), this.mute),
      h('div', { class: 'ctl-row' }, h('label', { class: 'ctl-label', for: gainId, text: 'Gain' }), this.gain, this.gainValue),
      h('div', { class: 'ctl-row' }, h('label', { class: 'ctl-label', for: panId, text: 'Pan' }), this.pan, this.panValue),
      sourceRow,
    );
    this.update(input);
  }

  /** Takes values from GET /flows or an SSE `input` event (missing keys keep theirs). */
  update(data) {
    for (const key of ['gain_db', 'muted', 'pan', 'selected']) {
      if (key in data) this.known[key] = data[key];
    }
    if (typeof data.source === 'string') this.known.source = data.source;
    this.show();
  }

  /** The active source after an SSE `input_switched` event. */
  switched(source) {
    this.known.source = source;
    this.show();
  }

  /** Puts the known values on the controls (the gain fader only when not being moved). */
  show() {
    const k = this.known;
    if (!this.editing && typeof k.gain_db === 'number') {
      this.gain.value = String(k.gain_db);
      setText(this.gainValue, fmtGain(k.gain_db));
    }
    const muted = k.muted === true;
    setAttr(this.mute, 'aria-pressed', muted ? 'true' : 'false');
    setText(this.mute, muted ? 'Muted' : 'Mute');
    this.el.classList.toggle('is-muted', muted);
    if (typeof k.pan === 'number' && document.activeElement !== this.pan) {
      this.pan.value = String(k.pan);
      setText(this.panValue, fmtPan(k.pan));
    }
    if (this.source) {
      const want = k.selected == null ? 'auto' : k.selected;
      if (document.activeElement !== this.source) this.source.value = want;
      setText(this.active, k.source || '–');
    }
  }

  async sendGain() {
    const db = Number(this.gain.value);
    const ok = await this.actions.setGain(this.flow, this.name, db);
    this.editing = false;
    if (ok) this.known.gain_db = db;
    this.show();
  }

  sendMute() {
    return whileBusy(this.mute, async () => {
      const muted = this.known.muted !== true;
      if (await this.actions.setMute(this.flow, this.name, muted)) this.known.muted = muted;
      this.show();
    });
  }

  async sendPan() {
    const pan = Number(this.pan.value);
    const ok = await this.actions.setPan(this.flow, this.name, pan);
    if (ok) this.known.pan = pan;
    this.show();
  }

  async sendSource() {
    const source = this.source.value;
    const ok = await this.actions.setSource(this.flow, this.name, source);
    if (ok) this.known.selected = source === 'auto' ? null : source;
    this.source.blur();
    this.show();
  }
}

/** One SRT link: `.link[data-link]` with its state and statistics. */
class LinkView {
  constructor(link) {
    this.name = link.name;
    this.eventState = null; // last state from an SSE `link` event
    this.state = h('span', { class: 'badge link-state' });
    this.cells = {};
    const stat = (key, label) => {
      this.cells[key] = h('dd', { class: `link-${key} mono` });
      return h('div', {}, h('dt', { text: label }), this.cells[key]);
    };
    this.el = h(
      'div',
      { class: 'link', 'data-link': link.name },
      h('div', { class: 'link-head' }, h('span', { class: 'link-name', text: link.name }), this.state),
      h(
        'dl',
        { class: 'link-stats' },
        stat('rtt', 'RTT'),
        stat('lost', 'Lost'),
        stat('retrans', 'Retrans'),
        stat('bw', 'Bandwidth'),
        stat('drift', 'Drift'),
      ),
    );
    this.update(link);
  }

  /** Figures from GET /flows. */
  update(link) {
    if (link.connected) this.eventState = 'connected';
    else if (this.eventState === 'connected' || this.eventState === null) this.eventState = 'not connected';
    this.showState();
    setText(this.cells.rtt, fmtNum(link.rtt_ms, 1, 'ms'));
    setText(this.cells.lost, fmtNum(link.lost));
    setText(this.cells.retrans, fmtNum(link.retransmits));
    setText(this.cells.bw, fmtNum(link.bandwidth_mbps, 2, 'Mb/s'));
    setText(this.cells.drift, fmtNum(link.drift_ppm, 1, 'ppm'));
  }

  /** State from an SSE `link` event (connected, waiting, refused). */
  event(state) {
    this.eventState = state;
    this.showState();
  }

  showState() {
    const s = this.eventState || 'not connected';
    setText(this.state, s);
    this.state.dataset.tone = s === 'connected' ? 'ok' : s === 'refused' ? 'bad' : 'warn';
  }
}

/** A flow card: `section.flow[data-flow]`. */
export class FlowCard {
  constructor(flow, actions) {
    this.name = flow.name;
    this.shape = shapeOf(flow);
    this.hasLoudness = (flow.processors || []).includes('loudness');
    this.levelsAt = -Infinity; // performance.now() of the last SSE levels event
    this.loudnessData = null;
    this.loudnessDirty = true;

    const titleId = nextId('flow');
    this.stateEl = h('span', { class: 'badge flow-state' });
    this.silenceEl = h('span', { class: 'badge flow-silence' });
    this.meters = new MeterBank(flow.name);

    const lcell = (cls, label) => h('div', { class: 'lcell' }, h('span', { class: 'lcell-label', text: label }), h('span', { class: `${cls} mono`, text: '-inf' }));
    this.loudnessEl = h(
      'div',
      { class: 'loudness', role: 'group', 'aria-label': `${flow.name} loudness` },
      lcell('loudness-m', 'Momentary'),
      lcell('loudness-s', 'Short-term'),
      lcell('loudness-i', 'Integrated'),
      lcell('loudness-tp', 'True peak'),
    );
    this.loudnessEl.hidden = true;

    this.rt = {};
    const rtCell = (key, label) => {
      this.rt[key] = h('dd', { class: `rt-${key} mono`, text: '–' });
      return h('div', {}, h('dt', { text: label }), this.rt[key]);
    };
    const realtime = h(
      'dl',
      { class: 'realtime' },
      rtCell('load', 'Load'),
      rtCell('late', 'Late periods'),
      rtCell('misses', 'Deadline misses'),
      rtCell('xruns', 'Xruns'),
    );

    this.inputs = new Map((flow.inputs || []).map((i) => [i.name, new InputControl(flow.name, i, actions)]));
    this.links = new Map((flow.links || []).map((l) => [l.name, new LinkView(l)]));

    const plural = (n, one) => `${n} ${one}${n === 1 ? '' : 's'}`;
    const outputs = (flow.outputs || []).map((o) => `${o.name} (${o.kind})`).join(', ');
    this.el = h(
      'section',
      { class: 'flow panel', 'data-flow': flow.name, 'aria-labelledby': titleId },
      h(
        'header',
        { class: 'flow-head' },
        h('h3', { id: titleId, class: 'flow-name', text: flow.name }),
        this.stateEl,
        this.silenceEl,
        h(
          'div',
          { class: 'flow-actions' },
          h('button', { type: 'button', class: 'btn flow-start', text: 'Start', 'aria-label': `Start ${flow.name}`, onclick: () => actions.start(flow.name) }),
          h('button', { type: 'button', class: 'btn flow-stop', text: 'Stop', 'aria-label': `Stop ${flow.name}`, onclick: () => actions.stop(flow.name) }),
        ),
      ),
      this.meters.el,
      this.loudnessEl,
      realtime,
      this.inputs.size ? h('h4', { class: 'sub', text: plural(this.inputs.size, 'input') }) : null,
      this.inputs.size ? h('div', { class: 'inputs' }, [...this.inputs.values()].map((c) => c.el)) : null,
      this.links.size ? h('h4', { class: 'sub', text: 'SRT links' }) : null,
      this.links.size ? h('div', { class: 'links' }, [...this.links.values()].map((l) => l.el)) : null,
      outputs ? h('p', { class: 'flow-outputs' }, 'Outputs: ', outputs) : null,
    );
    this.update(flow);
  }

  /** True when `flow` has other inputs, links or processors than this card. */
  needsRebuild(flow) {
    return shapeOf(flow) !== this.shape;
  }

  /** Everything from GET /flows. */
  update(flow) {
    this.setState(flow.state);
    setText(this.silenceEl, flow.silent ? 'silent' : 'audio');
    this.silenceEl.dataset.tone = flow.silent ? 'bad' : 'ok';

    const rt = flow.realtime;
    setText(this.rt.load, rt ? fmtNum(rt.load * 100, 1, '%') : '–');
    this.rt.load.dataset.tone = rt && rt.load >= 0.8 ? 'bad' : rt && rt.load >= 0.5 ? 'warn' : '';
    setText(this.rt.late, rt ? fmtNum(rt.late_periods) : '–');
    setText(this.rt.misses, rt ? fmtNum(rt.deadline_misses) : '–');
    setText(this.rt.xruns, rt ? fmtNum(rt.xruns) : '–');

    for (const input of flow.inputs || []) this.inputs.get(input.name)?.update(input);
    for (const link of flow.links || []) this.links.get(link.name)?.update(link);

    const m = flow.meters;
    if (m && performance.now() - this.levelsAt > LIVE_LEVELS_MS) {
      const blank = (levels) => (Array.isArray(levels) ? levels.map(() => null) : []);
      if (this.running) {
        this.meters.set(m.peak_dbfs, m.rms_dbfs);
        this.setLoudness(m.loudness ?? null);
      } else {
        this.meters.set(blank(m.peak_dbfs), blank(m.rms_dbfs));
      }
    }
  }

  /**
   * The state text (SSE `flow_state` or GET /flows). A flow that is not
   * running shows empty meters (GET /flows keeps its last levels).
   */
  setState(state) {
    this.running = state === 'running';
    if (!this.running) this.meters.clear();
    setText(this.stateEl, state);
    this.stateEl.dataset.tone = state === 'running' ? 'ok' : state === 'stopped' ? 'idle' : state.startsWith('failed') ? 'bad' : 'warn';
  }

  /** An SSE `levels` event. */
  levels(data) {
    this.levelsAt = performance.now();
    this.meters.set(data.peak_dbfs, data.rms_dbfs);
    this.setLoudness(data.loudness ?? null);
  }

  /**
   * New loudness figures; null hides them. A flow with a loudness meter keeps
   * its last figures through a null (ctld sends one now and then between
   * two measurements), so the block does not flicker.
   */
  setLoudness(loudness) {
    if (loudness === null && this.hasLoudness && this.loudnessData) return;
    this.loudnessData = loudness;
    this.loudnessDirty = true;
  }

  /** Draws meters and loudness (called at ~10 Hz). */
  render(now) {
    this.meters.render(now);
    if (!this.loudnessDirty) return;
    this.loudnessDirty = false;
    const l = this.loudnessData;
    this.loudnessEl.hidden = !l;
    if (!l) return;
    const q = (cls) => this.loudnessEl.querySelector(`.${cls}`);
    setText(q('loudness-m'), fmtLufs(l.momentary_lufs));
    setText(q('loudness-s'), fmtLufs(l.short_term_lufs));
    setText(q('loudness-i'), fmtLufs(l.integrated_lufs));
    const tp = q('loudness-tp');
    tp.parentElement.hidden = !('true_peak_dbtp' in l);
    const tpText = fmtLevel(l.true_peak_dbtp);
    setText(tp, tpText === '-inf' ? tpText : `${tpText} dBTP`);
    tp.dataset.tone = typeof l.true_peak_dbtp === 'number' && l.true_peak_dbtp > -1 ? 'bad' : '';
  }

  /** An SSE `input` event. */
  input(data) {
    this.inputs.get(data.input)?.update(data);
  }

  /** An SSE `input_switched` event. */
  inputSwitched(data) {
    this.inputs.get(data.input)?.switched(data.source);
  }

  /** An SSE `link` event. */
  link(data) {
    this.links.get(data.link)?.event(data.state);
  }
}
