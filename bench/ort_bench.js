#!/usr/bin/env node
/*
 * ort_bench.js MODEL.onnx [--threads 2] [-n 30] [--warmup 3] [--input FILE] [--json]
 *              [--precision fp32|int8] [--ort-dir DIR] [--optimized-model FILE]
 *              [--check DIR --tag NAME [--ref TAG,...]]
 *
 * ONNX Runtime (the npm package onnxruntime-node, CPU execution provider) latency of an
 * exported BlazeNeo model (export_onnx.py; qdq_onnx.py for INT8): the ORT side of compare.py.
 *
 * Session: intraOpNumThreads = --threads, interOpNumThreads = 1, graphOptimizationLevel 'all'
 * (every fusion, including the QDQ -> QLinearConv ones and the NCHWc layout), executionMode
 * 'sequential'. Batch 1; the input is FILE (raw little-endian float32, 1x3xSxS; compare.py
 * passes the tensor pytorch_bench.py times, torch.randn with seed 0) or, without --input, a
 * fixed pseudo-random normal tensor (seed 0). -n timed runs of session.run after --warmup
 * untimed ones, each timed from the call to the resolved promise. Prints the JSON object
 * pytorch_bench.py prints (min/median/mean/p90/p99/max in ms with numpy's linear percentiles,
 * fps = 1000 / median, peak_rss_mb = VmHWM of /proc/self/status in MiB, read right after
 * the timed runs: this process's own high-water mark, since Linux carries maxRSS across exec
 * and it would include the RSS of the Python script that started node), plus the ORT
 * settings and version.
 *
 * --check DIR: afterwards runs every DIR/in_K.bin (export_onnx.py --check-dir), writes the
 * logits to DIR/NAME_K.bin (--tag NAME), and compares them with DIR/TAG_K.bin for every
 * --ref TAG present (e.g. torch, ort-fp32): max and mean |difference| of the logits and the
 * share of pixels whose argmax class (first maximum on ties, as torch.argmax) agrees.
 * --optimized-model FILE: ORT writes the graph it runs there (after its fusions).
 *
 * ORT is loaded from --ort-dir DIR (DIR/node_modules/onnxruntime-node; default $BZN_ORT_DIR,
 * else build/ort in the repository), where compare.py --ort installs it:
 *     npm install --ignore-scripts --prefix build/ort onnxruntime-node@1.30.0
 */
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');

/* VmHWM of /proc/self/status in MiB (this process's peak RSS), or null without /proc */
function vmHwmMiB() {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) / 1024 : null;
  } catch (e) {
    return null;
  }
}

function usage(code) {
  const text = fs.readFileSync(__filename, 'utf8').split('\n');
  const lines = [];
  for (let i = text.indexOf('/*') + 1; i > 0 && i < text.length && !text[i].startsWith(' */'); i++) {
    lines.push(text[i].replace(/^ \* ?/, ''));
  }
  (code ? process.stderr : process.stdout).write(lines.join('\n') + '\n');
  process.exit(code);
}

function parseArgs(argv) {
  const a = {threads: 2, n: 30, warmup: 3, input: null, json: false, precision: null, check: null, tag: null,
             ref: [], optimized: null, size: null,
             ortDir: process.env.BZN_ORT_DIR || path.join(__dirname, '..', 'build', 'ort'), model: null};
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) { process.stderr.write('ort_bench: ' + k + ' needs a value\n'); process.exit(2); }
      return argv[++i];
    };
    const int = (min) => {
      const s = val(), v = Number(s);
      if (!Number.isInteger(v) || v < min) { process.stderr.write('ort_bench: ' + k + ' ' + s + ': need an integer >= ' + min + '\n'); process.exit(2); }
      return v;
    };
    if (k === '-h' || k === '--help') usage(0);
    else if (k === '--threads' || k === '-t') a.threads = int(1);
    else if (k === '-n') a.n = int(1);
    else if (k === '--warmup') a.warmup = int(0);
    else if (k === '--input') a.input = val();
    else if (k === '--json') a.json = true;
    else if (k === '--precision') a.precision = val();
    else if (k === '--ort-dir') a.ortDir = val();
    else if (k === '--optimized-model') a.optimized = val();
    else if (k === '--check') a.check = val();
    else if (k === '--tag') a.tag = val();
    else if (k === '--ref') a.ref = val().split(',').filter((x) => x);
    else if (k.startsWith('-')) { process.stderr.write('ort_bench: unknown option ' + k + ' (see --help)\n'); process.exit(2); }
    else if (a.model === null) a.model = k;
    else { process.stderr.write('ort_bench: one model only\n'); process.exit(2); }
  }
  if (!a.model) usage(2);
  if (a.check && !a.tag) { process.stderr.write('ort_bench: --check needs --tag\n'); process.exit(2); }
  return a;
}

