// Airlift console: the entry module. Signs in and out, loads the node's state
// from the JSON API, keeps it current from the Server-Sent Events stream and
// periodic reads, and wires the controls to the API (docs/http-api.md).

import { api, seg, setCsrf, setUnauthorizedHandler } from './api.js';
import { FlowCard } from './flows.js';
import { renderHealth, renderArchive, renderPulls, AlarmLog } from './panels.js';
import { setText, whileBusy } from './dom.js';

/** How often health, archive and flow figures are read again (ms). */
const REFRESH_MS = 5000;
/** Meter redraw interval (ms): ~10 Hz. */
const RENDER_MS = 100;
/** Wait before reopening an event stream the browser gave up on (ms). */
const REOPEN_MS = 3000;

const $ = (id) => document.getElementById(id);
const ui = {
  loginView: $('login-view'),
  mainView: $('main-view'),
  loginForm: $('login'),
  token: $('token'),
  loginSubmit: $('login-submit'),
  loginError: $('login-error'),
  logout: $('logout'),
  nodeName: $('node-name'),
  conn: $('conn'),
  healthBadge: $('health-badge'),
  status: $('status-line'),
  flows: $('flows'),
  flowsTitle: $('flows-title'),
  flowsEmpty: $('flows-empty'),
  health: $('health'),
  archive: $('archive'),
  pullForm: $('pull-form'),
  pullUrl: $('pull-url'),
  pullName: $('pull-name'),
  pullSubmit: $('pull-submit'),
  pullError: $('pull-error'),
  pulls: $('pulls'),
  pullsEmpty: document.querySelector('.pulls-empty'),
};

const alarms = new AlarmLog($('alarms'), document.querySelector('.alarms-empty'));
/** Flow cards by flow name. */
const cards = new Map();

/**
 * The signed-in session: `gen` changes at each sign-in and sign-out so that
 * answers to requests of an ended session are dropped.
 */
const session = { active: false, gen: 0, events: null, timers: [], reopen: null };

// ---------------------------------------------------------------- status line

let statusTimer = null;

/** Shows a transient message in #status-line (`kind`: error or info). */
function showStatus(message, kind = 'error') {
  setText(ui.status, message);
  ui.status.dataset.kind = kind;
  clearTimeout(statusTimer);
  statusTimer = setTimeout(() => setText(ui.status, ''), kind === 'error' ? 15000 : 6000);
}

/** Shows a failed request; a 401 is not shown (the login page is). */
function report(err, what) {
  if (err && err.status === 401) return;
  const message = err instanceof Error ? err.message : String(err);
  showStatus(what ? `${what}: ${message}` : message);
}

/** The event-stream indicator in the header. */
function setConn(state) {
  const text = { live: 'live', reconnecting: 'reconnecting…', offline: 'offline' }[state];
  setText(ui.conn, text);
  ui.conn.dataset.tone = state === 'live' ? 'ok' : state === 'offline' ? 'bad' : 'warn';
  ui.conn.hidden = false;
}

// -------------------------------------------------------------------- loading

/**
 * A reader of one API route: `load()` reads and applies it (one request at a
 * time; a call during a request runs once more after it), `load.soon(ms)`
 * does the same after a quiet time, coalescing bursts of events.
 */
function loader(what, path, apply) {
  let running = false;
  let again = false;
  let timer = null;
  const load = async () => {
    if (!session.active) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    const gen = session.gen;
    try {
      const data = await api('GET', path);
      if (gen === session.gen) apply(data);
    } catch (err) {
      if (gen === session.gen) report(err, what);
    } finally {
      running = false;
      if (again) {
        again = false;
        load();
      }
    }
  };
  load.soon = (ms = 300) => {
    clearTimeout(timer);
    timer = setTimeout(load, ms);
  };
  return load;
}

const loadFlows = loader('Reading flows', '/flows', applyFlows);
const loadPulls = loader('Reading pull jobs', '/pulls', (pulls) => renderPulls(ui.pulls, ui.pullsEmpty, pulls, stopPull));
const loadArchive = loader('Reading archive', '/archive', (a) => renderArchive(ui.archive, a));
const loadAlarms = loader('Reading alarms', '/alarms', (list) => alarms.set(list));
const loadHealth = loader('Reading health', '/health', (hl) => renderHealth(ui.health, ui.healthBadge, hl));

function loadAll() {
  loadFlows();
  loadPulls();
  loadArchive();
  loadAlarms();
  loadHealth();
}

