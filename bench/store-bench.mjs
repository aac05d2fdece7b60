// store-bench.mjs: the TinyBase 10.0.1 side of bench/run
//
// Runs one benchmark case against createMergeableStore and prints
//
//     RESULT <value>
//
// on stdout (plus "INFO ..." lines on stderr), doing the same work as
// store-bench.c does through tinysync. Run with
//
//     node --expose-gc --max-old-space-size=8192 store-bench.mjs \
//         --case KIND --cells N [--reps R] [--content FILE]
//
// Kinds (N cells = N/10 rows of ten cells c0..c9 in table "t"):
//   set_cell      store.setCell() one at a time, each its own transaction
//                 (cells/s)
//   set_tables    store.setTables() of a prebuilt object: one transaction
//                 (cells/s)
//   memory        heapUsed + external growth (after gc) for building an
//                 N-cell store with setTables(), divided by N (bytes/cell)
//   get_content   the encoded getMergeableContent (store.__[1], the form
//                 synchronizers send) + JSON.stringify (ms)
//   load_content  JSON.parse of FILE's text + the encoded
//                 setMergeableContent (store.__[3]) into a new store (ms)
//
// SPDX-License-Identifier: MIT

import { readFileSync } from 'node:fs';
import { createMergeableStore } from 'tinybase';

const TABLE_ID = 't';
const CELLS_PER_ROW = 10;
const CELL_IDS = Array.from({ length: CELLS_PER_ROW }, (_, j) => `c${j}`);
const COLOURS = ['red', 'green', 'blue', 'amber'];

// ---- The data (keep in sync with cell_number()/cell_string() in store-bench.c)

const cellNumber = (i, j) => {
  switch (j) {
    case 0: return i;
    case 2: return (i % 1000) / 8;
    case 4: return -(i % 97) || 0; // -0 is 0 in JSON; keep it a plain 0
    case 6: return i * 1.5;
    default: return (i * 7919) % 100000;
  }
};

const cellString = (i, j) => {
  switch (j) {
    case 1: return `name${i}`;
    case 3: return COLOURS[i % 4];
    case 5: return `user-${i % 5000}`;
    case 7: return `x${i % 10}`;
    default: return `note ${i} ok`;
  }
};

const cellValue = (i, j) => (j % 2 == 0 ? cellNumber(i, j) : cellString(i, j));

// Ids and values made up front, so that timed loops only call the store
const makeData = (rows) => {
  const rowIds = new Array(rows);
  const values = new Array(rows * CELLS_PER_ROW);
  for (let i = 0; i < rows; i++) {
    rowIds[i] = `r${i}`;
    for (let j = 0; j < CELLS_PER_ROW; j++) {
      values[i * CELLS_PER_ROW + j] = cellValue(i, j);
    }
  }
  return { rows, rowIds, values };
};

const makeTables = ({ rows, rowIds, values }) => {
  const table = {};
  for (let i = 0; i < rows; i++) {
    const row = {};
    for (let j = 0; j < CELLS_PER_ROW; j++) {
      row[CELL_IDS[j]] = values[i * CELLS_PER_ROW + j];
    }
    table[rowIds[i]] = row;
  }
  return { [TABLE_ID]: table };
};

const fillOneByOne = (store, { rows, rowIds, values }) => {
  for (let i = 0; i < rows; i++) {
    const rowId = rowIds[i];
    for (let j = 0; j < CELLS_PER_ROW; j++) {
      store.setCell(TABLE_ID, rowId, CELL_IDS[j], values[i * CELLS_PER_ROW + j]);
    }
  }
};

const checkStore = (store, rows) => {
  const got = store.getRowCount(TABLE_ID);
  if (got != rows) {
    throw new Error(`expected ${rows} rows, got ${got}`);
  }
  const last = rows - 1;
  const cell = store.getCell(TABLE_ID, `r${last}`, 'c9');
  if (cell !== cellString(last, 9)) {
    throw new Error(`r${last}/c9 is ${cell}`);
  }
};

// ---- Measuring

const nowS = () => Number(process.hrtime.bigint()) / 1e9;
// CPU time of the process, all threads (V8's GC and compiler threads too);
// shows how much of the wall time was spent waiting on a busy machine
const cpuS = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
};

const gc = () => {
  if (!global.gc) {
    throw new Error('run node with --expose-gc');
  }
  global.gc();
  global.gc();
};

const median = (v) => {
  const s = [...v].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};

const info = (text) => process.stderr.write(`INFO tinybase ${text}\n`);

