// The chapter's AnalyticsDashboard, fed by server-side data streams (capability `streams`):
// visitors, sales and performance, drawn live with uPlot (bundled: vendor/uPlot.iife.min.js),
// with each stream's latest window aggregates. It uses the TypeScript client's streams module
// (`Herald.subscribeStream`) on a connection of its own. The streams exist when the server runs
// with --demo; otherwise the panel says so.
(() => {
  'use strict';

  const panel = document.getElementById('analytics');
  const status = document.getElementById('analytics-status');
  if (!panel || !window.Herald || !window.uPlot || !window.Herald.subscribeStream) {
    if (status) status.textContent = 'charts unavailable (client or uPlot missing)';
    return;
  }
  const { HeraldClient, subscribeStream } = window.Herald;
  const client = new HeraldClient(location.origin, {});

  // The chapter's three streams and how each is drawn.
  const STREAMS = [
    { id: 'visitors', title: 'Visitors', series: [{ field: null, label: 'visitors', stroke: '#2a6fdb' }] },
    { id: 'sales', title: 'Sales', series: [{ field: null, label: 'sale ($)', stroke: '#1e9e5a' }] },
    {
      id: 'performance',
      title: 'Performance',
      series: [
        { field: 'responseTime', label: 'response time (ms)', stroke: '#d9822b' },
        { field: 'throughput', label: 'throughput', stroke: '#7a4fd6', scale: 'tp' },
        { field: 'errorRate', label: 'error rate (%)', stroke: '#d64545' },
      ],
    },
  ];

  const charts = {};
  const streams = {};

  const valueOf = (point, field) =>
    field === null ? (typeof point.value === 'number' ? point.value : null)
      : (point.value && typeof point.value[field] === 'number' ? point.value[field] : null);

  function chartData(spec, points) {
    const xs = points.map((p) => p.timestamp / 1000);
    return [xs, ...spec.series.map((s) => points.map((p) => valueOf(p, s.field)))];
  }

  function makeChart(spec, holder) {
    const width = Math.max(280, Math.min(holder.clientWidth || 360, 520));
    const scales = { x: { time: true } };
    const axes = [{}, { size: 50 }];
    if (spec.series.some((s) => s.scale === 'tp')) {
      scales.tp = {};
      axes.push({ scale: 'tp', side: 1, grid: { show: false }, size: 50 });
    }
    return new window.uPlot(
      {
        width,
        height: 160,
        scales,
        axes,
        legend: { live: false },
        series: [{}, ...spec.series.map((s) => ({ label: s.label, stroke: s.stroke, width: 2, scale: s.scale || 'y' }))],
      },
      chartData(spec, []),
      holder,
    );
  }

  const fmt = (n) => (typeof n === 'number' ? (Math.abs(n) >= 100 ? n.toFixed(0) : n.toFixed(2)) : '–');

  function showWindow(spec, window) {
    const cell = document.querySelector(`[data-testid="agg-${spec.id}"]`);
    if (!cell || !window) return;
    const span = `${new Date(window.start).toLocaleTimeString()}–${new Date(window.end).toLocaleTimeString()}`;
    const parts = Object.entries(window.fields).map(([field, agg]) =>
      `${field}: ${Object.entries(agg).map(([k, v]) => `${k} ${fmt(v)}`).join(', ')}`);
    cell.textContent = `${span} · ${window.count} points${window.late ? ` (${window.late} late)` : ''} · ${parts.join(' | ')}`;
    cell.dataset.windows = String(Number(cell.dataset.windows || 0) + 1);
  }

  function showLatest(spec, stream) {
    const last = stream.points[stream.points.length - 1];
    if (!last) return;
    if (spec.id === 'visitors') {
      const el = document.getElementById('current-visitors');
      el.textContent = String(last.value);
      el.classList.add('updated');
      setTimeout(() => el.classList.remove('updated'), 500);
    } else if (spec.id === 'sales') {
      const total = stream.points.reduce((sum, p) => sum + (typeof p.value === 'number' ? p.value : 0), 0);
      document.getElementById('total-sales').textContent = `$${total.toFixed(2)}`;
    } else if (spec.id === 'performance') {
      const v = last.value || {};
      if (typeof v.responseTime === 'number') document.getElementById('response-time').textContent = `${v.responseTime.toFixed(0)}ms`;
      if (typeof v.throughput === 'number') document.getElementById('throughput').textContent = v.throughput.toFixed(0);
      if (typeof v.errorRate === 'number') document.getElementById('error-rate').textContent = `${v.errorRate.toFixed(2)}%`;
    }
  }

  function redraw(spec) {
    const stream = streams[spec.id];
    charts[spec.id].setData(chartData(spec, stream.points));
    showLatest(spec, stream);
  }

  for (const spec of STREAMS) {
    const holder = document.querySelector(`[data-testid="chart-${spec.id}"]`);
    charts[spec.id] = makeChart(spec, holder);
    const stream = subscribeStream(client, spec.id, { maxPoints: 200, keep: 200 });
    streams[spec.id] = stream;
    stream.on('snapshot', (snap) => {
      redraw(spec);
      showWindow(spec, snap.windows[snap.windows.length - 1]);
      status.textContent = 'live';
      status.dataset.state = 'live';
    });
    stream.on('point', () => redraw(spec));
    stream.on('window', (frame) => showWindow(spec, frame.window));
    stream.on('error', (e) => {
      if (e.code === 'stream_not_found') {
        status.textContent = 'no streams here (start the server with --demo)';
        status.dataset.state = 'absent';
      }
    });
  }
  client.connect();

  // For tests and the curious: the charts' data as uPlot holds it.
  window.heraldDashboard = {
    client,
    charts,
    streams,
    /** The x values (seconds) and first series a chart draws now. */
    data: (id) => ({ xs: Array.from(charts[id].data[0]), ys: Array.from(charts[id].data[1]) }),
  };
})();
