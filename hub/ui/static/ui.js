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
  document.addEventListener('DOMContentLoaded', function () { drawSankey(document); });
  document.addEventListener('htmx:afterSwap', function (e) { drawSankey(e.target); });
})();
