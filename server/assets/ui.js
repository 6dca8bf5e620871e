// Nomos web UI: the overview's resource chart and the "server unreachable" mark.
// Hand-written, no build step. The chart uses uPlot and polls /ui/series, which the server
// computes from the agents' usage reports in the store: points {t, cpu_used_mhz,
// cpu_total_mhz, memory_used_mb, memory_total_mb, cpu_measured_mhz, memory_measured_mb,
// running_allocs}, oldest first (used = allocated).
(function () {
  "use strict";

  // htmx fires these on every live-table refresh: mark the page while the server is away.
  document.addEventListener("htmx:sendError", function () {
    document.body.classList.add("offline");
  });
  document.addEventListener("htmx:afterRequest", function (e) {
    if (e.detail && e.detail.successful) document.body.classList.remove("offline");
  });

  function start() {
    var el = document.getElementById("chart");
    if (!el || typeof uPlot === "undefined") return;
    var src = el.getAttribute("data-src");
    var every = Math.max(1000, Number(el.getAttribute("data-interval-ms")) || 5000);
    var raw = [];

    function pct(used, total) {
      return total > 0 ? Math.round((1000 * used) / total) / 10 : null;
    }
    function columns(points) {
      return [
        points.map(function (p) { return p.t; }),
        points.map(function (p) { return pct(p.cpu_used_mhz, p.cpu_total_mhz); }),
        points.map(function (p) { return pct(p.memory_used_mb, p.memory_total_mb); }),
        points.map(function (p) { return pct(p.cpu_measured_mhz, p.cpu_total_mhz); }),
        points.map(function (p) { return pct(p.memory_measured_mb, p.memory_total_mb); }),
        points.map(function (p) { return p.running_allocs; }),
      ];
    }
    function detail(fmt) {
      return function (u, v, series, idx) {
        if (v == null || idx == null || !raw[idx]) return "—";
        return v + "% (" + fmt(raw[idx]) + ")";
      };
    }
    function mhz(v) { return v >= 1000 ? (v / 1000).toFixed(1) + " GHz" : v + " MHz"; }
    function mib(v) { return v >= 1024 ? (v / 1024).toFixed(1) + " GiB" : v + " MiB"; }

    var css = getComputedStyle(document.documentElement);
    var color = function (name) { return css.getPropertyValue(name).trim(); };
    var axis = { stroke: color("--muted"), grid: { stroke: color("--line") }, ticks: { stroke: color("--line") } };

    var opts = {
      width: el.clientWidth || 800,
      height: 240,
      cursor: { drag: { x: false, y: false } },
      scales: { pct: { range: [0, 100] }, n: { range: function (u, min, max) { return [0, Math.max(4, max)]; } } },
      axes: [
        axis,
        Object.assign({}, axis, { scale: "pct", values: function (u, vals) { return vals.map(function (v) { return v + "%"; }); } }),
        Object.assign({}, axis, { scale: "n", side: 1, grid: { show: false } }),
      ],
      series: [
        {},
        { label: "CPU allocated", scale: "pct", stroke: color("--accent"), width: 2,
          value: detail(function (p) { return mhz(p.cpu_used_mhz) + " / " + mhz(p.cpu_total_mhz); }) },
        { label: "Memory allocated", scale: "pct", stroke: color("--warn"), width: 2,
          value: detail(function (p) { return mib(p.memory_used_mb) + " / " + mib(p.memory_total_mb); }) },
        { label: "CPU used", scale: "pct", stroke: color("--accent"), width: 1, dash: [2, 3],
          value: detail(function (p) { return mhz(p.cpu_measured_mhz) + " / " + mhz(p.cpu_total_mhz); }) },
        { label: "Memory used", scale: "pct", stroke: color("--warn"), width: 1, dash: [2, 3],
          value: detail(function (p) { return mib(p.memory_measured_mb) + " / " + mib(p.memory_total_mb); }) },
        { label: "Running allocations", scale: "n", stroke: color("--ok"), width: 2, dash: [6, 4] },
      ],
    };
    var plot = new uPlot(opts, columns([]), el);

    function refresh() {
      if (document.hidden) return;
      fetch(src, { headers: { Accept: "application/json" } })
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
        .then(function (body) {
          raw = body.points || [];
          plot.setData(columns(raw));
        })
        .catch(function () {});
    }
    refresh();
    setInterval(refresh, every);
    window.addEventListener("resize", function () {
      plot.setSize({ width: el.clientWidth || 800, height: 240 });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
