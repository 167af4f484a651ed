/* streamfit dashboard: draws the charts the server describes (data-chart, see
   streamfit/server/charts.py) with uPlot, and keeps a followed log scrolled to its end.
   No inline script anywhere: the Content-Security-Policy allows only this file and the
   vendored libraries. */
(function () {
  "use strict";

  function fmt(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    var a = Math.abs(v);
    if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(2);
    if (Number.isInteger(v)) return v.toLocaleString();
    return (+v.toPrecision(4)).toLocaleString(undefined, { maximumFractionDigits: 4 });
  }

  function seconds(v) {
    if (v === null || v === undefined) return "–";
    if (v < 1) return Math.round(v * 1000) + "ms";
    if (v < 60) return v.toFixed(1) + "s";
    if (v < 3600) return Math.floor(v / 60) + "m" + String(Math.round(v % 60)).padStart(2, "0") + "s";
    return Math.floor(v / 3600) + "h" + String(Math.round((v % 3600) / 60)).padStart(2, "0") + "m";
  }

  function yFormat(unit) {
    if (unit === "percent") return function (v) { return v === null ? "–" : fmt(v * 100) + "%"; };
    if (unit === "seconds") return seconds;
    return fmt;
  }

  // Bars of stacked series are drawn as running totals, tallest first, so each shows its
  // own band; the legend shows each series' own value.
  function stack(series) {
    var totals = null;
    var stacked = series.map(function (s) {
      var vals = s.values.map(function (v, i) { return (v || 0) + (totals ? totals[i] : 0); });
      totals = vals;
      return vals;
    });
    return stacked.reverse();
  }

  // Room around the points: a day on each side of daily bars, half a step around categories,
  // a factor of two on a log axis, 5% on a linear one.
  function xRange(spec) {
    var xs = spec.xs, lo = Math.min.apply(null, xs), hi = Math.max.apply(null, xs);
    if (spec.x_categories) return [-0.5, spec.x_categories.length - 0.5];
    if (spec.x_time) return [lo - 86400 * 0.6, hi + 86400 * 0.6];
    if (spec.x_log) return [lo / 2, hi * 2];
    var pad = (hi - lo) * 0.05 || Math.abs(lo) * 0.1 || 1;
    if (spec.kind === "scatter" || hi === lo) return [lo - pad, hi + pad];  // one point: room
    return [lo, hi];
  }

  function build(el, spec) {
    var width = Math.max(el.clientWidth, 280);
    var height = spec.height || 240;
    var yf = yFormat(spec.y_unit);
    var bars = spec.kind === "bars";
    var scatter = spec.kind === "scatter";
    var series = spec.stacked ? spec.series.slice().reverse() : spec.series;
    var values = spec.stacked ? stack(spec.series) : spec.series.map(function (s) { return s.values; });
    var raw = series.map(function (s) { return s.values; });
    var cats = spec.x_categories;
    var opts = {
      width: width,
      height: height,
      title: spec.title,
      legend: { show: true },
      cursor: { points: { size: 7 } },
      scales: {
        x: spec.x_time ? { time: true, range: xRange(spec) } : { time: false, distr: spec.x_log ? 3 : 1, range: xRange(spec) },
        y: { auto: true, range: spec.y_unit === "percent" ? [0, 1] : function (u, lo, hi) {
          if (hi === null) return [0, 1];
          var pad = (hi - Math.min(lo, 0)) * 0.08 || 1;
          return [lo >= 0 && !scatter ? 0 : lo - pad, hi + pad];
        } },
      },
      axes: [
        {
          label: spec.x_label,
          size: 44,
          values: cats ? function (u, splits) {
            return splits.map(function (v) { return cats[v] === undefined ? "" : cats[v]; });
          } : (spec.x_time ? undefined : function (u, splits) {
            // a log axis labels its decades only
            return splits.map(function (v) {
              return !spec.x_log || Math.abs(Math.log10(v) - Math.round(Math.log10(v))) < 1e-9 ? fmt(v) : "";
            });
          }),
          splits: cats ? function () { return cats.map(function (c, i) { return i; }); } : undefined,
        },
        {
          label: spec.y_label,
          size: 60,
          values: function (u, splits) { return splits.map(yf); },
          // counts step by whole numbers
          incrs: spec.y_unit === "count" ? [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6] : undefined,
        },
      ],
      series: [
        {
          label: spec.x_label || (spec.x_time ? "day" : "x"),
          value: cats ? function (u, v) { return v === null ? "–" : cats[v]; }
            : (spec.x_time ? "{YYYY}-{MM}-{DD}" : function (u, v) { return fmt(v); }),
        },
      ].concat(series.map(function (s, i) {
        var one = {
          label: s.label,
          stroke: s.color,
          width: scatter ? 0 : 2,
          spanGaps: true,
          value: function (u, v, si, idx) {
            return idx === null ? "–" : yf(raw[i][idx] === undefined ? v : raw[i][idx]);
          },
        };
        if (bars) {
          one.fill = s.color;
          one.width = 0;
          one.paths = uPlot.paths.bars({ size: [0.7, 48], gap: 1 });
          one.points = { show: false };
        } else if (scatter) {
          one.paths = function () { return null; };
          one.points = { show: true, size: 8, stroke: s.color, fill: s.color };
        } else {
          one.points = { show: values[0].length < 40 };
        }
        return one;
      })),
    };
    return new uPlot(opts, [spec.xs].concat(values), el);
  }

  // A polled part of a page (a running job's) comes back every second with its charts: one
  // whose data did not change keeps the plot it had (and the reader's cursor on it).
  var drawn = {};

  function draw(el) {
    var text = el.getAttribute("data-chart");
    var spec;
    try {
      spec = JSON.parse(text);
    } catch (e) {
      el.textContent = "chart data unreadable";
      return;
    }
    var key = spec.title;
    var old = drawn[key];
    if (old && old.text === text && !document.body.contains(old.el)) {
      el.textContent = "";
      el.appendChild(old.plot.root);
      el._plot = old.plot;
      old.el = el;
      el.setAttribute("data-drawn", "1");
      return;
    }
    if (el._plot) el._plot.destroy();
    if (old && !document.body.contains(old.el)) old.plot.destroy();
    el.textContent = "";
    if (!spec.xs.length) {
      el.classList.add("empty");
      el.textContent = spec.empty || "nothing to draw yet";
      return;
    }
    el._plot = build(el, spec);
    drawn[key] = { text: text, plot: el._plot, el: el };
    el.setAttribute("data-drawn", "1");
  }

  function drawAll(root) {
    if (typeof uPlot === "undefined") return;
    root.querySelectorAll("[data-chart]").forEach(draw);
  }

  // A log that was scrolled to its end stays at its end as new lines arrive.
  var following = {};
  function followLogs() {
    // The whole page: new lines are swapped in inside the log, not as a log of their own.
    document.querySelectorAll("pre.log").forEach(function (pre) {
      var key = pre.id || "log";
      if (following[key] !== false) pre.scrollTop = pre.scrollHeight;
      if (pre._followed) return;
      pre._followed = true;
      pre.addEventListener("scroll", function () {
        following[key] = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
      });
    });
  }

  function resizeAll() {
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      if (el._plot) el._plot.setSize({ width: Math.max(el.clientWidth, 280), height: el._plot.height });
    });
  }

  var timer = null;
  window.addEventListener("resize", function () {
    clearTimeout(timer);
    timer = setTimeout(resizeAll, 150);
  });

  // A form field marked data-autosubmit (a select) submits its form on change: the
  // job table's sort, without a button to press.
  document.addEventListener("change", function (e) {
    var t = e.target;
    if (t && t.hasAttribute && t.hasAttribute("data-autosubmit") && t.form && !window.htmx) {
      t.form.submit();
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    drawAll(document);
    followLogs();
    document.body.addEventListener("htmx:afterSettle", function (e) {
      drawAll(e.target);
      followLogs();
    });
  });
})();
