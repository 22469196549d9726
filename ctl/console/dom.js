// Airlift console: small DOM and formatting helpers shared by the other modules.

/**
 * Creates an element. `attrs`: `class`, `text` (textContent), `on<event>`
 * (listener), anything else becomes an attribute (`true` → empty attribute,
 * `null`/`false`/`undefined` → left out). Children may be nodes, strings or
 * (nested) arrays of them; null children are skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  el.append(...children.flat(Infinity).filter((c) => c != null));
  return el;
}

/** Sets textContent only when it changed (keeps screen readers and layout calm). */
export function setText(el, text) {
  const s = String(text);
  if (el.textContent !== s) el.textContent = s;
}

/** Sets an attribute only when it changed. */
export function setAttr(el, name, value) {
  const s = String(value);
  if (el.getAttribute(name) !== s) el.setAttribute(name, s);
}

/**
 * Runs `task` unless `el` is still busy with the previous one, marking it
 * aria-busy meanwhile. Unlike `disabled`, this keeps the keyboard focus on
 * the control. Resolves to the task's result (undefined when skipped).
 */
export async function whileBusy(el, task) {
  if (el.getAttribute('aria-busy') === 'true') return undefined;
  el.setAttribute('aria-busy', 'true');
  try {
    return await task();
  } finally {
    el.removeAttribute('aria-busy');
  }
}

/** A level (dBFS/LUFS, `null` = −∞) as text with one decimal, or `-inf`. */
export function fmtLevel(v) {
  return typeof v === 'number' && Number.isFinite(v) ? v.toFixed(1) : '-inf';
}

/** A byte count with a decimal unit (kB, MB, GB, TB). */
export function fmtBytes(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '–';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i += 1;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

/** A duration in seconds as `3 d 04:05:06` / `04:05:06`. */
export function fmtDuration(seconds) {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds)) return '–';
  const s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400);
  const hms = [Math.floor(s / 3600) % 24, Math.floor(s / 60) % 60, s % 60]
    .map((x) => String(x).padStart(2, '0'))
    .join(':');
  return d > 0 ? `${d} d ${hms}` : hms;
}

/** An age in seconds: `42 s`, `5 min`, or as fmtDuration beyond an hour. */
export function fmtAge(seconds) {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds)) return '–';
  if (seconds < 60) return `${Math.max(0, Math.round(seconds))} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  return fmtDuration(seconds);
}

/** A Unix time in ms as local time, with the date when it is not today. */
export function fmtTime(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return '–';
  const t = new Date(ms);
  const time = t.toLocaleTimeString([], { hour12: false });
  return t.toDateString() === new Date().toDateString()
    ? time
    : `${t.toLocaleDateString()} ${time}`;
}

/** A number with fixed decimals, or `–` when absent. */
export function fmtNum(v, decimals = 0, unit = '') {
  if (typeof v !== 'number' || !Number.isFinite(v)) return '–';
  return unit ? `${v.toFixed(decimals)} ${unit}` : v.toFixed(decimals);
}
