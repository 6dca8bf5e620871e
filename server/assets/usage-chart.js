// Nomos web UI: measured-usage charts on the node, allocation and job pages.
// Hand-written, no build step. Each `.usage-chart` element polls its data-src (a
// /ui/series/... address) and draws CPU (MHz, left axis) and memory (MiB, right axis).
// Points are either {t, cpu_mhz, memory_bytes} (allocations, jobs) or a node's
// {t, cpu_measured_mhz, memory_measured_mb, cpu_used_mhz, memory_used_mb, ...}, whose
// allocated figures are drawn dashed.
(function () {
  "use strict";

  function measured(p) {
    if (p.cpu_mhz !== undefined) {
      return { cpu: p.cpu_mhz, mem: Math.round(p.memory_bytes / 1048576) };
    }
    return { cpu: p.cpu_measured_mhz, mem: p.memory_measured_mb };
  }

  function columns(points, withAllocated) {
    var cols = [
      points.map(function (p) { return p.t; }),
      points.map(function (p) { return measured(p).cpu; }),
      points.map(function (p) { return measured(p).mem; }),
    ];
    if (withAllocated) {
      cols.push(points.map(function (p) { return p.cpu_used_mhz; }));
      cols.push(points.map(function (p) { return p.memory_used_mb; }));
    }
    return cols;
  }

  function draw(el) {
    var src = el.getAttribute("data-src");
    var every = Math.max(1000, Number(el.getAttribute("data-interval-ms")) || 5000);
    var css = getComputedStyle(document.documentElement);
    var color = function (name) { return css.getPropertyValue(name).trim(); };
    var axis = { stroke: color("--muted"), grid: { stroke: color("--line") }, ticks: { stroke: color("--line") } };
    var plot = null;
    var withAllocated = false;

    function make() {
      var series = [
        {},
        { label: "CPU (MHz)", scale: "mhz", stroke: color("--accent"), width: 2 },
        { label: "Memory (MiB)", scale: "mib", stroke: color("--warn"), width: 2 },
      ];
      if (withAllocated) {
        series.push({ label: "CPU allocated", scale: "mhz", stroke: color("--accent"), width: 1, dash: [6, 4] });
        series.push({ label: "Memory allocated", scale: "mib", stroke: color("--warn"), width: 1, dash: [6, 4] });
      }
      var zero = function (u, min, max) { return [0, Math.max(1, max)]; };
      return new uPlot({
        width: el.clientWidth || 800,
        height: 200,
        cursor: { drag: { x: false, y: false } },
        scales: { mhz: { range: zero }, mib: { range: zero } },
        axes: [
          axis,
          Object.assign({}, axis, { scale: "mhz" }),
          Object.assign({}, axis, { scale: "mib", side: 1, grid: { show: false } }),
        ],
        series: series,
      }, columns([], withAllocated), el);
    }

    function refresh() {
      if (document.hidden) return;
      fetch(src, { headers: { Accept: "application/json" } })
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
        .then(function (body) {
          var points = body.points || [];
          var alloc = points.length > 0 && points[0].cpu_used_mhz !== undefined;
          if (!plot || alloc !== withAllocated) {
            if (plot) plot.destroy();
            withAllocated = alloc;
            plot = make();
          }
          plot.setData(columns(points, withAllocated));
        })
        .catch(function () {});
    }
    refresh();
    setInterval(refresh, every);
    window.addEventListener("resize", function () {
      if (plot) plot.setSize({ width: el.clientWidth || 800, height: 200 });
    });
  }

  function start() {
    if (typeof uPlot === "undefined") return;
    var els = document.querySelectorAll(".usage-chart");
    for (var i = 0; i < els.length; i++) draw(els[i]);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