/** GET /flows: updates cards in place, adds, rebuilds, reorders and removes them. */
function applyFlows(flows) {
  const list = Array.isArray(flows) ? flows : [];
  const names = new Set();
  list.forEach((flow, i) => {
    names.add(flow.name);
    let card = cards.get(flow.name);
    if (card && !card.needsRebuild(flow)) {
      card.update(flow);
    } else {
      const fresh = new FlowCard(flow, actions);
      if (card) card.el.replaceWith(fresh.el);
      card = fresh;
      cards.set(flow.name, card);
    }
    if (ui.flows.children[i] !== card.el) ui.flows.insertBefore(card.el, ui.flows.children[i] || null);
  });
  for (const [name, card] of cards) {
    if (!names.has(name)) {
      card.el.remove();
      cards.delete(name);
    }
  }
  ui.flowsEmpty.hidden = list.length > 0;
}

// -------------------------------------------------------------------- actions

/** Runs a change; true when done, false (error shown) when refused. */
async function change(what, method, path, body) {
  try {
    await api(method, path, body);
    return true;
  } catch (err) {
    report(err, what);
    return false;
  }
}

const inputPath = (flow, input, what) => `/flows/${seg(flow)}/inputs/${seg(input)}/${what}`;

/** What the flow cards call. */
const actions = {
  async start(flow) {
    if (await change(`Starting ${flow}`, 'POST', `/flows/${seg(flow)}/start`)) {
      showStatus(`${flow}: start requested`, 'info');
      loadFlows.soon();
    }
  },
  async stop(flow) {
    if (await change(`Stopping ${flow}`, 'POST', `/flows/${seg(flow)}/stop`)) {
      showStatus(`${flow}: stop requested`, 'info');
      loadFlows.soon();
    }
  },
  setGain: (flow, input, db) => change(`Gain of ${input}`, 'PUT', inputPath(flow, input, 'gain'), { db }),
  setMute: (flow, input, muted) => change(`Mute of ${input}`, 'PUT', inputPath(flow, input, 'mute'), { muted }),
  setPan: (flow, input, pan) => change(`Pan of ${input}`, 'PUT', inputPath(flow, input, 'pan'), { pan }),
  setSource: (flow, input, source) => change(`Source of ${input}`, 'PUT', inputPath(flow, input, 'source'), { source }),
};

/** The Stop button of a pull job. */
function stopPull(name, button) {
  return whileBusy(button, async () => {
    setText(ui.pullError, '');
    try {
      await api('DELETE', `/pulls/${seg(name)}`);
      showStatus(`Pull ${name} stopped`, 'info');
    } catch (err) {
      if (err.status !== 401) setText(ui.pullError, err.message);
    }
    loadPulls();
  });
}

ui.pullForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const url = ui.pullUrl.value.trim();
  const name = ui.pullName.value.trim();
  if (!url) {
    setText(ui.pullError, 'Enter the srt:// URL to pull from.');
    ui.pullUrl.focus();
    return;
  }
  await whileBusy(ui.pullSubmit, async () => {
    setText(ui.pullError, '');
    try {
      const answer = await api('POST', '/pulls', name ? { url, name } : { url });
      ui.pullForm.reset();
      showStatus(`Pull ${answer && answer.name ? answer.name : ''} started`, 'info');
    } catch (err) {
      if (err.status !== 401) setText(ui.pullError, err.message);
    }
    loadPulls();
  });
});

// --------------------------------------------------------------------- events

