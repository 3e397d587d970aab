// The console's live part: the server renders every section; this replaces them with what each
// snapshot sends (server-sent events), advances the wait timers between snapshots, draws the
// charts with uPlot, and reconnects by itself when the server goes away and comes back.
"use strict";
(function () {
  const start = JSON.parse(document.getElementById("page-data").textContent);
  const page = start.page;
  let clock = { nowMs: start.now_ms, tick: start.tick, at: Date.now() };
  let chartData = start.charts;
  const plots = {};
  const live = document.getElementById("live");
  const COLORS = {
    ENTERING: "#6c8ebf", WAITING: "#d79b00", LAUNCHING: "#9673a6",
    TESTING: "#82b366", DONE: "#666666",
  };

  function duration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const two = (n) => String(n).padStart(2, "0");
    if (s >= 3600) return Math.floor(s / 3600) + "h" + two(Math.floor((s % 3600) / 60)) + "m" + two(s % 60) + "s";
    if (s >= 60) return Math.floor(s / 60) + "m" + two(s % 60) + "s";
    return s + "s";
  }

  function axisLabel(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s >= 3600) return Math.floor(s / 3600) + "h" + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + "m";
    return s >= 60 ? Math.floor(s / 60) + "m" : s + "s";
  }

  // The instant waits are measured to: on the wall clock it advances with this browser's
  // clock from the server's last "now"; on the event clock it holds until events move it.
  function now() {
    return clock.tick ? clock.nowMs + (Date.now() - clock.at) : clock.nowMs;
  }

  function tick() {
    const at = now();
    for (const el of document.querySelectorAll(".timer[data-since-ms]")) {
      const waited = at - Number(el.dataset.sinceMs);
      el.textContent = duration(waited / 1000);
      if (el.dataset.slaMs) {
        const late = waited >= Number(el.dataset.slaMs);
        const row = el.closest("tr");
        if (row) {
          row.classList.toggle("late", late);
          const slot = row.querySelector(".slot");
          if (slot) slot.innerHTML = late ? '<span class="badge sla">past SLA</span>' : "";
        }
      }
    }
  }

  function width(el) {
    return Math.max(120, el.clientWidth || 300);
  }

  function draw(id, data) {
    const el = document.getElementById("chart-" + id);
    if (!el || typeof uPlot === "undefined") return;
    if (plots[id] && plots[id].root.parentNode !== el) delete plots[id]; // section replaced
    if (id.startsWith("lag-")) {
      const rows = [data.x, data.y];
      if (plots[id]) { plots[id].setData(rows); return; }
      plots[id] = new uPlot({
        width: width(el), height: 36, legend: { show: false }, cursor: { show: false },
        axes: [{ show: false }, { show: false }],
        scales: { x: { time: false }, y: { range: (u, lo, hi) => [-0.1 * Math.max(1, hi), Math.max(1, hi)] } },
        series: [{}, { stroke: "#c0392b", fill: "rgba(192,57,43,0.15)", width: 1, points: { show: false } }],
      }, rows, el);
      return;
    }
    const names = Object.keys(data.series);
    const rows = [data.x].concat(names.map((n) => data.series[n]));
    const key = names.join(",");
    if (plots[id] && plots[id].key === key) { plots[id].setData(rows); return; }
    if (plots[id]) { plots[id].destroy(); }
    const plot = new uPlot({
      width: width(el), height: 260, scales: { x: { time: true } },
      series: [{}].concat(names.map((n) => ({
        label: n, stroke: COLORS[n] || "#333", width: 2, spanGaps: true,
        points: { show: true, size: 4 }, value: (u, v) => (v == null ? "-" : duration(v)),
      }))),
      axes: [{}, { values: (u, vals) => vals.map(axisLabel), size: 60 }],
    }, rows, el);
    plot.key = key;
    plots[id] = plot;
  }

  function drawAll() {
    for (const [id, data] of Object.entries(chartData)) draw(id, data);
  }

  function apply(msg) {
    for (const [id, html] of Object.entries(msg.sections)) {
      const el = document.querySelector('[data-section="' + id + '"]');
      if (el && el.innerHTML !== html) el.innerHTML = html;
    }
    clock = { nowMs: msg.now_ms, tick: msg.tick, at: Date.now() };
    chartData = msg.charts;
    document.body.dataset.seq = String(msg.seq);
    drawAll();
    tick();
  }

  function connect() {
    const source = new EventSource("/events/" + page);
    source.onopen = () => { live.textContent = "live"; live.className = "live"; };
    source.onmessage = (e) => apply(JSON.parse(e.data));
    source.onerror = () => {
      live.textContent = "reconnecting…";
      live.className = "live off";
      // A browser retries by itself after a dropped stream; after a refused one it may give
      // up (CLOSED): then start over.
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        setTimeout(connect, 1000);
      }
    };
  }

  drawAll();
  tick();
  setInterval(tick, 250);
  connect();
})();
