// Airlift console: per-channel peak/RMS bar meters with peak hold, dBFS scale
// −60…0. Levels are stored as they arrive (SSE `levels`, up to 10/s per flow)
// and drawn by render(), which the app calls at ~10 Hz.

import { h, setAttr, setText, fmtLevel } from './dom.js';

/** Bottom of the scale (dBFS); anything lower, and −∞ (null), is an empty bar. */
const FLOOR_DB = -60;
/** How long the peak hold stays before it falls (ms). */
const HOLD_MS = 2000;
/** How fast the peak hold falls after that (dB per second). */
const FALL_DB_PER_S = 24;
/** Scale marks under the bars; the minor ones are left out on narrow screens. */
const TICKS = [-60, -48, -36, -24, -18, -12, -6, 0];
const MINOR_TICKS = new Set([-18, -6]);

/** dBFS → fraction of the bar (0…1); null (−∞) → 0. */
function dbToFraction(db) {
  if (typeof db !== 'number' || !Number.isFinite(db)) return 0;
  return Math.min(1, Math.max(0, (db - FLOOR_DB) / -FLOOR_DB));
}

/** Percent of the bar left unlit, for clip-path. */
const unlit = (fraction) => `inset(0 ${(100 - fraction * 100).toFixed(2)}% 0 0)`;

/** Channel names: L/R for stereo, 1…n otherwise. */
function channelName(i, count) {
  if (count === 2) return i === 0 ? 'L' : 'R';
  return String(i + 1);
}

/** One channel: a `.meter` row with its bars, hold mark and numbers. */
class ChannelMeter {
  constructor(flow, index, count) {
    const name = channelName(index, count);
    this.peakBar = h('div', { class: 'meter-peak' });
    this.rmsBar = h('div', { class: 'meter-rms' });
    this.hold = h('div', { class: 'peak-hold' });
    this.peakText = h('span', { class: 'meter-val', text: '-inf' });
    this.rmsText = h('span', { class: 'meter-val meter-val-rms', text: '-inf' });
    this.el = h(
      'div',
      {
        class: 'meter',
        role: 'meter',
        'aria-label': `${flow} channel ${name} peak level`,
        'aria-valuemin': FLOOR_DB,
        'aria-valuemax': 0,
        'aria-valuenow': FLOOR_DB,
        'aria-valuetext': 'peak -inf dBFS, RMS -inf dBFS',
        'data-channel': index,
        'data-peak': '-inf',
        'data-rms': '-inf',
      },
      h('span', { class: 'meter-ch', 'aria-hidden': 'true', text: name }),
      h('div', { class: 'meter-track' }, this.peakBar, this.rmsBar, this.hold),
      this.peakText,
      this.rmsText,
    );
    this.holdDb = null; // current hold level (dBFS), null = nothing held
    this.holdAt = 0; // when the hold was last raised (ms, performance.now)
    this.drawn = { peak: undefined, rms: undefined, hold: undefined };
  }

  /** Draws the levels; moves the hold mark (raise at once, fall after HOLD_MS). */
  render(peak, rms, now, dt) {
    const p = typeof peak === 'number' && Number.isFinite(peak) ? peak : null;
    if (p !== null && (this.holdDb === null || p >= this.holdDb)) {
      this.holdDb = p;
      this.holdAt = now;
    } else if (this.holdDb !== null && now - this.holdAt > HOLD_MS) {
      const fallen = this.holdDb - (FALL_DB_PER_S * dt) / 1000;
      this.holdDb = fallen < FLOOR_DB ? null : Math.max(fallen, p ?? -Infinity);
    }

    const peakText = fmtLevel(p);
    const rmsText = fmtLevel(rms);
    if (peakText !== this.drawn.peak) {
      this.drawn.peak = peakText;
      this.peakBar.style.clipPath = unlit(dbToFraction(p));
      setText(this.peakText, peakText);
      setAttr(this.el, 'data-peak', peakText);
      setAttr(this.el, 'aria-valuenow', p === null ? FLOOR_DB : Math.max(FLOOR_DB, Math.min(0, p)).toFixed(1));
    }
    if (rmsText !== this.drawn.rms) {
      this.drawn.rms = rmsText;
      this.rmsBar.style.clipPath = unlit(dbToFraction(rms));
      setText(this.rmsText, rmsText);
      setAttr(this.el, 'data-rms', rmsText);
    }
    setAttr(this.el, 'aria-valuetext', `peak ${peakText} dBFS, RMS ${rmsText} dBFS`);

    const holdFraction = this.holdDb === null ? 0 : dbToFraction(this.holdDb);
    if (holdFraction !== this.drawn.hold) {
      this.drawn.hold = holdFraction;
      this.hold.hidden = holdFraction === 0;
      this.hold.style.left = `${(holdFraction * 100).toFixed(2)}%`;
      this.hold.classList.toggle('over', this.holdDb !== null && this.holdDb > -1);
    }
  }
}

/** All channel meters of one flow, with a scale; the element is `.meters`. */
export class MeterBank {
  constructor(flow) {
    this.flow = flow;
    this.el = h('div', { class: 'meters' });
    this.channels = [];
    this.peak = [];
    this.rms = [];
    this.lastRender = 0;
    this.build(0);
  }

  /** Rebuilds the rows for `count` channels (when the channel count changes). */
  build(count) {
    this.channels = Array.from({ length: count }, (_, i) => new ChannelMeter(this.flow, i, count));
    const scale = count === 0 ? h('p', { class: 'empty', text: 'No levels yet.' }) : h(
      'div',
      { class: 'meter-scale', 'aria-hidden': 'true' },
      h('span'),
      h('div', { class: 'scale-track' }, TICKS.map((db) => {
        const tick = h('span', { class: MINOR_TICKS.has(db) ? 'tick minor' : 'tick', text: String(db) });
        tick.style.left = `${dbToFraction(db) * 100}%`;
        return tick;
      })),
      h('span', { class: 'meter-val', text: 'peak' }),
      h('span', { class: 'meter-val meter-val-rms', text: 'rms' }),
    );
    this.el.replaceChildren(...this.channels.map((c) => c.el), scale);
  }

  /** Stores new levels (arrays of dBFS, null = −∞); drawn on the next render. */
  set(peak, rms) {
    this.peak = Array.isArray(peak) ? peak : [];
    this.rms = Array.isArray(rms) ? rms : [];
    const count = Math.max(this.peak.length, this.rms.length);
    if (count !== this.channels.length) this.build(count);
  }

  /** Empty bars (−∞) on every channel, e.g. for a stopped flow. */
  clear() {
    this.set(this.channels.map(() => null), this.channels.map(() => null));
  }

  /** Draws the stored levels; `now` from performance.now(). */
  render(now) {
    const dt = this.lastRender ? now - this.lastRender : 0;
    this.lastRender = now;
    this.channels.forEach((c, i) => c.render(this.peak[i] ?? null, this.rms[i] ?? null, now, dt));
  }
}