/** Adds a listener for one named SSE event with JSON data. */
function onEvent(es, name, fn) {
  es.addEventListener(name, (ev) => {
    let data;
    try {
      data = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (data && typeof data === 'object') fn(data);
  });
}

/** The card of an event's flow; an unknown flow means the list is stale. */
function cardOf(data) {
  const card = cards.get(data.flow);
  if (!card) loadFlows.soon(1000);
  return card;
}

/**
 * After the browser gave up on the stream: checks the session (a 401 leads to
 * the login page) and opens a new stream, retrying while the node is away.
 */
function reopenEvents() {
  clearTimeout(session.reopen);
  const gen = session.gen;
  session.reopen = setTimeout(async () => {
    try {
      await api('GET', '/session');
      if (gen === session.gen) openEvents();
    } catch (err) {
      if (gen === session.gen && err.status !== 401) reopenEvents();
    }
  }, REOPEN_MS);
}

/** Opens GET /events. Each (re)connection reads the whole state again. */
function openEvents() {
  const es = new EventSource('/api/v1/events');
  session.events = es;
  es.addEventListener('open', () => {
    setConn('live');
    loadAll();
  });
  es.addEventListener('error', () => {
    if (es.readyState !== EventSource.CLOSED) {
      setConn('reconnecting'); // the browser retries by itself
      return;
    }
    // Refused (e.g. the session ended): the browser gives up by itself.
    setConn('offline');
    es.close();
    session.events = null;
    reopenEvents();
  });

  onEvent(es, 'levels', (d) => cardOf(d)?.levels(d));
  onEvent(es, 'flow_state', (d) => {
    cardOf(d)?.setState(String(d.state));
    loadFlows.soon();
  });
  onEvent(es, 'input', (d) => cardOf(d)?.input(d));
  onEvent(es, 'input_switched', (d) => cardOf(d)?.inputSwitched(d));
  onEvent(es, 'link', (d) => {
    cardOf(d)?.link(d);
    loadFlows.soon(1000);
  });
  onEvent(es, 'segment_closed', () => loadArchive.soon(500));
  onEvent(es, 'segment_uploaded', () => loadArchive.soon(500));
  onEvent(es, 'alarm', (d) => {
    alarms.add(d);
    loadFlows.soon(500); // e.g. silence: the flow's silent flag changed
    loadHealth.soon(500);
  });
  onEvent(es, 'pulls', () => loadPulls.soon(100));
  onEvent(es, 'engine', (d) => {
    if (d.connected === false) showStatus('The engine is not connected.');
    loadFlows.soon();
    loadHealth.soon();
  });
  onEvent(es, 'changed', () => loadAll());
}

// -------------------------------------------------------------------- session

/** Shows the main view for a session (`GET /session` answer). */
function enterMain(s) {
  setCsrf(s.csrf);
  session.active = true;
  session.gen += 1;
  setText(ui.nodeName, s.node || '');
  ui.loginView.hidden = true;
  ui.mainView.hidden = false;
  ui.logout.hidden = false;
  setConn('reconnecting');
  openEvents();
  loadAll();
  session.timers.push(
    setInterval(() => {
      loadHealth();
      loadArchive();
      loadFlows();
    }, REFRESH_MS),
    setInterval(() => {
      if (document.hidden) return;
      const now = performance.now();
      for (const card of cards.values()) card.render(now);
    }, RENDER_MS),
  );
}

/** Shows the login page; ends everything of the session (`message` in #login-error). */
function showLogin(message = '') {
  if (session.active) {
    session.active = false;
    session.gen += 1;
    if (session.events) session.events.close();
    session.events = null;
    clearTimeout(session.reopen);
    session.timers.forEach(clearInterval);
    session.timers = [];
    cards.clear();
    ui.flows.replaceChildren();
    ui.pulls.replaceChildren();
    alarms.clear();
  }
  setCsrf('');
  setText(ui.nodeName, '');
  ui.conn.hidden = true;
  ui.healthBadge.hidden = true;
  ui.logout.hidden = true;
  ui.mainView.hidden = true;
  ui.loginView.hidden = false;
  setText(ui.loginError, message);
  ui.token.focus();
}

setUnauthorizedHandler(() => {
  if (session.active) showLogin('The session has ended; sign in again.');
});

ui.loginForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const token = ui.token.value.trim();
  if (!token) {
    setText(ui.loginError, 'Enter the API token.');
    return;
  }
  await whileBusy(ui.loginSubmit, async () => {
    setText(ui.loginError, '');
    try {
      await api('POST', '/login', { token });
      const s = await api('GET', '/session');
      ui.token.value = '';
      enterMain(s);
      ui.flowsTitle.focus(); // the sign-in form is gone: start at the top of the console
    } catch (err) {
      setText(ui.loginError, err.message);
    }
  });
});

ui.logout.addEventListener('click', () => whileBusy(ui.logout, async () => {
  try {
    await api('POST', '/logout');
    showLogin();
  } catch (err) {
    if (err.status === 401) showLogin();
    else report(err, 'Logging out');
  }
}));

/** Start: the main view with a valid session, the login page without. */
async function boot() {
  try {
    enterMain(await api('GET', '/session'));
  } catch (err) {
    if (err.status === 401) {
      showLogin();
    } else {
      report(err, 'Reading the session');
      setTimeout(boot, REOPEN_MS);
    }
  }
}

boot();
