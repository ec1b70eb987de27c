// sockmon dashboard. Plain JavaScript, no build step: served as is from the
// binary. Every element is built with h() and textContent (never innerHTML),
// so user ids, reasons and room names from the node cannot inject markup.
'use strict';
(function () {
  // ---------------------------------------------------------------- config
  const meta = (n) => document.querySelector('meta[name="sockmon-' + n + '"]').content;
  const cfg = {
    prefix: meta('prefix'),
    csrf: meta('csrf'),
    sub: meta('sub'),
    role: meta('role'),
    version: meta('version'),
    interval: Number(meta('interval')) || 2000,
    expires: Number(meta('expires')) || 0,
  };
  const isAdmin = cfg.role === 'ADMIN';

  // ------------------------------------------------------------ DOM helper
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'value' || k === 'checked' || k === 'disabled' || k === 'selected') el[k] = v;
      else el.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  const $ = (sel, root) => (root || document).querySelector(sel);
  const pill = (status, text) => h('span', { class: 'pill', 'data-status': status }, text || status);
  // control marks an element that changes state: none is built for a VIEWER.
  const control = (el) => { el.setAttribute('data-control', ''); return el; };

  // ------------------------------------------------------------ formatting
  const nf = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });
  const nf2 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });
  function fmtNum(v) {
    if (v === undefined || v === null || isNaN(v)) return '–';
    const a = Math.abs(v);
    if (a >= 1e9) return nf.format(v / 1e9) + 'G';
    if (a >= 1e6) return nf.format(v / 1e6) + 'M';
    if (a >= 1e4) return nf.format(v / 1e3) + 'k';
    return a < 10 && a !== Math.floor(a) ? nf2.format(v) : nf.format(v);
  }
  function fmtBytes(v) {
    if (!v && v !== 0) return '–';
    const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (Math.abs(v) >= 1024 && i < u.length - 1) { v /= 1024; i++; }
    return nf.format(v) + ' ' + u[i];
  }
  function fmtMs(v) {
    if (v === undefined || v === null || isNaN(v)) return '–';
    if (v >= 1000) return nf2.format(v / 1000) + ' s';
    if (v >= 10) return nf.format(v) + ' ms';
    return nf2.format(v) + ' ms';
  }
  const fmtPct = (v) => (v === undefined || v === null || isNaN(v) ? '–' : nf2.format(v * 100) + '%');
  function fmtDur(ms) {
    if (ms === undefined || ms === null || ms < 0) return '–';
    let s = Math.floor(ms / 1000);
    const d = Math.floor(s / 86400); s -= d * 86400;
    const hh = Math.floor(s / 3600); s -= hh * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    if (d) return d + 'd' + (hh ? ' ' + hh + 'h' : '');
    if (hh) return hh + 'h' + (m ? ' ' + m + 'm' : '');
    if (m) return m + 'm' + (s ? ' ' + s + 's' : '');
    return s + 's';
  }
  const isZeroTime = (t) => !t || t.startsWith('0001-');
  function fmtTime(t) {
    if (isZeroTime(t)) return '–';
    const d = new Date(t);
    const today = new Date().toDateString() === d.toDateString();
    return today ? d.toLocaleTimeString([], { hour12: false }) : d.toLocaleString([], { hour12: false });
  }
  const fmtAgo = (t) => (isZeroTime(t) ? '–' : fmtDur(Date.now() - Date.parse(t)) + ' ago');
  const fmtIn = (t) => {
    if (isZeroTime(t)) return '–';
    const ms = Date.parse(t) - Date.now();
    return ms <= 0 ? 'now' : 'in ' + fmtDur(ms);
  };

  // ------------------------------------------------------------------- API
  class APIError extends Error {
    constructor(status, code, message, field) { super(message); this.status = status; this.code = code; this.field = field; }
  }
  async function api(name, data) {
    const resp = await fetch(cfg.prefix + '/api/action', {
      method: 'POST',
      credentials: 'same-origin',
      cache: 'no-store',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': cfg.csrf },
      body: JSON.stringify({ action: name, data: data || {} }),
    });
    let body = null;
    try { body = await resp.json(); } catch (e) { /* not JSON */ }
    if (resp.status === 401) { location.reload(); throw new APIError(401, 'unauthorized', 'signed out'); }
    if (!resp.ok || !body || !body.success) {
      const e = (body && body.error) || {};
      throw new APIError(resp.status, e.code || 'error', e.message || ('HTTP ' + resp.status), e.field);
    }
    return body.data;
  }

  function toast(msg, error) {
    const t = h('div', { class: 'toast' + (error ? ' error' : ''), role: error ? 'alert' : 'status' }, msg);
    $('#toasts').append(t);
    setTimeout(() => t.remove(), error ? 8000 : 4000);
  }

  // --------------------------------------------------------------- dialogs
  // formDialog shows a modal form. fields: [{id, label, type, value,
  // options, required, placeholder, help, min, step}]. submit(values) runs
  // on confirm; an error it throws is shown in the dialog, which stays open
  // (the field it names outlined). Resolves with submit's result, or null
  // when cancelled.
  function formDialog({ title, text, fields, okText, danger, submit, validate }) {
    return new Promise((resolve) => {
      const inputs = {};
      const err = h('p', { class: 'form-error hidden', id: 'dialog-error', role: 'alert' });
      const grid = h('div', { class: 'dialog-fields' });
      const body = h('div', { class: 'dialog-body' }, h('h2', { text: title }), text ? h('p', { text }) : null, err, grid);
      for (const f of fields || []) {
        let input;
        const id = f.id;
        if (f.type === 'select') {
          input = h('select', { id }, (f.options || []).map((o) => h('option', { value: o.value, selected: o.value === f.value }, o.label || o.value)));
        } else if (f.type === 'checkbox') {
          input = h('input', { id, type: 'checkbox', checked: !!f.value });
          grid.append(h('label', { class: 'check' + (f.half ? ' half' : '') }, input, f.label));
          inputs[f.name || id] = input;
          continue;
        } else if (f.type === 'textarea') {
          input = h('textarea', { id, placeholder: f.placeholder || '', rows: 3 });
          input.value = f.value === undefined ? '' : f.value;
        } else {
          input = h('input', { id, type: f.type || 'text', placeholder: f.placeholder || '', autocomplete: 'off', spellcheck: 'false', min: f.min, step: f.step });
          input.value = f.value === undefined || f.value === null ? '' : f.value;
          if (f.readonly) input.readOnly = true;
        }
        if (f.required) input.required = true;
        inputs[f.name || id] = input;
        grid.append(h('div', { class: 'field' + (f.half ? ' half' : '') }, h('span', { text: f.label }), input, f.help ? h('small', { class: 'muted', text: f.help }) : null));
      }
      const ok = h('button', { class: 'btn ' + (danger ? 'solid-danger' : 'primary'), id: 'confirm-ok', type: 'submit' }, okText || 'OK');
      const cancel = h('button', { class: 'btn ghost', type: 'button', id: 'confirm-cancel' }, 'Cancel');
      const form = h('form', { method: 'dialog' }, body, h('div', { class: 'dialog-actions' }, cancel, ok));
      const dlg = h('dialog', { id: 'dialog' }, form);
      const values = () => {
        const v = {};
        for (const [k, el] of Object.entries(inputs)) v[k] = el.type === 'checkbox' ? el.checked : el.value;
        return v;
      };
      const refresh = () => { ok.disabled = validate ? !validate(values()) : false; };
      for (const el of Object.values(inputs)) { el.addEventListener('input', refresh); el.addEventListener('change', refresh); }
      refresh();
      let done = false;
      const finish = (r) => { if (done) return; done = true; dlg.close(); dlg.remove(); resolve(r); };
      cancel.addEventListener('click', () => finish(null));
      dlg.addEventListener('cancel', (e) => { e.preventDefault(); finish(null); });
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        if (ok.disabled) return;
        ok.disabled = true;
        for (const el of Object.values(inputs)) el.classList.remove('invalid');
        try {
          const r = submit ? await submit(values()) : values();
          finish(r === undefined ? true : r);
        } catch (ex) {
          err.textContent = ex.message;
          err.classList.remove('hidden');
          const name = ex.field && ex.field.replace(/^data\./, '');
          if (name && inputs[name]) inputs[name].classList.add('invalid');
          ok.disabled = false;
        }
      });
      document.body.append(dlg);
      dlg.showModal();
      const first = Object.values(inputs).find((el) => !el.readOnly);
      if (first) first.focus();
    });
  }

  // ---------------------------------------------------------------- charts
  const palette = ['#38bdf8', '#f59e0b', '#ef4444', '#22c55e', '#a78bfa', '#f472b6'];
  // makeChart draws a time series chart in el: series [{label, value(p)}]
  // read from history points; fmt formats the y axis. spanSec is the width
  // of the x axis, which ends at now: the chart moves with time even when
  // no point arrives.
  function makeChart(el, { series, fmt, height, spanSec }) {
    const state = { spanSec, plot: null, n: 0, first: 0 };
    // The x axis ends at now and starts a span earlier, or at the oldest
    // point when the node's history is shorter than the span.
    const xRange = () => {
      const now = Date.now() / 1000;
      const from = Math.max(now - state.spanSec, state.first ? state.first - 5 : now - 60);
      return [Math.min(from, now - 60), now];
    };
    const opts = () => ({
      width: Math.max(200, el.clientWidth),
      height: height || 220,
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
      scales: {
        x: { time: true, range: () => xRange() },
        y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] },
      },
      axes: [
        { stroke: '#8a9bb0', grid: { stroke: '#1c2733', width: 1 }, ticks: { stroke: '#243140', width: 1 }, space: 70 },
        { stroke: '#8a9bb0', grid: { stroke: '#1c2733', width: 1 }, ticks: { stroke: '#243140', width: 1 }, size: 80, values: (u, vals) => vals.map(fmt) },
      ],
      series: [{}].concat(series.map((s, i) => ({
        label: s.label, stroke: s.color || palette[i], width: 1.6, points: { show: false },
        fill: s.fill ? (s.color || palette[i]) + '22' : undefined,
        value: (u, v) => (v === null || v === undefined ? '–' : fmt(v)),
      }))),
    });
    const toData = (points) => {
      const xs = points.map((p) => Date.parse(p.timestamp) / 1000);
      return [xs].concat(series.map((s) => points.map((p) => s.value(p))));
    };
    state.set = (points) => {
      const data = toData(points);
      state.first = data[0].length ? data[0][0] : 0;
      state.n = points.length;
      el.dataset.points = String(points.length);
      if (!window.uPlot) return;
      if (!state.plot) {
        el.replaceChildren();
        state.plot = new window.uPlot(opts(), data, el);
      } else {
        state.plot.setData(data);
      }
    };
    state.tick = () => { if (state.plot) { const [min, max] = xRange(); state.plot.setScale('x', { min, max }); } };
    state.resize = () => { if (state.plot) state.plot.setSize({ width: Math.max(200, el.clientWidth), height: height || 220 }); };
    state.destroy = () => { if (state.plot) state.plot.destroy(); state.plot = null; };
    return state;
  }

  // mergePoints appends the points newer than the last one held and drops
  // those older than keepMs.
  function mergePoints(held, incoming, keepMs) {
    const last = held.length ? Date.parse(held[held.length - 1].timestamp) : 0;
    for (const p of incoming || []) if (Date.parse(p.timestamp) > last) held.push(p);
    const cut = Date.now() - keepMs;
    let i = 0;
    while (i < held.length && Date.parse(held[i].timestamp) < cut) i++;
    return i ? held.slice(i) : held;
  }

  // ---------------------------------------------------------- live status
  let last = null; // the last event: {time, version, status, points}
  let lastAt = 0;
  let current = null; // the mounted page
  const setLive = (state, text) => { const l = $('#live'); l.dataset.state = state; $('#live-text').textContent = text; };

  function connect() {
    const es = new EventSource(cfg.prefix + '/events');
    es.addEventListener('status', (e) => {
      let ev;
      try { ev = JSON.parse(e.data); } catch (x) { return; }
      if (!ev.status) return;
      last = ev;
      lastAt = Date.now();
      setLive('live', 'live · every ' + (cfg.interval / 1000) + ' s');
      renderChrome(ev);
      if (current && current.onStatus) current.onStatus(ev);
    });
    es.addEventListener('signedout', () => { es.close(); location.reload(); });
    es.onerror = () => {
      setLive('stale', 'reconnecting');
      // Without a session the stream is refused: the page shows the sign-in form.
      fetch(cfg.prefix + '/api/status', { credentials: 'same-origin', cache: 'no-store' }).then((r) => { if (r.status === 401) location.reload(); }, () => {});
    };
  }
  setInterval(() => {
    if (lastAt && Date.now() - lastAt > 3 * cfg.interval + 2000) setLive('stale', 'no update for ' + fmtDur(Date.now() - lastAt));
  }, 1000);

  function renderChrome(ev) {
    const st = ev.status.status;
    const p = $('#status-pill');
    p.dataset.status = st.status;
    p.textContent = st.status;
    p.title = (st.reasons || []).join(', ');
    const m = ev.status.maintenance;
    const b = $('#maintenance-banner');
    if (m && m.enabled) {
      b.className = 'banner';
      b.textContent = 'Maintenance mode' + (m.by ? ' set by ' + m.by : '') + (isZeroTime(m.since) ? '' : ' since ' + fmtTime(m.since)) +
        ': ' + (m.reason || 'no reason given') + '. New clients get 503; health and /readyz answer 503.' + (m.drain ? ' Connected clients are being drained (1012).' : '');
    } else if (st.draining) {
      b.className = 'banner draining';
      b.textContent = 'The node is draining: readiness is off and clients are being closed.';
    } else {
      b.className = 'banner hidden';
    }
    $('#version').textContent = 'sockmon ' + (ev.version || cfg.version);
  }

  // ----------------------------------------------------------------- pages
  const pages = {};
  const card = (label, id, sub) => h('div', { class: 'card' }, h('div', { class: 'label', text: label }), h('div', { class: 'value', id }), h('div', { class: 'sub', id: id + '-sub' }, sub || ''));
  const setText = (id, text) => { const el = document.getElementById(id); if (el) el.textContent = text; };
  const setValue = (id, value, unit) => {
    const el = document.getElementById(id);
    if (!el) return;
    el.replaceChildren(String(value), unit ? h('span', { class: 'unit', text: unit }) : '');
  };
  const memUsed = (p) => (p.available && p.rssBytes ? p.rssBytes : p.heapSysBytes);

  // Overview
  pages.overview = {
    title: 'Overview',
    mount(root) {
      this.points = [];
      const status = h('div', { class: 'card status-card' }, h('div', { class: 'label', text: 'Status' }), h('div', { class: 'value' }, h('span', { class: 'pill', id: 'ov-status' }, '…')), h('div', { class: 'reasons', id: 'ov-reasons' }));
      root.append(
        h('div', { class: 'page-head' }, h('h1', { text: 'Overview' }), h('span', { class: 'spacer' }), h('span', { class: 'muted', id: 'ov-updated' })),
        h('div', { class: 'cards' },
          status,
          card('Uptime', 'ov-uptime'),
          card('Connections', 'ov-connections'),
          card('Messages / s', 'ov-rate'),
          card('Error rate', 'ov-errors'),
          card('Latency p50 / p95 / p99', 'ov-latency'),
          h('div', { class: 'card' }, h('div', { class: 'label', text: 'Memory' }), h('div', { class: 'value', id: 'ov-memory' }), h('div', { class: 'sub', id: 'ov-memory-sub' }), h('div', { class: 'bar', id: 'ov-memory-bar' }, h('span'))),
          card('CPU', 'ov-cpu'),
        ),
        h('div', { class: 'grid2' },
          h('div', { class: 'panel' }, h('div', { class: 'panel-head' }, h('h2', { text: 'Connections, last 15 minutes' })), h('div', { class: 'chart mini', id: 'ov-chart-conns' })),
          h('div', { class: 'panel' }, h('div', { class: 'panel-head' }, h('h2', { text: 'Messages / s, last 15 minutes' })), h('div', { class: 'chart mini', id: 'ov-chart-rate' })),
        ),
        h('div', { class: 'grid3' },
          h('div', { class: 'panel' }, h('h2', { text: 'Rejected connections' }), h('div', { id: 'ov-rejected' })),
          h('div', { class: 'panel' }, h('div', { class: 'panel-head' }, h('h2', { text: 'Circuit breakers' }), h('span', { class: 'spacer' }), h('a', { href: '#breakers', text: 'details' })), h('div', { id: 'ov-breakers' })),
          h('div', { class: 'panel' }, h('div', { class: 'panel-head' }, h('h2', { text: 'Alerts' }), h('span', { class: 'spacer' }), h('a', { href: '#alerts', text: 'details' })), h('div', { id: 'ov-alerts' })),
        ),
      );
      this.charts = [
        makeChart($('#ov-chart-conns'), { spanSec: 900, height: 150, fmt: fmtNum, series: [
          { label: 'authenticated', value: (p) => p.authenticated, fill: true },
          { label: 'anonymous', value: (p) => p.anonymous, fill: true },
        ] }),
        makeChart($('#ov-chart-rate'), { spanSec: 900, height: 150, fmt: fmtNum, series: [
          { label: 'received', value: (p) => p.messagesReceivedPerSec, fill: true },
          { label: 'sent', value: (p) => p.messagesSentPerSec },
        ] }),
      ];
      api('get_metrics_history', { from: Date.now() - 15 * 60000 }).then((r) => {
        this.points = mergePoints(r.points || [], this.points, 15 * 60000);
        this.draw();
      }, (e) => toast('History: ' + e.message, true));
    },
    draw() { for (const c of this.charts) c.set(this.points); },
    onStatus(ev) {
      const s = ev.status;
      const st = s.status;
      const p = $('#ov-status');
      p.dataset.status = st.status;
      p.textContent = st.status;
      setText('ov-reasons', (st.reasons || []).length ? st.reasons.join(', ').replace(/_/g, ' ') : (st.ready ? 'accepting clients' : 'not accepting clients'));
      setValue('ov-uptime', fmtDur(st.uptimeMs));
      setText('ov-uptime-sub', 'version ' + (ev.version || cfg.version));
      const c = s.connections;
      setValue('ov-connections', fmtNum(c.total));
      setText('ov-connections-sub', fmtNum(c.authenticated) + ' authenticated · ' + fmtNum(c.anonymous) + ' anonymous · ' + c.rooms + ' rooms');
      const w = s.performance.windows[0];
      setValue('ov-rate', fmtNum(w.messagesReceivedPerSec));
      setText('ov-rate-sub', fmtNum(w.messagesReceivedPerSec * 60) + ' / min in · ' + fmtNum(w.messagesSentPerSec) + ' / s out');
      setValue('ov-errors', fmtPct(w.errorRate));
      setText('ov-errors-sub', fmtNum(w.errorsPerSec) + ' errors / s over 1 min');
      const l = w.latency;
      if (l.count) {
        // One unit for the three: µs under a millisecond, s over a second.
        const [div, unit] = l.p99Ms < 1 ? [0.001, 'µs'] : l.p99Ms >= 1000 ? [1000, 's'] : [1, 'ms'];
        const v = (ms) => (unit === 'ms' ? nf2 : nf).format(ms / div);
        setValue('ov-latency', v(l.p50Ms) + ' / ' + v(l.p95Ms) + ' / ' + v(l.p99Ms), unit);
      } else {
        setValue('ov-latency', '–');
      }
      setText('ov-latency-sub', l.count ? 'max ' + fmtMs(l.maxMs) + ' over ' + fmtNum(l.count) + ' messages (1 min)' : 'no message in the last minute');
      const pr = s.process;
      const used = memUsed(pr);
      setValue('ov-memory', fmtBytes(used));
      const lim = st.memoryLimitBytes;
      setText('ov-memory-sub', 'RSS ' + fmtBytes(pr.rssBytes) + ' · heap ' + fmtBytes(pr.heapInuseBytes) + ' · limit ' + (lim > 0 ? fmtBytes(lim) + ' (' + st.memoryLimitSource + ')' : 'none'));
      const bar = $('#ov-memory-bar');
      const frac = lim > 0 ? Math.min(1, used / lim) : 0;
      bar.className = 'bar' + (frac > 0.9 ? ' bad' : frac > 0.75 ? ' warn' : '') + (lim > 0 ? '' : ' hidden');
      bar.firstChild.style.width = (frac * 100).toFixed(1) + '%';
      setValue('ov-cpu', nf.format((pr.cpuFraction || 0) * 100), '%');
      setText('ov-cpu-sub', pr.numCpu + ' cores · load ' + [pr.load1, pr.load5, pr.load15].map((v) => nf2.format(v || 0)).join(' ') + ' · ' + pr.goroutines + ' goroutines');
      setText('ov-updated', 'updated ' + fmtTime(ev.time));

      const rej = Object.entries(s.performance.totals.rejectedByReason || {}).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
      $('#ov-rejected').replaceChildren(rej.length
        ? h('table', {}, h('tbody', {}, rej.map(([r, n]) => h('tr', {}, h('td', { text: r.replace(/_/g, ' ') }), h('td', { class: 'num', text: fmtNum(n) })))))
        : h('div', { class: 'empty', text: 'None since start (' + fmtNum(s.connections.accepted) + ' accepted).' }));
      const brs = Object.values(s.circuitBreakers || {});
      const open = brs.filter((b) => b.breaker.state !== 'closed');
      $('#ov-breakers').replaceChildren(!brs.length
        ? h('div', { class: 'empty', text: 'No upstream configured.' })
        : h('div', {}, h('p', { class: 'muted' }, open.length + ' of ' + brs.length + ' not closed'),
          h('table', {}, h('tbody', {}, brs.map((b) => h('tr', {}, h('td', { text: b.name }), h('td', {}, pill(b.breaker.state)), h('td', { class: 'num muted', text: b.breaker.failures + ' failures' })))))));
      const rules = s.alerts || [];
      const active = s.activeAlerts || [];
      const firing = active.filter((a) => a.state === 'firing');
      const pending = active.filter((a) => a.state === 'pending').length;
      $('#ov-alerts').replaceChildren(h('div', {},
        h('p', { class: 'muted', id: 'ov-alerts-sub' }, firing.length + ' firing · ' + pending + ' pending · ' + rules.filter((r) => r.enabled).length + ' of ' + rules.length + ' rules enabled'),
        firing.length
          ? h('table', {}, h('tbody', {}, firing.map((a) => h('tr', { 'data-alert': a.name },
            h('td', { class: 'mono', text: a.name }), h('td', {}, pill(a.level)),
            h('td', { class: 'muted', text: fmtAgo(a.startsAt || a.since) + (a.acknowledged ? ' · acknowledged by ' + a.acknowledgedBy : '') })))))
          : h('div', { class: 'empty', text: 'No alert firing.' })));
      this.points = mergePoints(this.points, ev.points, 15 * 60000);
      this.draw();
    },
    onResize() { for (const c of this.charts) c.resize(); },
    unmount() { for (const c of this.charts) c.destroy(); },
  };

  // Connections
  pages.connections = {
    title: 'Connections',
    q: { userId: '', authenticated: '', room: '', remoteAddress: '', sortBy: 'connectedAt', order: 'desc', limit: 25, offset: 0 },
    mount(root) {
      const q = this.q;
      const inp = (id, label, key, ph) => h('label', { class: 'field' }, h('span', { text: label }), h('input', { id, value: q[key], placeholder: ph, onchange: (e) => { q[key] = e.target.value.trim(); } }));
      const sel = (id, label, key, opts) => h('label', { class: 'field' }, h('span', { text: label }), h('select', { id, onchange: (e) => { q[key] = e.target.value; } }, opts.map(([v, t]) => h('option', { value: v, selected: String(q[key]) === v }, t))));
      root.append(
        h('div', { class: 'page-head' }, h('h1', { text: 'Connections' }), h('span', { class: 'spacer' }), h('span', { class: 'muted', id: 'conn-count' })),
        h('form', { class: 'toolbar', id: 'conn-filters', onsubmit: (e) => { e.preventDefault(); q.offset = 0; this.load(); } },
          inp('f-user', 'User', 'userId', 'user id'),
          sel('f-auth', 'Auth', 'authenticated', [['', 'any'], ['true', 'authenticated'], ['false', 'anonymous']]),
          inp('f-room', 'Room', 'room', 'room'),
          inp('f-addr', 'Address prefix', 'remoteAddress', '10.1.'),
          sel('f-sort', 'Sort by', 'sortBy', [['connectedAt', 'connected at'], ['messages', 'messages'], ['errors', 'errors']]),
          sel('f-order', 'Order', 'order', [['desc', 'descending'], ['asc', 'ascending']]),
          sel('f-limit', 'Per page', 'limit', [['25', '25'], ['50', '50'], ['100', '100']]),
          h('button', { class: 'btn primary', type: 'submit', id: 'conn-apply' }, 'Apply'),
          isAdmin ? control(h('button', { class: 'btn', type: 'button', id: 'rate-user', onclick: () => this.rateLimit({}) }, 'Set a user rate limit')) : null,
        ),
        h('div', { class: 'panel' }, h('div', { class: 'table-wrap' }, h('table', { id: 'conn-table' },
          h('thead', {}, h('tr', {}, ['Socket', 'User', 'Address', 'Connected', 'In', 'Out', 'Errors', 'Rooms', 'Rate limit', ''].map((t, i) => h('th', { class: i >= 4 && i <= 6 ? 'num' : '', text: t })))),
          h('tbody', { id: 'conn-rows' }))),
        h('div', { class: 'pager' },
          h('button', { class: 'btn small', id: 'conn-prev', onclick: () => { q.offset = Math.max(0, q.offset - Number(q.limit)); this.load(); } }, '‹ Previous'),
          h('span', { id: 'conn-range' }),
          h('button', { class: 'btn small', id: 'conn-next', onclick: () => { q.offset += Number(q.limit); this.load(); } }, 'Next ›'))),
      );
      this.load();
    },
    query() {
      const q = this.q;
      const d = { sortBy: q.sortBy, order: q.order, limit: Number(q.limit), offset: q.offset };
      if (q.userId) d.userId = q.userId;
      if (q.room) d.room = q.room;
      if (q.remoteAddress) d.remoteAddress = q.remoteAddress;
      if (q.authenticated) d.authenticated = q.authenticated === 'true';
      return d;
    },
    async load() {
      let page;
      try { page = await api('get_connections', this.query()); } catch (e) { toast('Connections: ' + e.message, true); return; }
      if (current !== this) return;
      this.page = page;
      const rls = (last && last.status.rateLimits) || [];
      const limitOf = (c) => rls.find((r) => (r.socketId && r.socketId === c.socketId) || (r.userId && r.userId === c.userId));
      const rows = page.connections.map((c) => {
        const rl = limitOf(c);
        return h('tr', { class: 'clickable', 'data-socket': c.socketId, onclick: (e) => { if (!e.target.closest('button')) this.detail(c); } },
          h('td', { class: 'mono', text: c.socketId }),
          h('td', {}, c.userId ? c.userId : h('span', { class: 'muted', text: 'anonymous' })),
          h('td', { class: 'mono', text: c.remoteAddress, title: 'peer ' + c.peerAddress }),
          h('td', { text: fmtAgo(c.connectedAt), title: c.connectedAt }),
          h('td', { class: 'num', text: fmtNum(c.messagesIn) }),
          h('td', { class: 'num', text: fmtNum(c.messagesOut) }),
          h('td', { class: 'num', text: fmtNum(c.errors) }),
          h('td', { class: 'wrap', text: c.rooms.join(', ') || '–' }),
          h('td', { text: rl ? rl.limit + ' / ' + fmtDur(rl.windowMs) + (rl.userId ? ' (user)' : ' (socket)') : 'default' }),
          h('td', { class: 'actions' },
            h('button', { class: 'btn small ghost', onclick: () => this.detail(c) }, 'Details'),
            isAdmin ? control(h('button', { class: 'btn small danger', 'data-disconnect': c.socketId, onclick: () => this.disconnect(c, 'socket') }, 'Disconnect')) : null));
      });
      $('#conn-rows').replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 10, class: 'empty', text: 'No connection matches.' }))]));
      const from = page.total ? page.offset + 1 : 0;
      const to = Math.min(page.total, page.offset + page.connections.length);
      setText('conn-range', from + '–' + to + ' of ' + page.total);
      setText('conn-count', page.total + ' matching');
      $('#conn-prev').disabled = page.offset === 0;
      $('#conn-next').disabled = to >= page.total;
    },
    detail(c) {
      const dl = h('dl', { class: 'kv' });
      const row = (k, v) => dl.append(h('dt', { text: k }), h('dd', { text: v }));
      row('Socket', c.socketId);
      row('User', c.userId || 'anonymous');
      row('Authenticated', c.authenticated ? 'yes' : 'no');
      row('Client address', c.remoteAddress);
      row('TCP peer', c.peerAddress);
      row('Connected', fmtTime(c.connectedAt) + ' (' + fmtAgo(c.connectedAt) + ')');
      row('Last activity', fmtTime(c.lastActivity) + ' (' + fmtAgo(c.lastActivity) + ')');
      row('Messages in / out', fmtNum(c.messagesIn) + ' / ' + fmtNum(c.messagesOut));
      row('Bytes in / out', fmtBytes(c.bytesIn) + ' / ' + fmtBytes(c.bytesOut));
      row('Errors', c.errors);
      row('Compression', c.compressed ? 'permessage-deflate' : 'off');
      row('Rooms', c.rooms.join(', ') || '–');
      const close = h('button', { class: 'btn ghost', type: 'button', id: 'detail-close' }, 'Close');
      const actions = h('div', { class: 'dialog-actions' });
      if (isAdmin) {
        actions.append(...[
          control(h('button', { class: 'btn', type: 'button', id: 'detail-rate', onclick: () => { dlg.close(); this.rateLimit({ socketId: c.socketId, userId: c.userId }); } }, 'Rate limit…')),
          c.userId ? control(h('button', { class: 'btn danger', type: 'button', id: 'disconnect-user', onclick: () => { dlg.close(); this.disconnect(c, 'user'); } }, 'Disconnect user…')) : null,
          control(h('button', { class: 'btn danger', type: 'button', id: 'disconnect-socket', onclick: () => { dlg.close(); this.disconnect(c, 'socket'); } }, 'Disconnect socket…'))].filter(Boolean));
      }
      actions.append(close);
      const dlg = h('dialog', { id: 'detail' }, h('div', { class: 'dialog-body' }, h('h2', { text: 'Connection ' + c.socketId }), dl), actions);
      close.addEventListener('click', () => dlg.close());
      dlg.addEventListener('close', () => dlg.remove());
      document.body.append(dlg);
      dlg.showModal();
    },
    async disconnect(c, what) {
      const user = what === 'user';
      const r = await formDialog({
        title: user ? 'Disconnect user ' + c.userId + '?' : 'Disconnect socket ' + c.socketId + '?',
        text: (user ? 'Every connection of ' + c.userId + ' is closed' : 'The connection is closed') + ' with code 4000 and this reason. Clients may reconnect.',
        fields: [{ id: 'confirm-reason', name: 'reason', label: 'Reason (sent in the close frame)', value: 'disconnected by an administrator', required: true }],
        okText: 'Disconnect', danger: true,
        validate: (v) => v.reason.trim() !== '',
        submit: (v) => user
          ? api('force_disconnect_user', { userId: c.userId, reason: v.reason.trim() })
          : api('force_disconnect_socket', { socketId: c.socketId, reason: v.reason.trim() }),
      });
      if (!r) return;
      toast(user ? 'Disconnected ' + r.disconnected + ' connection(s) of ' + c.userId : 'Disconnected socket ' + c.socketId);
      setTimeout(() => this.load(), 300);
    },
    async rateLimit(target) {
      const bySocket = !!target.socketId;
      const r = await formDialog({
        title: 'Custom rate limit',
        text: 'Messages allowed per window; 0 removes the override. A user\'s limit is stored and survives a restart; a socket\'s lasts as long as the socket.',
        fields: [
          { id: 'rl-target', name: 'target', label: 'Applies to', type: 'select', value: bySocket ? 'socket' : 'user', options: [{ value: 'user', label: 'user' }].concat(bySocket ? [{ value: 'socket', label: 'socket ' + target.socketId }] : []) },
          { id: 'rl-user', name: 'userId', label: 'User id', value: target.userId || '' },
          { id: 'rl-limit', half: true, name: 'limit', label: 'Messages', type: 'number', value: 100, min: 0 },
          { id: 'rl-window', half: true, name: 'windowMs', label: 'Window (ms)', type: 'number', value: 60000, min: 1 },
        ],
        okText: 'Set limit',
        submit: (v) => {
          const d = { limit: Number(v.limit) };
          if (d.limit > 0) d.windowMs = Number(v.windowMs);
          if (v.target === 'socket') d.socketId = target.socketId; else d.userId = v.userId.trim();
          return api('set_rate_limit', d);
        },
      });
      if (r) { toast(r.removed ? 'Rate limit removed' : 'Rate limit set: ' + r.limit + ' per ' + fmtDur(r.windowMs)); this.load(); }
    },
    onStatus() {
      // Refresh the page in view unless a dialog is open.
      if (!document.querySelector('dialog[open]') && Date.now() - (this.loadedAt || 0) > cfg.interval - 100) { this.loadedAt = Date.now(); this.load(); }
    },
  };

  // Performance
  const ranges = {
    '1h': { label: '1 h · 5 s', spanMs: 3600e3, resolution: null, refetchMs: 0 },
    '24h': { label: '24 h · 1 min', spanMs: 86400e3, resolution: '1m', refetchMs: 60e3 },
    '7d': { label: '7 d · 15 min', spanMs: 7 * 86400e3, resolution: '15m', refetchMs: 15 * 60e3 },
  };
  pages.performance = {
    title: 'Performance',
    range: '1h',
    mount(root) {
      this.points = [];
      const seg = h('div', { class: 'seg', id: 'range' }, Object.entries(ranges).map(([k, r]) => h('button', { class: k === this.range ? 'on' : '', 'data-range': k, onclick: () => { this.range = k; render(); } }, r.label)));
      const render = () => { root.replaceChildren(); this.unmount(); this.mount(root); };
      const chart = (id, title) => h('div', { class: 'panel' }, h('div', { class: 'panel-head' }, h('h2', { text: title })), h('div', { class: 'chart', id }));
      root.append(
        h('div', { class: 'page-head' }, h('h1', { text: 'Performance' }), h('span', { class: 'spacer' }), h('span', { class: 'muted', id: 'perf-res' }), seg),
        h('div', { class: 'grid2' },
          chart('chart-latency', 'Message latency'),
          chart('chart-messages', 'Messages / s'),
          chart('chart-errors', 'Error rate'),
          chart('chart-connections', 'Connections by auth'),
          chart('chart-memory', 'Memory'),
          chart('chart-cpu', 'CPU'),
        ),
      );
      const span = ranges[this.range].spanMs / 1000;
      const pct = (v) => nf.format(v) + '%';
      this.charts = [
        makeChart($('#chart-latency'), { spanSec: span, fmt: fmtMs, series: [
          { label: 'p50', value: (p) => p.p50Ms }, { label: 'p95', value: (p) => p.p95Ms }, { label: 'p99', value: (p) => p.p99Ms }] }),
        makeChart($('#chart-messages'), { spanSec: span, fmt: fmtNum, series: [
          { label: 'received', value: (p) => p.messagesReceivedPerSec, fill: true }, { label: 'sent', value: (p) => p.messagesSentPerSec }] }),
        makeChart($('#chart-errors'), { spanSec: span, fmt: pct, series: [
          { label: 'error replies per message', value: (p) => p.errorRate * 100, color: '#ef4444', fill: true }] }),
        makeChart($('#chart-connections'), { spanSec: span, fmt: fmtNum, series: [
          { label: 'authenticated', value: (p) => p.authenticated, fill: true }, { label: 'anonymous', value: (p) => p.anonymous, fill: true }] }),
        makeChart($('#chart-memory'), { spanSec: span, fmt: fmtBytes, series: [
          { label: 'RSS', value: (p) => p.rssBytes, fill: true }, { label: 'heap', value: (p) => p.heapBytes }] }),
        makeChart($('#chart-cpu'), { spanSec: span, fmt: pct, series: [
          { label: 'CPU (of all cores)', value: (p) => p.cpuPercent, color: '#a78bfa', fill: true }] }),
      ];
      this.fetch();
    },
    async fetch() {
      const r = ranges[this.range];
      const d = { from: Date.now() - r.spanMs };
      if (r.resolution) d.resolution = r.resolution;
      let res;
      try { res = await api('get_metrics_history', d); } catch (e) { toast('History: ' + e.message, true); return; }
      if (current !== this) return;
      this.fetchedAt = Date.now();
      this.points = res.points || [];
      setText('perf-res', this.points.length + ' points · one per ' + fmtDur(res.resolutionMs));
      this.draw();
    },
    draw() { for (const c of this.charts) c.set(this.points); },
    onStatus(ev) {
      const r = ranges[this.range];
      if (!r.refetchMs) {
        this.points = mergePoints(this.points, ev.points, r.spanMs);
        setText('perf-res', this.points.length + ' points · one per ' + fmtDur(ev.resolutionMs));
        this.draw();
      } else if (Date.now() - (this.fetchedAt || 0) > r.refetchMs) {
        this.fetch();
      } else {
        for (const c of this.charts) c.tick();
      }
    },
    onResize() { for (const c of this.charts || []) c.resize(); },
    unmount() { for (const c of this.charts || []) c.destroy(); this.charts = []; },
  };

  // Alerts
  const levels = ['info', 'warning', 'critical', 'emergency'];
  // alertRows builds the active alerts' rows: rule, level, state, since,
  // value, acknowledgement, and Acknowledge for a firing alert (ADMIN).
  function alertRows(list, ack) {
    return list.map((a) => h('tr', { 'data-alert': a.name, 'data-state': a.state },
      h('td', { class: 'mono', text: a.name }),
      h('td', {}, pill(a.level)),
      h('td', {}, pill(a.state), a.flapping ? h('span', { class: 'role-tag', text: 'flapping' }) : null,
        (a.silencedBy || []).length ? h('span', { class: 'role-tag', text: 'silenced', title: 'silence ' + a.silencedBy.join(', ') }) : null),
      h('td', { text: fmtTime(a.since), title: a.since }),
      h('td', { class: 'mono', text: fmtNum(a.value) + ' ' + a.operator + ' ' + a.threshold }),
      h('td', { class: 'ack' }, a.acknowledged ? (a.acknowledgedBy || '?') + ', ' + fmtTime(a.acknowledgedAt) : '–'),
      h('td', { class: 'actions' }, isAdmin && ack && a.state === 'firing' && !a.acknowledged
        ? control(h('button', { class: 'btn small', 'data-ack': a.name, onclick: () => ack(a) }, 'Acknowledge')) : null)));
  }
  pages.alerts = {
    title: 'Alerts',
    hf: { name: '', level: '' },
    mount(root) {
      this.cursors = [''];
      this.activeKey = null;
      const hf = this.hf;
      root.append(
        h('div', { class: 'page-head' }, h('h1', { text: 'Alerts' }), h('span', { class: 'spacer' }), h('span', { class: 'muted', id: 'alerts-evaluated' }),
          isAdmin ? control(h('button', { class: 'btn primary', id: 'new-rule', onclick: () => this.edit(null) }, 'New rule')) : null),
        h('div', { class: 'panel' }, h('div', { class: 'panel-head' }, h('h2', { text: 'Active alerts' }), h('span', { class: 'spacer' }), h('span', { class: 'muted', text: 'pending, firing, or resolved in the last 15 minutes' })),
          h('div', { class: 'table-wrap' }, h('table', { id: 'alerts-table' },
            h('thead', {}, h('tr', {}, ['Rule', 'Level', 'State', 'Since', 'Value', 'Acknowledged', ''].map((t) => h('th', { text: t })))),
            h('tbody', { id: 'alerts-rows' }, h('tr', {}, h('td', { colspan: 7, class: 'empty', text: '…' })))))),
        h('div', { class: 'panel' }, h('div', { class: 'panel-head' }, h('h2', { text: 'Rules' }), h('span', { class: 'spacer' }), h('span', { class: 'muted', id: 'rules-count' })),
          h('div', { class: 'table-wrap' }, h('table', { id: 'rules-table' },
            h('thead', {}, h('tr', {}, ['Enabled', 'Name', 'Condition', 'For', 'Level', 'State', 'Description', 'Updated', ''].map((t) => h('th', { text: t })))),
            h('tbody', { id: 'rules-rows' })))),
        h('div', { class: 'panel' }, h('div', { class: 'panel-head' }, h('h2', { text: 'Silences' }), h('span', { class: 'spacer' }),
          isAdmin ? control(h('button', { class: 'btn small', id: 'new-silence', onclick: () => this.silence() }, 'New silence')) : null),
          h('div', { class: 'table-wrap' }, h('table', { id: 'silences-table' },
            h('thead', {}, h('tr', {}, ['Matches', 'State', 'Starts', 'Ends', 'Comment', 'Created by', ''].map((t) => h('th', { text: t })))),
            h('tbody', { id: 'silences-rows' })))),
        h('div', { class: 'panel' }, h('div', { class: 'panel-head' }, h('h2', { text: 'History' }), h('span', { class: 'spacer' }), h('span', { class: 'muted', text: 'newest first' })),
          h('form', { class: 'toolbar', id: 'ah-filters', onsubmit: (e) => {
            e.preventDefault();
            hf.name = $('#ah-name').value.trim();
            hf.level = $('#ah-level').value;
            this.cursors = [''];
            this.history();
          } },
            h('label', { class: 'field' }, h('span', { text: 'Rule' }), h('input', { id: 'ah-name', value: hf.name, placeholder: 'rule name' })),
            h('label', { class: 'field' }, h('span', { text: 'Level' }), h('select', { id: 'ah-level' },
              h('option', { value: '' }, 'any'), levels.map((l) => h('option', { value: l, selected: hf.level === l }, l)))),
            h('button', { class: 'btn primary', type: 'submit', id: 'ah-apply' }, 'Apply')),
          h('div', { class: 'table-wrap' }, h('table', { id: 'alert-history-table' },
            h('thead', {}, h('tr', {}, ['Time', 'Rule', 'Transition', 'Value', 'Threshold', 'Level', 'By'].map((t, i) => h('th', { class: i === 3 || i === 4 ? 'num' : '', text: t })))),
            h('tbody', { id: 'alert-history-rows' }))),
          h('div', { class: 'pager' },
            h('button', { class: 'btn small', id: 'ah-newer', onclick: () => { this.cursors.pop(); this.history(); } }, '‹ Newer'),
            h('span', { id: 'ah-page' }),
            h('button', { class: 'btn small', id: 'ah-older', onclick: () => { this.cursors.push(this.nextUntil); this.history(); } }, 'Older ›'))),
      );
      this.load();
      this.active();
      this.silences();
      this.history();
    },
    async load() {
      let r;
      try { r = await api('get_alert_configs'); } catch (e) { toast('Alert rules: ' + e.message, true); return; }
      if (current !== this) return;
      this.metrics = r.metrics || {};
      this.levels = r.levels && r.levels.length ? r.levels : levels;
      const rules = r.alerts || [];
      setText('rules-count', rules.length + ' rules · ' + rules.filter((a) => a.enabled).length + ' enabled');
      const rows = rules.map((a) => {
        const file = a.source === 'file';
        const sw = h('input', { type: 'checkbox', checked: a.enabled, disabled: !isAdmin || file, 'aria-label': 'enabled', onchange: (e) => this.toggle(a, e.target) });
        if (isAdmin && !file) control(sw);
        return h('tr', { 'data-rule': a.name },
          h('td', {}, h('label', { class: 'switch' }, sw, h('span'))),
          h('td', {}, h('span', { class: 'mono', text: a.name }), file ? h('span', { class: 'role-tag', text: 'file' }) : null),
          h('td', { class: 'mono', text: a.metric + ' ' + a.operator + ' ' + a.threshold }),
          h('td', { text: fmtDur(a.forMs) }),
          h('td', {}, pill(a.level)),
          h('td', { title: a.unknown || '' }, a.unknown ? pill('', 'unknown') : pill(a.state)),
          h('td', { class: 'wrap', text: a.description || '' }),
          h('td', { class: 'muted', text: (a.updatedBy ? a.updatedBy + ', ' : '') + fmtAgo(a.updatedAt) }),
          h('td', { class: 'actions' }, isAdmin && !file ? [
            control(h('button', { class: 'btn small', onclick: () => this.edit(a) }, 'Edit')),
            control(h('button', { class: 'btn small danger', onclick: () => this.remove(a) }, 'Delete'))] : null));
      });
      $('#rules-rows').replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 9, class: 'empty', text: 'No rule.' }))]));
    },
    // active shows the alerts get_alerts returns; the stream's snapshot
    // (activeAlerts) refreshes them in onStatus.
    async active() {
      let r;
      try { r = await api('get_alerts'); } catch (e) { toast('Alerts: ' + e.message, true); return; }
      if (current !== this) return;
      this.showActive(r.alerts || [], r.evaluatedAt);
    },
    showActive(list, evaluatedAt) {
      const tbody = document.getElementById('alerts-rows');
      if (!tbody || document.querySelector('dialog[open]')) return;
      // Rebuild only on a change, so a button is not replaced under the pointer.
      const key = JSON.stringify(list.map((a) => [a.name, a.state, a.level, a.since, a.value, a.acknowledged, a.acknowledgedBy, a.silencedBy, a.flapping]));
      if (key === this.activeKey && !evaluatedAt) return;
      this.activeKey = key;
      const rows = alertRows(list, (a) => this.ack(a));
      tbody.replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 7, class: 'empty', text: 'No alert is pending or firing.' }))]));
      if (evaluatedAt) setText('alerts-evaluated', 'evaluated ' + fmtAgo(evaluatedAt));
    },
    async ack(a) {
      const r = await formDialog({
        title: 'Acknowledge ' + a.name + '?',
        text: 'Stops its re-notification and lets a remediation stay on past its cap. The alert keeps firing until its condition clears.',
        fields: [{ id: 'ack-comment', name: 'comment', label: 'Comment (optional)', placeholder: 'looking into it' }],
        okText: 'Acknowledge',
        submit: (v) => api('acknowledge_alert', v.comment.trim() ? { name: a.name, comment: v.comment.trim() } : { name: a.name }),
      });
      if (r) { toast('Alert ' + a.name + ' acknowledged'); this.active(); this.history(); }
    },
    async silences() {
      let r;
      try { r = await api('get_silences'); } catch (e) { toast('Silences: ' + e.message, true); return; }
      if (current !== this) return;
      const tbody = document.getElementById('silences-rows');
      if (!tbody || document.querySelector('dialog[open]')) return;
      const now = Date.now();
      const rows = (r.silences || []).map((s) => {
        const state = Date.parse(s.endsAt) <= now ? 'expired' : Date.parse(s.startsAt) > now ? 'pending' : 'active';
        const m = [];
        if (s.name) m.push('rule=' + s.name);
        if (s.level) m.push('level=' + s.level);
        for (const [k, v] of Object.entries(s.labels || {})) m.push(k + '=' + v);
        return h('tr', { 'data-silence': s.id, 'data-state': state },
          h('td', { class: 'mono wrap', text: m.join(' '), title: 'id ' + s.id }),
          h('td', {}, pill(state === 'active' ? 'warning' : state === 'pending' ? 'info' : 'off', state)),
          h('td', { text: fmtTime(s.startsAt), title: s.startsAt }),
          h('td', { text: fmtTime(s.endsAt) + (s.expiredBy ? ' (expired by ' + s.expiredBy + ')' : ''), title: s.endsAt }),
          h('td', { class: 'wrap', text: s.comment || '' }),
          h('td', { text: s.createdBy }),
          h('td', { class: 'actions' }, isAdmin && state !== 'expired'
            ? control(h('button', { class: 'btn small', 'data-expire': s.id, onclick: () => this.expire(s) }, 'Expire')) : null));
      });
      tbody.replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 7, class: 'empty', text: 'No silence (active, pending or ended in the last day).' }))]));
    },
    async silence() {
      const r = await formDialog({
        title: 'New silence',
        text: 'Matching alerts are still evaluated and listed, but not notified until the silence ends. Give a rule, a level or both.',
        fields: [
          { id: 'sil-name', name: 'name', label: 'Rule (empty: every rule)', placeholder: 'high_p99' },
          { id: 'sil-level', half: true, name: 'level', label: 'Level', type: 'select', value: '', options: [{ value: '', label: 'any' }].concat((this.levels || levels).map((l) => ({ value: l }))) },
          { id: 'sil-duration', half: true, name: 'minutes', label: 'Duration (minutes)', type: 'number', min: 1, value: 60, required: true },
          { id: 'sil-comment', name: 'comment', label: 'Comment', placeholder: 'deploy window' },
        ],
        okText: 'Create silence',
        validate: (v) => Number(v.minutes) > 0,
        submit: (v) => {
          const d = { durationMs: Math.round(Number(v.minutes) * 60000) };
          if (v.name.trim()) d.name = v.name.trim();
          if (v.level) d.level = v.level;
          if (v.comment.trim()) d.comment = v.comment.trim();
          return api('silence_alerts', d);
        },
      });
      if (r) { toast('Silence ' + r.silence.id + ' created'); this.silences(); }
    },
    async expire(s) {
      const r = await formDialog({
        title: 'Expire this silence now?', text: 'Matching alerts are notified again from the next evaluation.',
        okText: 'Expire', submit: () => api('expire_silence', { id: s.id }),
      });
      if (r) { toast('Silence ' + s.id + ' expired'); this.silences(); }
    },
    // history pages get_alert_history with until: the next page ends at
    // the last entry's time (inclusive), so the entries already shown are
    // dropped by their sequence number.
    async history() {
      const limit = 25;
      const d = { limit };
      const until = this.cursors[this.cursors.length - 1];
      if (until) { d.until = until.time; d.limit = limit + 20; }
      if (this.hf.name) d.name = this.hf.name;
      if (this.hf.level) d.level = this.hf.level;
      let r;
      try { r = await api('get_alert_history', d); } catch (e) { toast('Alert history: ' + e.message, true); return; }
      if (current !== this) return;
      const all = r.history || [];
      const list = (until ? all.filter((x) => x.seq < until.seq) : all).slice(0, limit);
      const more = until ? all.filter((x) => x.seq < until.seq).length > limit : all.length >= limit;
      const lastE = list[list.length - 1];
      this.nextUntil = lastE ? { time: lastE.time, seq: lastE.seq } : null;
      const rows = list.map((x) => h('tr', { 'data-seq': x.seq, 'data-kind': x.kind },
        h('td', { text: fmtTime(x.time), title: x.time }),
        h('td', { class: 'mono', text: x.name }),
        h('td', {}, pill(x.kind === 'firing' || x.kind === 'escalated' ? 'firing' : x.kind, x.kind), x.detail ? h('span', { class: 'muted', text: ' ' + x.detail }) : null),
        h('td', { class: 'num', text: fmtNum(x.value) }),
        h('td', { class: 'num mono', text: x.operator + ' ' + x.threshold }),
        h('td', {}, pill(x.level)),
        h('td', { text: x.actor || '' })));
      $('#alert-history-rows').replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 7, class: 'empty', text: 'No entry matches.' }))]));
      setText('ah-page', 'page ' + this.cursors.length);
      $('#ah-newer').disabled = this.cursors.length <= 1;
      $('#ah-older').disabled = !more || !lastE;
    },
    onStatus(ev) {
      if (Array.isArray(ev.status.activeAlerts)) this.showActive(ev.status.activeAlerts);
      if (document.querySelector('dialog[open]')) return;
      if (Date.now() - (this.refreshedAt || 0) > Math.max(5000, cfg.interval)) {
        this.refreshedAt = Date.now();
        this.silences();
        if (this.cursors.length === 1) this.history();
        this.load();
      }
    },
    async toggle(a, box) {
      try {
        await api('configure_alert', { name: a.name, enabled: box.checked });
        toast('Rule ' + a.name + (box.checked ? ' enabled' : ' disabled'));
      } catch (e) { box.checked = !box.checked; toast(e.message, true); }
      this.load();
    },
    async remove(a) {
      const r = await formDialog({
        title: 'Delete rule ' + a.name + '?', text: a.metric + ' ' + a.operator + ' ' + a.threshold + ' for ' + fmtDur(a.forMs) + '. This cannot be undone.',
        okText: 'Delete', danger: true, submit: () => api('configure_alert', { name: a.name, delete: true }),
      });
      if (r) { toast('Rule ' + a.name + ' deleted'); this.load(); }
    },
    async edit(a) {
      const metrics = Object.keys(this.metrics || {}).sort();
      const isNew = !a;
      const r = await formDialog({
        title: isNew ? 'New alert rule' : 'Edit rule ' + a.name,
        text: 'Fires when the condition holds for the given time. The server checks every field; the description follows the condition unless you write one.',
        fields: [
          { id: 'rule-name', name: 'name', label: 'Name (a-z 0-9 _ . -)', value: a ? a.name : '', required: true, readonly: !isNew, placeholder: 'high_p99' },
          { id: 'rule-metric', name: 'metric', label: 'Metric', type: 'select', value: a ? a.metric : 'response_time', options: metrics.map((m) => ({ value: m, label: m + ': ' + this.metrics[m] })) },
          { id: 'rule-operator', half: true, name: 'operator', label: 'Operator', type: 'select', value: a ? a.operator : '>', options: ['>', '>=', '<', '<='].map((o) => ({ value: o })) },
          { id: 'rule-threshold', half: true, name: 'threshold', label: 'Threshold (in the metric\'s unit)', type: 'number', step: 'any', value: a ? a.threshold : '', required: true },
          { id: 'rule-for', half: true, name: 'forSec', label: 'For (seconds)', type: 'number', min: 0, value: a ? a.forMs / 1000 : 300 },
          { id: 'rule-level', half: true, name: 'level', label: 'Level', type: 'select', value: a ? a.level : 'warning', options: (this.levels || levels).map((l) => ({ value: l })) },
          { id: 'rule-description', name: 'description', label: 'Description (empty: derived from the condition)', value: a && a.description !== undefined ? a.description : '' },
          { id: 'rule-enabled', name: 'enabled', label: 'Enabled', type: 'checkbox', value: a ? a.enabled : true },
        ],
        okText: isNew ? 'Create rule' : 'Save',
        validate: (v) => v.name.trim() !== '' && v.threshold !== '',
        submit: (v) => {
          const d = { name: v.name.trim(), metric: v.metric, operator: v.operator, threshold: Number(v.threshold), forMs: Math.round(Number(v.forSec || 0) * 1000), level: v.level, enabled: v.enabled };
          if (isNew ? v.description.trim() !== '' : v.description !== a.description) d.description = v.description.trim();
          return api('configure_alert', d);
        },
      });
      if (r) { toast('Rule ' + r.alert.name + (isNew ? ' created' : ' saved')); this.load(); }
    },
  };

  // Circuit breakers
  pages.breakers = {
    title: 'Circuit breakers',
    mount(root) {
      root.append(
        h('div', { class: 'page-head' }, h('h1', { text: 'Circuit breakers' }), h('span', { class: 'spacer' }),
          isAdmin ? control(h('button', { class: 'btn', id: 'reset-all', onclick: () => this.reset('*') }, 'Reset all')) : null),
        h('div', { class: 'panel' }, h('div', { class: 'table-wrap' }, h('table', { id: 'breakers-table' },
          h('thead', {}, h('tr', {}, ['Service', 'State', 'Failures / calls', 'In a row', 'Last error', 'Opened', 'Next attempt', 'In flight', 'Queued', ''].map((t) => h('th', { text: t })))),
          h('tbody', { id: 'breaker-rows' })))),
        h('p', { class: 'muted', text: 'Failures and calls are the rolling window\'s while closed, and the window that tripped the breaker while open. An open breaker lets one probe through at the next attempt; a reset closes it at once.' }),
      );
      if (last) this.onStatus(last);
    },
    onStatus(ev) {
      const brs = Object.values(ev.status.circuitBreakers || {}).sort((a, b) => a.name.localeCompare(b.name));
      const rows = brs.map((u) => {
        const b = u.breaker;
        return h('tr', { 'data-breaker': u.name },
          h('td', {}, h('span', { class: 'mono', text: u.name }), u.critical ? h('span', { class: 'role-tag', text: 'critical' }) : null),
          h('td', {}, pill(b.state, b.state.replace('_', '-'))),
          h('td', { class: 'num', text: b.failures + ' / ' + b.calls }),
          h('td', { class: 'num', text: b.consecutiveFailures }),
          h('td', { text: b.lastErrorClass ? b.lastErrorClass + ', ' + fmtAgo(b.lastErrorAt) : '–' }),
          h('td', { text: isZeroTime(b.openedAt) ? '–' : fmtTime(b.openedAt) }),
          h('td', { text: b.state === 'open' ? fmtIn(b.nextAttemptAt) : b.state === 'half_open' ? 'probing' : '–' }),
          h('td', { class: 'num', text: u.inFlight }),
          h('td', { class: 'num', text: u.queued }),
          h('td', { class: 'actions' }, isAdmin ? control(h('button', { class: 'btn small', 'data-reset': u.name, disabled: b.state === 'closed' && b.failures === 0, onclick: () => this.reset(u.name) }, 'Reset')) : null));
      });
      const tbody = document.getElementById('breaker-rows');
      if (!tbody || document.querySelector('dialog[open]')) return;
      tbody.replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 10, class: 'empty', text: 'No upstream is configured on this node (--upstream NAME=URL or --upstreams-file).' }))]));
      const all = document.getElementById('reset-all');
      if (all) all.disabled = !brs.length;
    },
    async reset(name) {
      const r = await formDialog({
        title: name === '*' ? 'Reset every circuit breaker?' : 'Reset the circuit breaker of ' + name + '?',
        text: 'The breaker closes and calls go to the upstream again at once. If it is still failing, the breaker opens again.',
        okText: 'Reset', submit: () => api('reset_circuit_breaker', { service: name }),
      });
      if (r) toast(name === '*' ? 'Every breaker reset' : 'Breaker ' + name + ' reset');
    },
  };

  // Command history
  // The actions the audit log can hold, from the server (control.Actions).
  const knownActions = meta('actions').split(' ').filter(Boolean);
  pages.history = {
    title: 'Command history',
    f: { actor: '', action: '', result: '' },
    mount(root) {
      this.cursors = [0];
      const f = this.f;
      root.append(
        h('div', { class: 'page-head' }, h('h1', { text: 'Command history' }), h('span', { class: 'spacer' }), h('span', { class: 'muted', text: 'the audit log, newest first' })),
        h('form', { class: 'toolbar', onsubmit: (e) => { e.preventDefault(); this.cursors = [0]; this.load(); } },
          h('label', { class: 'field' }, h('span', { text: 'Actor' }), h('input', { id: 'h-actor', value: f.actor, placeholder: 'sub', onchange: (e) => { f.actor = e.target.value.trim(); } })),
          h('label', { class: 'field' }, h('span', { text: 'Action' }), h('select', { id: 'h-action', onchange: (e) => { f.action = e.target.value; } },
            h('option', { value: '' }, 'any'), knownActions.map((a) => h('option', { value: a, selected: f.action === a }, a)))),
          h('label', { class: 'field' }, h('span', { text: 'Result' }), h('select', { id: 'h-result', onchange: (e) => { f.result = e.target.value; } },
            ['', 'ok', 'refused', 'error'].map((r) => h('option', { value: r, selected: f.result === r }, r || 'any')))),
          h('button', { class: 'btn primary', type: 'submit' }, 'Apply')),
        h('div', { class: 'panel' }, h('div', { class: 'table-wrap' }, h('table', { id: 'history-table' },
          h('thead', {}, h('tr', {}, ['Time', 'Actor', 'Source', 'Action', 'Result', 'Data', 'Message', 'ms'].map((t, i) => h('th', { class: i === 7 ? 'num' : '', text: t })))),
          h('tbody', { id: 'history-rows' }))),
        h('div', { class: 'pager' },
          h('button', { class: 'btn small', id: 'h-newer', onclick: () => { this.cursors.pop(); this.load(); } }, '‹ Newer'),
          h('span', { id: 'h-page' }),
          h('button', { class: 'btn small', id: 'h-older', onclick: () => { this.cursors.push(this.nextBefore); this.load(); } }, 'Older ›'))),
      );
      this.load();
    },
    async load() {
      const limit = 50;
      const d = { limit };
      const before = this.cursors[this.cursors.length - 1];
      if (before) d.before = before;
      for (const k of ['actor', 'action', 'result']) if (this.f[k]) d[k] = this.f[k];
      let r;
      try { r = await api('get_command_history', d); } catch (e) { toast('History: ' + e.message, true); return; }
      if (current !== this) return;
      const recs = r.commands || [];
      this.nextBefore = recs.length ? recs[recs.length - 1].seq : 0;
      const rows = recs.map((c) => h('tr', { 'data-seq': c.seq },
        h('td', { text: fmtTime(c.time), title: c.time }),
        h('td', {}, c.actor || h('span', { class: 'muted', text: '(unverified)' })),
        h('td', { class: 'mono', text: c.sourceIp }),
        h('td', { class: 'mono', text: c.action || '–' }),
        h('td', {}, pill(c.result, c.result + (c.status !== 200 ? ' ' + c.status : ''))),
        h('td', { class: 'data-cell', text: c.data ? JSON.stringify(c.data) : '', title: c.data ? JSON.stringify(c.data, null, 2) : '' }),
        h('td', { class: 'wrap', text: c.message || '' }),
        h('td', { class: 'num', text: nf2.format(c.durationMs) })));
      $('#history-rows').replaceChildren(...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 8, class: 'empty', text: 'No record matches.' }))]));
      setText('h-page', 'page ' + this.cursors.length);
      $('#h-newer').disabled = this.cursors.length <= 1;
      $('#h-older').disabled = recs.length < limit;
    },
  };

  // Controls (ADMIN only)
  pages.controls = {
    title: 'Controls',
    mount(root) {
      if (!isAdmin) { root.append(h('div', { class: 'notice', text: 'Role VIEWER: read only.' })); return; }
      const emergencyInput = h('input', { id: 'emergency-confirm', placeholder: 'type it here', autocomplete: 'off', spellcheck: 'false' });
      const emergencyReason = h('input', { id: 'emergency-reason', placeholder: 'why', autocomplete: 'off' });
      const emergencyBtn = control(h('button', { class: 'btn solid-danger', id: 'emergency-go', disabled: true, onclick: () => this.emergency(emergencyReason.value.trim()) }, 'Shut the node down'));
      const checkEmergency = () => { emergencyBtn.disabled = !(emergencyInput.value === 'EMERGENCY_SHUTDOWN' && emergencyReason.value.trim() !== ''); };
      emergencyInput.addEventListener('input', checkEmergency);
      emergencyReason.addEventListener('input', checkEmergency);
      root.append(
        h('div', { class: 'page-head' }, h('h1', { text: 'Controls' }), h('span', { class: 'spacer' }), h('span', { class: 'muted', text: 'every action is in the command history under ' + cfg.sub })),
        h('div', { class: 'grid2' },
          h('div', { class: 'panel control-card' },
            h('h2', { text: 'Maintenance mode' }),
            h('div', { class: 'state-line' }, h('span', { text: 'Now:' }), h('span', { id: 'maint-state' }, pill('', '…'))),
            h('p', { text: 'New clients get 503, health and /readyz answer 503 so load balancers take the node out, connected clients get a system message. Drain closes them with 1012 in batches.' }),
            h('div', { class: 'row' },
              h('label', { class: 'field' }, h('span', { text: 'Reason' }), h('input', { id: 'maint-reason', placeholder: 'scheduled maintenance' })),
              h('label', { class: 'check' }, control(h('input', { type: 'checkbox', id: 'maint-drain' })), 'drain connected clients'),
              control(h('button', { class: 'btn primary', id: 'maint-toggle', onclick: () => this.maintenance() }, '…')))),
          h('div', { class: 'panel control-card' },
            h('h2', { text: 'Broadcast' }),
            h('p', { text: 'Clients receive {"type":"broadcast","data":…}. The message is sent as JSON when it parses as JSON, as a string otherwise.' }),
            h('div', { class: 'row' },
              h('label', { class: 'field' }, h('span', { text: 'To' }), h('select', { id: 'bc-target' }, h('option', { value: '' }, 'every client'), h('option', { value: 'room' }, 'one room'))),
              h('label', { class: 'field' }, h('span', { text: 'Room' }), h('input', { id: 'bc-room', placeholder: 'room name' }))),
            h('textarea', { id: 'bc-message', placeholder: '{"notice":"deploy at 14:00"}' }),
            h('div', { class: 'row' }, control(h('button', { class: 'btn primary', id: 'bc-send', onclick: () => this.broadcast() }, 'Send…')))),
          h('div', { class: 'panel control-card' },
            h('h2', { text: 'Disconnect everyone' }),
            h('p', { text: 'Closes every connection with 4000 and the reason, in batches, so clients do not all reconnect at once.' }),
            h('div', { class: 'row' },
              h('label', { class: 'field' }, h('span', { text: 'Reason' }), h('input', { id: 'da-reason', value: 'disconnected by an administrator' })),
              h('label', { class: 'field' }, h('span', { text: 'Batch size' }), h('input', { id: 'da-batch', type: 'number', min: 1, value: 100 })),
              h('label', { class: 'field' }, h('span', { text: 'Interval (ms)' }), h('input', { id: 'da-interval', type: 'number', min: 1, value: 100 })),
              control(h('button', { class: 'btn danger', id: 'da-go', onclick: () => this.disconnectAll() }, 'Disconnect all…')))),
          h('div', { class: 'panel control-card danger-zone' },
            h('h2', { text: 'Emergency shutdown' }),
            h('p', { text: 'Drains every client and stops the node process. It does not come back by itself: your supervisor (systemd, Kubernetes) decides.' }),
            h('div', { class: 'row' },
              h('label', { class: 'field' }, h('span', { text: 'Reason' }), emergencyReason),
              h('label', { class: 'field' }, h('span', { text: 'Type EMERGENCY_SHUTDOWN' }), emergencyInput),
              emergencyBtn))),
      );
      if (last) this.onStatus(last);
    },
    onStatus(ev) {
      const m = ev.status.maintenance;
      const st = $('#maint-state');
      if (!st) return;
      this.maint = m;
      st.replaceChildren(m.enabled ? pill('maintenance', 'on') : pill('healthy', 'off'), m.enabled ? h('span', { class: 'muted', text: ' ' + (m.reason || '') + (m.by ? ' · by ' + m.by : '') }) : '');
      const b = $('#maint-toggle');
      b.textContent = m.enabled ? 'Turn maintenance off' : 'Turn maintenance on';
      b.className = m.enabled ? 'btn primary' : 'btn danger';
    },
    async maintenance() {
      const on = !(this.maint && this.maint.enabled);
      const reason = $('#maint-reason').value.trim();
      const drain = $('#maint-drain').checked;
      const r = await formDialog({
        title: on ? 'Turn maintenance mode on?' : 'Turn maintenance mode off?',
        text: on ? 'New clients are refused and load balancers take the node out' + (drain ? '; connected clients are closed with 1012.' : '; connected clients stay.') : 'The node accepts clients again and health returns to normal.',
        okText: on ? 'Turn on' : 'Turn off', danger: on,
        submit: () => api('set_maintenance_mode', on ? { enabled: true, reason: reason || 'maintenance', drain } : { enabled: false }),
      });
      if (r) toast(on ? 'Maintenance mode on' : 'Maintenance mode off');
    },
    async broadcast() {
      const raw = $('#bc-message').value;
      if (!raw.trim()) { toast('Write a message first', true); return; }
      let msg;
      try { msg = JSON.parse(raw); } catch (e) { msg = raw; }
      const room = $('#bc-target').value === 'room' ? $('#bc-room').value.trim() : '';
      if ($('#bc-target').value === 'room' && !room) { toast('Name the room', true); return; }
      const r = await formDialog({
        title: room ? 'Broadcast to room ' + room + '?' : 'Broadcast to every client?',
        text: JSON.stringify(msg).slice(0, 300),
        okText: 'Send', submit: () => api('execute_command', { command: 'broadcast', message: msg, room: room || undefined }),
      });
      if (r) toast('Broadcast sent to ' + r.recipients + ' client(s)');
    },
    async disconnectAll() {
      const reason = $('#da-reason').value.trim();
      const batchSize = Number($('#da-batch').value);
      const intervalMs = Number($('#da-interval').value);
      const n = last ? last.status.connections.total : '?';
      const r = await formDialog({
        title: 'Disconnect all ' + n + ' connections?',
        text: 'Batches of ' + batchSize + ' every ' + intervalMs + ' ms, close 4000 "' + reason + '". Clients may reconnect unless maintenance mode is on.',
        okText: 'Disconnect all', danger: true,
        submit: () => api('execute_command', { command: 'disconnect_all', reason, batchSize, intervalMs }),
      });
      if (r) toast('Disconnecting ' + r.disconnecting + ' connection(s)');
    },
    async emergency(reason) {
      const r = await formDialog({
        title: 'Shut this node down now?', text: 'Last chance: every client is disconnected and the process exits.',
        okText: 'Shut down', danger: true,
        submit: () => api('execute_command', { command: 'emergency_shutdown', reason, confirm: 'EMERGENCY_SHUTDOWN' }),
      });
      if (r) toast('Emergency shutdown started: the node is going away', true);
    },
  };

  // ---------------------------------------------------------------- router
  function route() {
    let name = location.hash.replace(/^#/, '') || 'overview';
    if (!pages[name] || (name === 'controls' && !isAdmin)) name = 'overview';
    if (current && current.unmount) current.unmount();
    const root = $('#page');
    root.replaceChildren();
    for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.page === name);
    current = pages[name];
    document.title = current.title + ' · sockmon';
    document.body.dataset.page = name;
    current.mount(root);
    if (last && current.onStatus) current.onStatus(last);
  }

  function start() {
    $('#node').textContent = location.host;
    if (!isAdmin) for (const el of document.querySelectorAll('.admin-only')) el.remove();
    window.addEventListener('hashchange', route);
    let t;
    window.addEventListener('resize', () => { clearTimeout(t); t = setTimeout(() => { if (current && current.onResize) current.onResize(); }, 150); });
    route();
    connect();
    if (cfg.expires) setTimeout(() => location.reload(), Math.max(0, cfg.expires - Date.now()) + 1000);
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start); else start();
}());
