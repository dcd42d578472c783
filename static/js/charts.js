/* Draws the analytics charts with the local ECharts (static/vendor/echarts).
 *
 * Each chart is <div class="chart" data-chart-script="id"> naming a json_script element
 * (or <div class="chart" data-chart='{...}'>) with a small spec the server wrote:
 *   {type: "line" | "bar", categories: [...], series: [{name, data, axis?, percent?}]}
 *   {type: "heatmap", x: [...], y: [...], data: [[x, y, value]], percent?}
 *   {type: "funnel", data: [{name, value}]}
 * The same numbers are in a table after each chart, so nothing is lost without JavaScript.
 */
(function () {
  "use strict";

  function percent(value) {
    return value === null || value === undefined ? "—" : (value * 100).toFixed(1) + "%";
  }

  function plain(value) {
    return value === null || value === undefined ? "—" : String(value);
  }

  function cartesian(spec) {
    var axes = [{ type: "value" }];
    var usesSecond = spec.series.some(function (s) { return s.axis === 1; });
    if (usesSecond) axes.push({ type: "value" });
    axes.forEach(function (axis, index) {
      var owner = spec.series.find(function (s) { return (s.axis || 0) === index; });
      if (owner && owner.percent) {
        axis.axisLabel = { formatter: function (v) { return Math.round(v * 100) + "%"; } };
      }
    });
    return {
      tooltip: {
        trigger: "axis",
        valueFormatter: undefined,
        formatter: function (items) {
          var lines = [items.length ? items[0].axisValueLabel : ""];
          items.forEach(function (item) {
            var s = spec.series[item.seriesIndex];
            lines.push(item.marker + s.name + ": " + (s.percent ? percent(item.value) : plain(item.value)));
          });
          return lines.join("<br>");
        }
      },
      legend: { top: 0 },
      grid: { left: 56, right: usesSecond ? 56 : 24, top: 40, bottom: 40, containLabel: true },
      xAxis: { type: "category", data: spec.categories },
      yAxis: axes,
      series: spec.series.map(function (s) {
        return {
          name: s.name,
          type: spec.type,
          data: s.data,
          yAxisIndex: s.axis || 0,
          connectNulls: false
        };
      })
    };
  }

  function heatmap(spec) {
    var values = spec.data.map(function (cell) { return cell[2]; });
    return {
      tooltip: {
        formatter: function (item) {
          var v = item.value[2];
          return spec.y[item.value[1]] + " · " + spec.x[item.value[0]] + ": " +
            (spec.percent ? percent(v) : plain(v));
        }
      },
      grid: { left: 96, right: 24, top: 16, bottom: 72 },
      xAxis: { type: "category", data: spec.x, splitArea: { show: true } },
      yAxis: { type: "category", data: spec.y, inverse: true, splitArea: { show: true } },
      visualMap: {
        min: 0,
        max: values.length ? Math.max.apply(null, values.concat([spec.percent ? 1 : 0])) : 1,
        calculable: true,
        orient: "horizontal",
        left: "center",
        bottom: 0,
        formatter: function (v) { return spec.percent ? percent(v) : plain(v); }
      },
      series: [{
        type: "heatmap",
        data: spec.data,
        label: {
          show: true,
          formatter: function (item) { return spec.percent ? percent(item.value[2]) : plain(item.value[2]); }
        }
      }]
    };
  }

  function funnel(spec) {
    return {
      tooltip: { trigger: "item", formatter: "{b}: {c}" },
      series: [{
        type: "funnel",
        sort: "none",
        minSize: "8%",
        left: "10%",
        width: "80%",
        label: { show: true, position: "inside", formatter: "{b}: {c}" },
        data: spec.data
      }]
    };
  }

  var BUILDERS = { line: cartesian, bar: cartesian, heatmap: heatmap, funnel: funnel };

  function specOf(element) {
    var source = element.getAttribute("data-chart-script");
    var text = source ? (document.getElementById(source) || {}).textContent : element.getAttribute("data-chart");
    return text ? JSON.parse(text) : null;
  }

  function draw(element) {
    var spec = specOf(element);
    var build = spec && BUILDERS[spec.type];
    if (!build || !window.echarts) return;
    var rows = spec.type === "heatmap" ? spec.y.length : 0;
    element.style.height = (spec.type === "heatmap" ? Math.max(240, 120 + rows * 32) : 320) + "px";
    element.classList.add("chart-drawn");
    var chart = window.echarts.init(element);
    chart.setOption(build(spec));
    window.addEventListener("resize", function () { chart.resize(); });
  }

  function drawAll() {
    document.querySelectorAll(".chart").forEach(draw);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
