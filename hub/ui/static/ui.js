/* Draw the charts a page or an htmx fragment carries in data- attributes (no inline scripts). */
(function () {
  function drawSankey(root) {
    var el = (root || document).querySelector('#sankey[data-sankey]');
    if (!el || !window.echarts) return;
    var data = JSON.parse(el.getAttribute('data-sankey'));
    var chart = echarts.getInstanceByDom(el) || echarts.init(el, null, {renderer: 'svg'});
    chart.setOption({
      animation: false,
      aria: {enabled: true, decal: {show: true}},
      tooltip: {trigger: 'item', valueFormatter: function (v) { return v.toLocaleString(undefined, {maximumFractionDigits: 1}) + ' kW'; }},
      series: [{type: 'sankey', left: 24, right: 200, top: 16, bottom: 16, nodeGap: 14, data: data.nodes, links: data.links, emphasis: {focus: 'adjacency'},
                label: {formatter: '{b}', overflow: 'none'}, lineStyle: {color: 'gradient', curveness: 0.5}}]
    });
    window.addEventListener('resize', function () { chart.resize(); });
  }
  function drawSeries() {
    var el = document.querySelector('#series[data-series]');
    if (!el || !window.uPlot) return;
    var data = JSON.parse(el.getAttribute('data-series'));
    new uPlot({
      width: el.clientWidth || 800, height: 260, tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), data.tz); },
      series: [{}, {label: 'kWh', stroke: '#0b5cad', width: 2, value: function (u, v) { return v == null ? '—' : v.toFixed(3) + ' kWh'; }}],
      axes: [{}, {label: 'kWh'}]
    }, [data.t, data.kwh], el);
  }
  document.addEventListener('DOMContentLoaded', function () { drawSankey(document); drawSeries(); });
  document.addEventListener('htmx:afterSwap', function (e) { drawSankey(e.target); });
})();