// numpy.percentile's default (linear interpolation between the two nearest ranks)
function percentile(sorted, p) {
  const pos = (sorted.length - 1) * p / 100;
  const lo = Math.floor(pos), hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

// mulberry32 + Box-Muller: a fixed standard normal tensor without --input
function randomNormal(count, seed) {
  let s = seed >>> 0;
  const u = () => {
    s = (s + 0x6D2B79F5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
  const out = new Float32Array(count);
  for (let i = 0; i < count; i += 2) {
    const r = Math.sqrt(-2 * Math.log(u())), th = 2 * Math.PI * u();
    out[i] = r * Math.cos(th);
    if (i + 1 < count) out[i + 1] = r * Math.sin(th);
  }
  return out;
}

function readF32(file, count) {
  const buf = fs.readFileSync(file);
  if (count !== null && buf.length !== count * 4) {
    throw new Error(file + ': ' + buf.length + ' bytes, expected ' + count * 4 + ' (float32 1x3xSxS)');
  }
  const out = new Float32Array(buf.length / 4);
  Buffer.from(out.buffer).set(buf);
  return out;
}

function cpuModel() {
  try {
    const m = fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.*)$/m);
    if (m) return m[1].trim();
  } catch (e) { /* not Linux */ }
  const c = os.cpus();
  return c.length ? c[0].model : 'unknown';
}

function compareLogits(a, b, dims) {
  // a, b: Float32Array 1xCxHxW
  const C = dims[1], HW = dims[2] * dims[3];
  let maxd = 0, sumd = 0, agree = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (d > maxd || Number.isNaN(d)) maxd = Number.isNaN(d) ? Infinity : d;
    sumd += d;
  }
  for (let p = 0; p < HW; p++) {
    let ia = 0, ib = 0;
    for (let c = 1; c < C; c++) {
      if (a[c * HW + p] > a[ia * HW + p]) ia = c;
      if (b[c * HW + p] > b[ib * HW + p]) ib = c;
    }
    if (ia === ib) agree++;
  }
  return {maxd, sumd, agree, values: a.length, pixels: HW};
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const modDir = path.resolve(a.ortDir, 'node_modules', 'onnxruntime-node');
  if (!fs.existsSync(modDir)) {
    process.stderr.write('ort_bench: no onnxruntime-node in ' + a.ortDir + '/node_modules: install it with\n' +
                         '  npm install --ignore-scripts --prefix ' + a.ortDir + ' onnxruntime-node@1.30.0\n');
    process.exit(1);
  }
  const ort = require(modDir);
  const ortVersion = JSON.parse(fs.readFileSync(path.join(modDir, 'package.json'), 'utf8')).version;
  const opts = {
    executionProviders: ['cpu'],
    intraOpNumThreads: a.threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
  };
  if (a.optimized) opts.optimizedModelFilePath = path.resolve(a.optimized);
  const t0 = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(a.model, opts);
  const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
  const inName = session.inputNames[0], outName = session.outputNames[0];
  let dims = null;
  try {
    const meta = session.inputMetadata && session.inputMetadata[0];
    if (meta && meta.shape) dims = meta.shape.map(Number);
  } catch (e) { /* older API */ }
  if (!dims || dims.length !== 4 || dims.some((d) => !(d > 0))) {
    process.stderr.write('ort_bench: cannot read a fixed 1x3xSxS input shape from the model\n');
    process.exit(1);
  }
  const count = dims.reduce((x, y) => x * y, 1);
  const data = a.input ? readF32(a.input, count) : randomNormal(count, 0);
  const feeds = {[inName]: new ort.Tensor('float32', data, dims)};

  for (let i = 0; i < a.warmup; i++) await session.run(feeds);
  const times = [];
  for (let i = 0; i < a.n; i++) {
    const s = process.hrtime.bigint();
    await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  const peakRss = vmHwmMiB() ?? process.resourceUsage().maxRSS / 1024;     // kilobytes -> MiB
  const sorted = times.slice().sort((x, y) => x - y);
  const median = percentile(sorted, 50);
  const r3 = (x) => Math.round(x * 1000) / 1000;
  const precision = a.precision || (/int8|qdq/i.test(path.basename(a.model)) ? 'int8' : 'fp32');
  const res = {
    what: 'onnxruntime-' + precision + '-main',
    precision,
    model: path.basename(a.model),
    size: dims[2],
    threads: a.threads,
    runs: a.n,
    warmup: a.warmup,
    min_ms: r3(sorted[0]),
    median_ms: r3(median),
    mean_ms: r3(times.reduce((x, y) => x + y, 0) / times.length),
    p90_ms: r3(percentile(sorted, 90)),
    p99_ms: r3(percentile(sorted, 99)),
    max_ms: r3(sorted[sorted.length - 1]),
    fps: Math.round(100000 / median) / 100,
    peak_rss_mb: Math.round(peakRss * 10) / 10,
    load_ms: Math.round(loadMs * 10) / 10,
    onnxruntime: ortVersion,
    node: process.version,
    intra_op_threads: a.threads,
    inter_op_threads: 1,
    graph_optimization_level: 'all',
    execution_mode: 'sequential',
    input: a.input ? path.resolve(a.input) : 'random normal, seed 0 (mulberry32)',
    machine: os.arch() === 'x64' ? 'x86_64' : os.arch(),
    cpu: cpuModel(),
    nproc: os.cpus().length,
  };

  if (a.check) {
    const acc = {};
    let k = 0;
    for (; fs.existsSync(path.join(a.check, 'in_' + k + '.bin')); k++) {
      const x = readF32(path.join(a.check, 'in_' + k + '.bin'), count);
      const out = (await session.run({[inName]: new ort.Tensor('float32', x, dims)}))[outName];
      const y = out.data;
      fs.writeFileSync(path.join(a.check, a.tag + '_' + k + '.bin'), Buffer.from(y.buffer, y.byteOffset, y.byteLength));
      for (const ref of a.ref) {
        const f = path.join(a.check, ref + '_' + k + '.bin');
        if (!fs.existsSync(f)) continue;
        const c = compareLogits(y, readF32(f, y.length), out.dims.map(Number));
        const t = acc[ref] || (acc[ref] = {maxd: 0, sumd: 0, agree: 0, values: 0, pixels: 0, images: 0});
        t.maxd = Math.max(t.maxd, c.maxd);
        t.sumd += c.sumd; t.agree += c.agree; t.values += c.values; t.pixels += c.pixels; t.images++;
      }
    }
    res.check = {dir: path.resolve(a.check), images: k, against: {}};
    for (const [ref, t] of Object.entries(acc)) {
      res.check.against[ref] = {images: t.images, max_abs_diff: t.maxd, mean_abs_diff: t.sumd / t.values,
                                argmax_agreement: t.agree / t.pixels, pixels: t.pixels};
    }
  }

  if (a.json) {
    process.stdout.write(JSON.stringify(res) + '\n');
  } else {
    process.stdout.write('ONNX Runtime ' + ortVersion + ' ' + precision + ', ' + res.model + ', ' + dims[2] + 'x' + dims[3] +
                         ', ' + a.threads + ' intra-op thread(s), ' + a.n + ' runs (+' + a.warmup + ' warm-up)\n');
    process.stdout.write('  min ' + res.min_ms.toFixed(2) + ' ms  median ' + res.median_ms.toFixed(2) + ' ms  mean ' +
                         res.mean_ms.toFixed(2) + ' ms  p90 ' + res.p90_ms.toFixed(2) + ' ms  max ' + res.max_ms.toFixed(2) +
                         ' ms  ->  ' + res.fps.toFixed(1) + ' FPS\n');
    process.stdout.write('  peak RSS ' + res.peak_rss_mb.toFixed(1) + ' MB; session created in ' + res.load_ms.toFixed(0) +
                         ' ms; ' + res.cpu + ', ' + res.nproc + ' CPUs\n');
    if (res.check) {
      for (const [ref, t] of Object.entries(res.check.against)) {
        process.stdout.write('  vs ' + ref + ' (' + t.images + ' images): max |diff| ' + t.max_abs_diff.toExponential(3) +
                             ', mean ' + t.mean_abs_diff.toExponential(3) + ', argmax agreement ' +
                             (100 * t.argmax_agreement).toFixed(3) + '%\n');
      }
    }
  }
}

main().catch((e) => {
  process.stderr.write('ort_bench: ' + (e && e.stack ? e.stack : e) + '\n');
  process.exit(1);
});