// Same warm-up as store-bench.c: lets the JIT compile the paths measured
const warmUp = (cells) => {
  const data = makeData(Math.max(Math.min(cells, 20000) / CELLS_PER_ROW, 1));
  fillOneByOne(createMergeableStore(), data);
  const store = createMergeableStore();
  store.setTables(makeTables(data));
  JSON.stringify(store.__[1]());
};

// ---- Cases

const runFill = (cells, reps, oneTransaction) => {
  const rows = cells / CELLS_PER_ROW;
  const data = makeData(rows);
  const tables = oneTransaction ? makeTables(data) : null;
  const rates = [];
  warmUp(cells);
  for (let r = 0; r < reps; r++) {
    const store = createMergeableStore();
    gc();
    const t0 = nowS();
    const c0 = cpuS();
    if (oneTransaction) {
      store.setTables(tables);
    } else {
      fillOneByOne(store, data);
    }
    const t = nowS() - t0;
    const c = cpuS() - c0;
    rates.push(cells / t);
    info(`rep ${r}: ${t.toFixed(3)} s (cpu ${c.toFixed(3)} s), ${Math.round(cells / t)} cells/s`);
    checkStore(store, rows);
  }
  return median(rates);
};

const runMemory = (cells) => {
  const rows = cells / CELLS_PER_ROW;
  warmUp(cells);
  gc();
  const m0 = process.memoryUsage();
  // Everything the store keeps is made in here, ids and strings included
  let tables = makeTables(makeData(rows));
  const store = createMergeableStore();
  store.setTables(tables);
  tables = null;
  gc();
  const m1 = process.memoryUsage();
  checkStore(store, rows);
  const heap = m1.heapUsed + m1.external - (m0.heapUsed + m0.external);
  info(
    `heapUsed+external delta ${(heap / 1048576).toFixed(1)} MiB = ` +
      `${(heap / cells).toFixed(1)} B/cell; RSS delta ` +
      `${((m1.rss - m0.rss) / 1048576).toFixed(1)} MiB = ` +
      `${((m1.rss - m0.rss) / cells).toFixed(1)} B/cell`,
  );
  return heap / cells;
};

const runGetContent = (cells, reps) => {
  const rows = cells / CELLS_PER_ROW;
  warmUp(cells);
  const store = createMergeableStore();
  store.setTables(makeTables(makeData(rows)));
  const ms = [];
  for (let r = 0; r < reps; r++) {
    gc();
    const t0 = nowS();
    const c0 = cpuS();
    const json = JSON.stringify(store.__[1]());
    ms.push((nowS() - t0) * 1000);
    const c = (cpuS() - c0) * 1000;
    info(`rep ${r}: ${ms[r].toFixed(1)} ms (cpu ${c.toFixed(1)} ms), ${json.length} bytes of JSON`);
  }
  return median(ms);
};

const runLoadContent = (cells, reps, path) => {
  if (!path) {
    throw new Error('load_content needs --content FILE');
  }
  const text = readFileSync(path, 'utf8');
  warmUp(cells);
  const ms = [];
  for (let r = 0; r < reps; r++) {
    const store = createMergeableStore();
    gc();
    const t0 = nowS();
    const c0 = cpuS();
    store.__[3](JSON.parse(text));
    ms.push((nowS() - t0) * 1000);
    const c = (cpuS() - c0) * 1000;
    info(`rep ${r}: ${ms[r].toFixed(1)} ms (cpu ${c.toFixed(1)} ms) for ${text.length} chars`);
    checkStore(store, cells / CELLS_PER_ROW);
  }
  return median(ms);
};

// ---- Main

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const k = args.indexOf(`--${name}`);
  return k >= 0 && k + 1 < args.length ? args[k + 1] : dflt;
};
const kind = opt('case');
const cells = Number(opt('cells', '100000'));
const reps = Number(opt('reps', '1'));
const content = opt('content');

if (!(cells >= CELLS_PER_ROW && cells % CELLS_PER_ROW == 0 && reps >= 1)) {
  process.stderr.write('store-bench.mjs: bad --cells or --reps\n');
  process.exit(2);
}

const cases = {
  set_cell: () => runFill(cells, reps, false),
  set_tables: () => runFill(cells, reps, true),
  memory: () => runMemory(cells),
  get_content: () => runGetContent(cells, reps),
  load_content: () => runLoadContent(cells, reps, content),
};

if (!cases[kind]) {
  process.stderr.write(`store-bench.mjs: unknown case "${kind}"\n`);
  process.exit(2);
}
process.stdout.write(`RESULT ${cases[kind]()}\n`);
