// boardtrace report: timeline (canvas, per-pixel buckets), details, search, paginated tables.
// Reads the JSON block #report-data written by host/report.py (page_data). No external URL.
(function () {
"use strict";
const started = performance.now();
const D = JSON.parse(document.getElementById("report-data").textContent);
const S = D.strings, LEVELS = D.levels;
const PAGE = 200, LABEL_W = 180, AXIS_H = 22, ROW_H = 16, MIN_SPAN = 100;
const LEVEL_COLORS = ["#700", "#900", "#b00", "#e00", "#e80", "#07c", "#5a5", "#999"];

function undelta(a) {
  const out = new Float64Array(a.length);
  let t = 0;
  for (let i = 0; i < a.length; i++) { t += a[i]; out[i] = t; }
  return out;
}
const I32 = (a) => Int32Array.from(a);

// ---- the items: column arrays, times in ns relative to the session start ----------------------
// sys.kind: 0 a syscall, 1 a signal delivered, 2 a thread that exited or was killed (the text in args)
const sys = {ts: undelta(D.sys.ts), dur: Float64Array.from(D.sys.dur), lane: I32(D.sys.lane),
             name: I32(D.sys.name), args: I32(D.sys.args), res: I32(D.sys.res), err: I32(D.sys.err),
             kind: I32(D.sys.kind)};
const KIND_COLORS = [null, "#e80", "#000"];
const ft = {ts: undelta(D.ft.ts), cpu: I32(D.ft.cpu), task: I32(D.ft.task), ev: I32(D.ft.ev),
            text: I32(D.ft.text)};
const dm = {ts: undelta(D.dm.ts), lvl: I32(D.dm.lvl), fac: I32(D.dm.fac), msg: I32(D.dm.msg)};
const nSys = sys.ts.length, nFt = ft.ts.length, nDm = dm.ts.length;
const sysLaneLabel = D.sys.lanes.map((l) => l[2]);
const pidLabel = new Map();
for (const [pid, tid, label] of D.sys.lanes) if (!pidLabel.has(pid) || pid === tid) pidLabel.set(pid, label.split("/")[0]);

// ---- lanes: one per thread (syscalls), one per CPU (ftrace), one for the kernel log ------------
function makeLane(kind, label, n) {
  return {kind, label, items: new Int32Array(n), ts: new Float64Array(n), n: 0, maxDur: 0, P: null, E: null};
}
const lanes = [];
const sysLanes = D.sys.lanes.map((l) => makeLane("sys", l[2], 0));
{
  const counts = new Int32Array(sysLanes.length);
  for (let i = 0; i < nSys; i++) counts[sys.lane[i]]++;
  sysLanes.forEach((l, j) => { l.items = new Int32Array(counts[j]); l.ts = new Float64Array(counts[j]); });
  for (let i = 0; i < nSys; i++) {
    const l = sysLanes[sys.lane[i]];
    l.items[l.n] = i; l.ts[l.n++] = sys.ts[i];
    if (sys.dur[i] > l.maxDur) l.maxDur = sys.dur[i];
  }
}
const cpuLane = new Map();
const ftLanes = D.ft.cpus.map((c) => { const l = makeLane("ft", "ftrace CPU " + c, 0); cpuLane.set(c, l); return l; });
{
  const counts = new Map();
  for (let i = 0; i < nFt; i++) counts.set(ft.cpu[i], (counts.get(ft.cpu[i]) || 0) + 1);
  for (const [c, n] of counts) {
    if (!cpuLane.has(c)) { const l = makeLane("ft", "ftrace CPU " + c, 0); cpuLane.set(c, l); ftLanes.push(l); }
    const l = cpuLane.get(c); l.items = new Int32Array(n); l.ts = new Float64Array(n);
  }
  for (let i = 0; i < nFt; i++) { const l = cpuLane.get(ft.cpu[i]); l.items[l.n] = i; l.ts[l.n++] = ft.ts[i]; }
}
const dmLane = makeLane("dm", "kernel log", nDm);
for (let i = 0; i < nDm; i++) { dmLane.items[i] = i; dmLane.ts[i] = dm.ts[i]; }
dmLane.n = nDm;
lanes.push(...sysLanes, ...ftLanes);
if (nDm || D.dm.lostTotal !== undefined) lanes.push(dmLane);

// ---- search: one query filters the tables and the timeline --------------------------------------
let query = "", sysM = null, ftM = null, dmM = null;     // null: everything matches

function computeMatches(q) {
  query = q;
  if (!q) { sysM = ftM = dmM = null; }
  else {
    const sm = new Uint8Array(S.length);
    for (let i = 0; i < S.length; i++) if (S[i].toLowerCase().includes(q)) sm[i] = 1;
    const lm = Uint8Array.from(sysLaneLabel, (l) => l.toLowerCase().includes(q) ? 1 : 0);
    sysM = new Uint8Array(nSys);
    for (let i = 0; i < nSys; i++)
      sysM[i] = sm[sys.name[i]] | sm[sys.args[i]] | sm[sys.res[i]] | sm[sys.err[i]] | lm[sys.lane[i]];
    ftM = new Uint8Array(nFt);
    for (let i = 0; i < nFt; i++) ftM[i] = sm[ft.task[i]] | sm[ft.ev[i]] | sm[ft.text[i]];
    dmM = new Uint8Array(nDm);
    for (let i = 0; i < nDm; i++) dmM[i] = sm[dm.msg[i]] | sm[dm.fac[i]] | (LEVELS[dm.lvl[i]] === q ? 1 : 0);
  }
  for (const l of lanes) {
    const M = l.kind === "sys" ? sysM : l.kind === "ft" ? ftM : dmM;
    l.M = M;
    l.P = null;
    if (M) {
      l.P = new Int32Array(l.n + 1);
      for (let k = 0; k < l.n; k++) l.P[k + 1] = l.P[k] + M[l.items[k]];
    }
    if (l.kind === "sys") {
      l.E = new Int32Array(l.n + 1);
      for (let k = 0; k < l.n; k++) {
        const i = l.items[k];
        l.E[k + 1] = l.E[k] + (sys.err[i] && (!M || M[i]) ? 1 : 0);
      }
    }
  }
}
const laneCount = (l, lo, hi) => l.P ? l.P[hi] - l.P[lo] : hi - lo;
const laneOk = (l, k) => !l.M || l.M[l.items[k]] === 1;

// ---- time --------------------------------------------------------------------------------------
function fmtDur(ns) {
  const a = Math.abs(ns);
  if (a >= 1e9) return (ns / 1e9).toFixed(a >= 1e11 ? 1 : 3) + " s";
  if (a >= 1e6) return (ns / 1e6).toFixed(3) + " ms";
  if (a >= 1e3) return (ns / 1e3).toFixed(3) + " µs";
  return ns + " ns";
}
const fmtTime = (ns) => (ns < 0 ? "-" : "+") + fmtDur(Math.abs(ns));
function lowerBound(a, x, lo = 0, hi = a.length) {
  while (lo < hi) { const m = (lo + hi) >>> 1; if (a[m] < x) lo = m + 1; else hi = m; }
  return lo;
}

// ---- timeline ----------------------------------------------------------------------------------
const canvas = document.getElementById("timeline"), ctx = canvas.getContext("2d");
const wrap = canvas.parentElement;
const sessionView = {a: 0, b: Math.max(D.end, MIN_SPAN)};
let allA = 0, allB = sessionView.b;
for (const l of lanes) if (l.n) { allA = Math.min(allA, l.ts[0]); allB = Math.max(allB, l.ts[l.n - 1] + l.maxDur); }
const view = {a: sessionView.a, b: sessionView.b};
let cssW = 0, plotW = 1, pending = false;

function resize() {
  const dpr = window.devicePixelRatio || 1;
  cssW = Math.max(canvas.clientWidth, LABEL_W + 100);
  plotW = cssW - LABEL_W;
  const cssH = AXIS_H + lanes.length * ROW_H + 2;
  canvas.style.height = cssH + "px";
  canvas.width = Math.round(cssW * dpr); canvas.height = Math.round(cssH * dpr);
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  draw();
}
const X = (t) => LABEL_W + (t - view.a) / (view.b - view.a) * plotW;
const T = (x) => view.a + (x - LABEL_W) / plotW * (view.b - view.a);

const hues = [];
function hue(i) { return hues[i] || (hues[i] = "hsl(" + ((i * 137) % 360) + ",60%,45%)"); }
const LONG_MAX = 20000;     // long slices drawn over a lane's buckets, at most

// per syscall lane: its slices, longest first (drawn as slices even when the lane is bucketed;
// one thread's calls do not overlap, so few of them are longer than 2 pixels)
for (const l of sysLanes) {
  const ks = [];
  for (let k = 0; k < l.n; k++) if (sys.dur[l.items[k]] > 0) ks.push(k);
  ks.sort((p, q) => sys.dur[l.items[q]] - sys.dur[l.items[p]]);
  l.byDur = Int32Array.from(ks);
}

function drawLane(l, y) {
  const nsPerPx = (view.b - view.a) / plotW, ts = l.ts;
  const lo = lowerBound(ts, view.a - l.maxDur), hi = lowerBound(ts, view.b + nsPerPx);
  const shown = laneCount(l, lo, hi);
  if (!shown) return;
  if (l.kind === "dm" || shown <= plotW / 2) {              // every item
    for (let k = lo; k < hi; k++) {
      if (!laneOk(l, k)) continue;
      const i = l.items[k];
      let x0 = X(ts[k]), w = 1;
      if (l.kind === "sys") {
        const d = sys.dur[i];
        w = sys.kind[i] ? 2 : Math.max(1, (d > 0 ? d : 0) / nsPerPx);
        if (x0 + w < LABEL_W) continue;
        ctx.fillStyle = sys.kind[i] ? KIND_COLORS[sys.kind[i]] : sys.err[i] ? "#d00" : hue(sys.name[i]);
      } else if (l.kind === "ft") {
        ctx.fillStyle = hue(ft.ev[i]);
      } else {
        ctx.fillStyle = LEVEL_COLORS[dm.lvl[i]]; w = 2; x0 -= 0.5;
      }
      if (x0 < LABEL_W) { w -= LABEL_W - x0; x0 = LABEL_W; }
      ctx.fillRect(x0, y + 2, Math.min(w, cssW - x0), ROW_H - 4);
    }
    return;
  }
  // per-pixel buckets: items starting in each pixel column, counted with binary searches,
  // written as pixels into the lane's rows of the bucket image (one drawImage for all lanes)
  let k = lowerBound(ts, view.a, lo, hi);
  const top = Math.max(1, Math.log2(1 + shown / plotW) + 2), row0 = (y - AXIS_H + 2) * bucketW;
  const rgb = l.kind === "sys" ? 0x33 | 0x66 << 8 | 0xcc << 16 : 0x22 | 0xaa << 8 | 0x88 << 16, red = 0xdd;
  for (let px = 0; px < bucketW && k < hi; px++) {
    const k2 = lowerBound(ts, view.a + (px + 1) * nsPerPx, k, hi);
    const c = laneCount(l, k, k2);
    if (c) {
      const errs = l.E ? l.E[k2] - l.E[k] : 0;
      const alpha = Math.round(255 * Math.min(1, 0.35 + Math.log2(1 + c) / top));
      const v = ((errs ? red : rgb) | alpha << 24) >>> 0;
      for (let r = 0, o = row0 + px; r < ROW_H - 4; r++, o += bucketW) bucketPixels[o] = v;
    }
    k = k2;
  }
  l.bucketed = true;
}

/** Over a bucketed syscall lane: its slices longer than 2 pixels (a thread's calls do not
 * overlap, so there are few), the failed ones red. */
function drawLongSlices(l, y) {
  const nsPerPx = (view.b - view.a) / plotW, ts = l.ts;
  ctx.globalAlpha = 0.6;
  for (let j = 0; j < l.byDur.length && j < LONG_MAX; j++) {
    const k = l.byDur[j], i = l.items[k], d = sys.dur[i];
    if (d < 2 * nsPerPx) break;
    if (ts[k] > view.b || ts[k] + d < view.a || !laneOk(l, k)) continue;
    ctx.fillStyle = sys.err[i] ? "#d00" : "#36c";
    ctx.fillRect(X(ts[k]), y + 4, d / nsPerPx, ROW_H - 8);
  }
  ctx.globalAlpha = 1;
}

let bucketCanvas = null, bucketImage = null, bucketPixels = null, bucketW = 1;
function bucketBuffer(w, h) {
  bucketW = w;
  if (!bucketCanvas || bucketCanvas.width !== w || bucketCanvas.height !== h) {
    bucketCanvas = document.createElement("canvas");
    bucketCanvas.width = w; bucketCanvas.height = h;
    bucketImage = bucketCanvas.getContext("2d").createImageData(w, h);
    bucketPixels = new Uint32Array(bucketImage.data.buffer);
  } else {
    bucketPixels.fill(0);
  }
}

function niceStep(span, px) {
  const raw = span / Math.max(1, px / 110), p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

function draw() {
  pending = false;
  const h = AXIS_H + lanes.length * ROW_H + 2;
  ctx.clearRect(0, 0, cssW, h);
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, cssW, h);
  ctx.font = "11px system-ui, sans-serif"; ctx.textBaseline = "middle";
  lanes.forEach((l, j) => {
    const y = AXIS_H + j * ROW_H;
    ctx.fillStyle = j % 2 ? "#f6f6f6" : "#ffffff"; ctx.fillRect(0, y, cssW, ROW_H);
    ctx.fillStyle = l.kind === "sys" ? "#234" : l.kind === "ft" ? "#063" : "#600";
    ctx.fillText(l.label.length > 28 ? l.label.slice(0, 27) + "…" : l.label, 4, y + ROW_H / 2, LABEL_W - 8);
  });
  ctx.save(); ctx.beginPath(); ctx.rect(LABEL_W, 0, plotW, h); ctx.clip();
  bucketBuffer(Math.max(1, Math.floor(plotW)), lanes.length * ROW_H);
  lanes.forEach((l, j) => { l.bucketed = false; drawLane(l, AXIS_H + j * ROW_H); });
  bucketCanvas.getContext("2d").putImageData(bucketImage, 0, 0);
  ctx.drawImage(bucketCanvas, LABEL_W, AXIS_H);
  lanes.forEach((l, j) => { if (l.bucketed && l.byDur) drawLongSlices(l, AXIS_H + j * ROW_H); });
  // the axis
  const step = niceStep(view.b - view.a, plotW);
  ctx.fillStyle = "#eee"; ctx.fillRect(LABEL_W, 0, plotW, AXIS_H);
  ctx.fillStyle = "#333"; ctx.strokeStyle = "#888";
  for (let t = Math.ceil(view.a / step) * step; t <= view.b; t += step) {
    const x = Math.round(X(t)) + 0.5;
    ctx.beginPath(); ctx.moveTo(x, AXIS_H - 6); ctx.lineTo(x, AXIS_H); ctx.stroke();
    ctx.fillText(fmtTime(t), x + 3, AXIS_H / 2 - 1);
  }
  ctx.restore();
  document.getElementById("view-range").textContent =
    fmtTime(view.a) + " … " + fmtTime(view.b) + " (" + fmtDur(view.b - view.a) + ")";
}
function redraw() { if (!pending) { pending = true; requestAnimationFrame(draw); } }

function setView(a, b) {
  if (b - a < MIN_SPAN) { const c = (a + b) / 2; a = c - MIN_SPAN / 2; b = c + MIN_SPAN / 2; }
  view.a = a; view.b = b;
  redraw();
}
function zoomAt(t, factor) { setView(t - (t - view.a) * factor, t + (view.b - t) * factor); }

canvas.addEventListener("wheel", (e) => {
  e.preventDefault();
  const x = e.offsetX;
  zoomAt(x >= LABEL_W ? T(x) : (view.a + view.b) / 2, e.deltaY > 0 ? 1.25 : 0.8);
}, {passive: false});
let drag = null;
canvas.addEventListener("mousedown", (e) => { drag = {x: e.clientX, a: view.a, b: view.b, moved: false}; });
window.addEventListener("mousemove", (e) => {
  if (!drag) return;
  const dx = e.clientX - drag.x;
  if (Math.abs(dx) > 3) drag.moved = true;
  if (drag.moved) { const dt = dx / plotW * (drag.b - drag.a); setView(drag.a - dt, drag.b - dt); }
});
window.addEventListener("mouseup", (e) => {
  if (!drag) return;
  const click = !drag.moved;
  drag = null;
  if (click && e.target === canvas) {
    const r = canvas.getBoundingClientRect();
    const hit = itemAt(e.clientX - r.left, e.clientY - r.top);
    if (hit) showDetails(hit.kind, hit.index);
  }
});
document.getElementById("zoom-in").onclick = () => zoomAt((view.a + view.b) / 2, 0.5);
document.getElementById("zoom-out").onclick = () => zoomAt((view.a + view.b) / 2, 2);
document.getElementById("zoom-session").onclick = () => setView(sessionView.a, sessionView.b);
document.getElementById("zoom-all").onclick = () => setView(allA, allB);
window.addEventListener("resize", resize);

function itemEnd(l, k) { return l.kind === "sys" ? l.ts[k] + Math.max(0, sys.dur[l.items[k]]) : l.ts[k]; }

/** The item drawn at canvas position (x, y) in CSS pixels: {kind, index} or null. */
function itemAt(x, y) {
  const j = Math.floor((y - AXIS_H) / ROW_H);
  if (j < 0 || j >= lanes.length || x < LABEL_W) return null;
  const l = lanes[j], t = T(x), tol = 4 * (view.b - view.a) / plotW;
  let right = lowerBound(l.ts, t), left = right - 1;
  for (let s = 0; left >= 0 && !laneOk(l, left) && s < 100000; s++) left--;
  for (let s = 0; right < l.n && !laneOk(l, right) && s < 100000; s++) right++;
  let best = -1, dist = Infinity;
  if (left >= 0 && laneOk(l, left)) {
    const d = Math.max(0, t - itemEnd(l, left));
    if (d <= tol) { best = left; dist = d; }
  }
  if (right < l.n && laneOk(l, right)) {
    const d = l.ts[right] - t;
    if (d <= tol && d < dist) best = right;
  }
  return best < 0 ? null : {kind: l.kind, index: l.items[best]};
}

/** Bring an item into view (zoomed around it, its lane scrolled into view); its {x, y}. */
function reveal(kind, index) {
  const ts = kind === "sys" ? sys.ts : kind === "ft" ? ft.ts : dm.ts;
  const t = ts[index], d = kind === "sys" ? Math.max(0, sys.dur[index]) : 0;
  const j = lanes.findIndex((l) => l.kind === kind && (
    kind === "sys" ? l === sysLanes[sys.lane[index]] : kind === "ft" ? l === cpuLane.get(ft.cpu[index]) : true));
  const span = Math.max(d * 4, 20000);
  view.a = t + d / 2 - span / 2; view.b = view.a + span;
  draw();
  const y = AXIS_H + j * ROW_H + ROW_H / 2;
  if (y < wrap.scrollTop || y > wrap.scrollTop + wrap.clientHeight) wrap.scrollTop = y - wrap.clientHeight / 2;
  return {x: X(t + d / 2), y, lane: j};
}

// ---- details -----------------------------------------------------------------------------------
const detailsEl = document.getElementById("details");
function describe(kind, i) {
  const at = (t) => fmtTime(t) + "  (CLOCK_MONOTONIC " + (D.start + t) + " ns)";
  const thread = (i) => sysLaneLabel[sys.lane[i]] + "  (pid " + D.sys.lanes[sys.lane[i]][0] +
    ", tid " + D.sys.lanes[sys.lane[i]][1] + ")";
  if (kind === "sys" && sys.kind[i]) {
    return [S[sys.args[i]], "", "event     " + S[sys.name[i]], "thread    " + thread(i),
            "time      " + at(sys.ts[i])].join("\n");
  }
  if (kind === "sys") {
    const err = sys.err[i] ? S[sys.err[i]] : null, dur = sys.dur[i];
    return [S[sys.name[i]] + "(" + S[sys.args[i]] + ") = " + S[sys.res[i]],
            "", "syscall   " + S[sys.name[i]], "thread    " + thread(i),
            "time      " + at(sys.ts[i]), "duration  " + (dur < 0 ? "did not return" : fmtDur(dur)),
            "args      " + S[sys.args[i]], "result    " + S[sys.res[i]],
            "status    " + (err ? "FAILED: " + err : "ok")].join("\n");
  }
  if (kind === "ft") {
    return [S[ft.text[i]], "", "event     " + S[ft.ev[i]], "cpu       " + ft.cpu[i],
            "task      " + S[ft.task[i]], "time      " + at(ft.ts[i])].join("\n");
  }
  return [S[dm.msg[i]], "", "level     " + LEVELS[dm.lvl[i]] + " (" + dm.lvl[i] + ")",
          "facility  " + S[dm.fac[i]], "time      " + at(dm.ts[i])].join("\n");
}
function showDetails(kind, i) {
  detailsEl.textContent = describe(kind, i);
  detailsEl.dataset.kind = kind; detailsEl.dataset.index = String(i);
}

// ---- tables ------------------------------------------------------------------------------------
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
/** A paginated table: columns [{title, cls, get(row)}], rows any array. */
function Table(id, columns, opts) {
  const root = document.getElementById(id), pager = el("div", null, "pager"), table = el("table");
  const thead = el("thead"), tbody = el("tbody"), tfoot = el("tfoot"), hr = el("tr");
  for (const c of columns) hr.appendChild(el("th", c.title, c.cls));
  thead.appendChild(hr); table.append(thead, tbody, tfoot); root.append(pager, table);
  const self = {rows: [], page: 0, root};
  function button(label, fn) { const b = el("button", label); b.type = "button"; b.onclick = fn; return b; }
  self.render = function () {
    const n = self.rows.length, pages = Math.max(1, Math.ceil(n / PAGE));
    self.page = Math.min(self.page, pages - 1);
    const from = self.page * PAGE, to = Math.min(n, from + PAGE);
    tbody.textContent = "";
    for (let r = from; r < to; r++) {
      const row = self.rows[r], tr = el("tr", null, opts.rowClass ? opts.rowClass(row) : "");
      for (const c of columns) tr.appendChild(el("td", c.get(row), c.cls));
      if (opts.onClick) tr.onclick = () => opts.onClick(row);
      tbody.appendChild(tr);
    }
    tfoot.textContent = "";
    for (const cells of (opts.footer ? opts.footer() : [])) {
      const tr = el("tr", null, "total");
      cells.forEach((v, j) => tr.appendChild(el("td", v, columns[j] && columns[j].cls)));
      tfoot.appendChild(tr);
    }
    pager.textContent = "";
    if (pages > 1) pager.append(button("«", () => { self.page = 0; self.render(); }),
                                button("‹", () => { self.page--; self.render(); }));
    pager.append(el("span", n ? "rows " + (from + 1) + "–" + to + " of " + n : "no rows", "rows"));
    if (pages > 1) pager.append(" ", button("›", () => { self.page++; self.render(); }),
                                button("»", () => { self.page = pages - 1; self.render(); }));
  };
  self.set = function (rows) { self.rows = rows; self.page = 0; self.render(); };
  return self;
}
function matched(n, M) {
  if (!M) { const a = new Int32Array(n); for (let i = 0; i < n; i++) a[i] = i; return a; }
  let c = 0; for (let i = 0; i < n; i++) c += M[i];
  const a = new Int32Array(c); let j = 0;
  for (let i = 0; i < n; i++) if (M[i]) a[j++] = i;
  return a;
}
function goTo(kind, i) { showDetails(kind, i); reveal(kind, i); }
const N = "num", TXT = "text";

let sysAgg = [];
const sysSummary = Table("syscall-summary", [
  {title: "process", get: (r) => r.proc}, {title: "syscall", get: (r) => r.name, cls: "name"},
  {title: "calls", cls: N, get: (r) => r.count}, {title: "errors", cls: N, get: (r) => r.errors},
  {title: "total", cls: N, get: (r) => fmtDur(r.total)}, {title: "avg", cls: N, get: (r) => fmtDur(Math.round(r.total / Math.max(1, r.timed)))},
  {title: "max", cls: N, get: (r) => fmtDur(r.max)}], {
  rowClass: (r) => r.errors ? "error" : "",
  footer: () => {
    let c = 0, e = 0, t = 0, m = 0, timed = 0;
    for (const r of sysAgg) { c += r.count; e += r.errors; t += r.total; m = Math.max(m, r.max); timed += r.timed; }
    return [["all", sysAgg.length + " kinds", c, e, fmtDur(t), fmtDur(Math.round(t / Math.max(1, timed))), fmtDur(m)]];
  }});
const sysTable = Table("syscalls", [
  {title: "time", cls: N, get: (i) => fmtTime(sys.ts[i])}, {title: "thread", get: (i) => sysLaneLabel[sys.lane[i]]},
  {title: "syscall", cls: "name", get: (i) => sys.kind[i] ? "" : S[sys.name[i]]},
  {title: "arguments", cls: TXT, get: (i) => S[sys.args[i]]},
  {title: "result", cls: "result", get: (i) => S[sys.res[i]]},
  {title: "duration", cls: N, get: (i) => sys.dur[i] < 0 || sys.kind[i] ? "-" : fmtDur(sys.dur[i])}],
  {rowClass: (i) => sys.err[i] ? "error" : "", onClick: (i) => goTo("sys", i)});

let ftRows = [];
const ftSummary = Table("ftrace-summary", [{title: "event", get: (r) => r[0]},
  ...ftLanes.map((l, j) => ({title: "CPU " + l.label.split(" ").pop(), cls: N, get: (r) => r[1][j]})),
  {title: "total", cls: N, get: (r) => r[2]}], {
  footer: () => {
    const total = ftRows.reduce((s, r) => s + r[2], 0);
    const perCpu = ftLanes.map((l, j) => ftRows.reduce((s, r) => s + r[1][j], 0));
    const cpuIndex = (c) => ftLanes.findIndex((l) => l.label === "ftrace CPU " + c);
    const lost = ftLanes.map(() => 0), lostRec = ftLanes.map(() => 0);
    D.ft.cpus.forEach((c, j) => { lost[cpuIndex(c)] = D.ft.lost[j]; lostRec[cpuIndex(c)] = D.ft.lostRecords[j]; });
    const sum = (a) => a.reduce((s, v) => s + v, 0);
    return [["all events", ...perCpu, total],
            ["lost (ring buffer, ftrace/meta.json)", ...lost, sum(lost)],
            ["lost (records in the stream)", ...lostRec, sum(lostRec)],
            ["lost (session state)", ...ftLanes.map(() => ""), D.ft.lostTotal]];
  }});
const ftTable = Table("ftrace-events", [
  {title: "time", cls: N, get: (i) => fmtTime(ft.ts[i])}, {title: "cpu", cls: N, get: (i) => ft.cpu[i]},
  {title: "task", get: (i) => S[ft.task[i]]}, {title: "event", get: (i) => S[ft.ev[i]]},
  {title: "text", cls: TXT, get: (i) => S[ft.text[i]]}], {onClick: (i) => goTo("ft", i)});
const dmTable = Table("dmesg", [
  {title: "level", cls: "level", get: (i) => LEVELS[dm.lvl[i]]}, {title: "time", cls: N, get: (i) => fmtTime(dm.ts[i])},
  {title: "facility", get: (i) => S[dm.fac[i]]}, {title: "message", cls: TXT, get: (i) => S[dm.msg[i]]}],
  {rowClass: (i) => "lvl-" + dm.lvl[i], onClick: (i) => goTo("dm", i)});

function fillTables() {
  // syscalls: per process and syscall
  const agg = new Map(), sysRows = matched(nSys, sysM);
  let errors = 0;
  let calls = 0;
  for (const i of sysRows) {
    if (sys.kind[i]) continue;
    calls++;
    const pid = D.sys.lanes[sys.lane[i]][0], key = pid + "\u0000" + sys.name[i];
    let r = agg.get(key);
    if (!r) agg.set(key, r = {proc: pidLabel.get(pid), name: S[sys.name[i]], count: 0, errors: 0, total: 0, max: 0, timed: 0});
    r.count++;
    if (sys.err[i]) { r.errors++; errors++; }
    const d = sys.dur[i];
    if (d >= 0) { r.total += d; r.timed++; if (d > r.max) r.max = d; }
  }
  sysAgg = [...agg.values()].sort((a, b) => b.total - a.total || b.count - a.count);
  document.getElementById("syscall-count").textContent = calls;
  document.getElementById("syscall-errors").textContent = errors;
  sysSummary.set(sysAgg);
  sysTable.set(sysRows);
  // ftrace: events per CPU
  const ftRowsIdx = matched(nFt, ftM), byEv = new Map(), laneIx = new Map(ftLanes.map((l, j) => [l, j]));
  for (const i of ftRowsIdx) {
    let r = byEv.get(ft.ev[i]);
    if (!r) byEv.set(ft.ev[i], r = [S[ft.ev[i]], ftLanes.map(() => 0), 0]);
    r[1][laneIx.get(cpuLane.get(ft.cpu[i]))]++; r[2]++;
  }
  ftRows = [...byEv.values()].sort((a, b) => b[2] - a[2]);
  document.getElementById("ftrace-count").textContent = ftRowsIdx.length;
  ftSummary.set(ftRows);
  ftTable.set(ftRowsIdx);
  // the kernel log: most severe first, then in time order
  const before = document.getElementById("dmesg-before").checked;
  const dmAll = matched(nDm, dmM), dmRows = Array.from(before ? dmAll : dmAll.filter((i) => dm.ts[i] >= 0))
    .sort((a, b) => dm.lvl[a] - dm.lvl[b] || a - b);
  document.getElementById("dmesg-hidden").textContent = before ? "" :
    "(" + (dmAll.length - dmRows.length) + " from before the session not shown)";
  const perLevel = LEVELS.map(() => 0);
  for (const i of dmRows) perLevel[dm.lvl[i]]++;
  document.getElementById("dmesg-count").textContent = dmRows.length;
  document.getElementById("dmesg-levels").textContent =
    LEVELS.map((n, j) => perLevel[j] ? n + " " + perLevel[j] : "").filter(Boolean).join(" · ") +
    (D.dm.lostTotal ? " · lost " + D.dm.lostTotal : "");
  dmTable.set(dmRows);
  const total = nSys + nFt + nDm, shown = sysRows.length + ftRowsIdx.length + dmRows.length;
  const status = document.getElementById("search-status");
  status.dataset.query = query;
  status.textContent = query ? shown + " of " + total + " items match" : total + " items";
}

const search = document.getElementById("search");
let searchTimer = 0;
function applySearch() {
  computeMatches(search.value.trim().toLowerCase());
  fillTables();
  redraw();
}
document.getElementById("dmesg-before").addEventListener("change", fillTables);
search.addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(applySearch, 150); });

computeMatches("");
fillTables();
resize();

window.boardtraceReport = {
  data: D, lanes, view, itemAt, reveal, showDetails, setView, draw, applySearch,
  laneOf: (kind, index) => lanes.indexOf(kind === "sys" ? sysLanes[sys.lane[index]] : kind === "ft" ? cpuLane.get(ft.cpu[index]) : dmLane),
  findSyscall: (name, text) => {    // also a signal or an end: name "signal", "exited" or "killed"
    for (let i = 0; i < nSys; i++) if (S[sys.name[i]] === name && S[sys.args[i]].includes(text)) return i;
    return -1;
  },
  findDmesg: (text) => {        // the first record of the session with this message
    for (let i = 0; i < nDm; i++) if (dm.ts[i] >= 0 && S[dm.msg[i]] === text) return i;
    return -1;
  },
  loadMs: performance.now() - started,
};
document.body.dataset.ready = "1";
})();
