// store-diff.mjs: random operation scripts run against the real TinyBase
// 10.0.1 MergeableStore, recording what every step must produce, for the
// C replay in tests/test-store-differential.c.
//
//   node store-diff.mjs --seed N --count K --out FILE [--only I]
//                       [--min-steps A] [--max-steps B]
//   node store-diff.mjs --verify FILE   (replay FILE on fresh TinyBase stores)
//   --exclude KIND,...  leaves operation kinds out: a local method name
//   (setCell, transaction, ...), applyContent, applyChanges, applyStale,
//   applyOwn, setMergeableContent or merge.
//
// Output: {format, seed, count, scripts: [{index, stores: [{name, uniqueId,
// clockOffset}], steps: [{store, now, op, call, expect}]}]}. A store's
// getNow() returns the step's `now` plus its clockOffset.
//
// - `op` is a short human-readable form of the step ([method, ...args]).
// - `call` is what both sides execute: {method, ids?, json?, reuseRowIds?,
//   ops?, from?}. `json` is the exact JSON text of the data argument; TinyBase
//   gets JSON.parse(json) (with "\uFFFC" decoded to undefined for the encoded
//   mergeable methods), the C side passes the text as is, so neither side
//   re-serializes a number. `ops` holds the calls inside a transaction.
// - `expect.stores[name]` for the store that ran the op (both after a
//   merge): `content` (encoded MergeableContent, undefined written as
//   "\uFFFC"), `hashes` [tablesHash, valuesHash], `tables`, `values` (JSON
//   text of getTables()/getValues()), `changes` (encoded changes of the
//   transaction that finished during the step, or null if none finished).
// - `expect.returned`: the ids addRow returned during the step, in order.
//
// Everything is deterministic for a given seed; script I only depends on
// (seed, I), so `--only I` regenerates one script for debugging.

import {readFileSync, writeFileSync} from 'node:fs';
import {createMergeableStore} from 'tinybase';

const U = '\uFFFC';
const T0 = 1710000000000;
const FIVE_MINUTES = 300000;

// ---------------------------------------------------------------------------
// Command line

const parseArgs = (argv) => {
  const opts = {
    seed: 1, count: 10, out: null, only: null, verify: null, minSteps: 10, maxSteps: 60,
    exclude: new Set(),
  };
  for (let i = 0; i < argv.length; i++) {
    const take = () => {
      if (i + 1 >= argv.length) {
        throw new Error('missing value after ' + argv[i]);
      }
      return argv[++i];
    };
    switch (argv[i]) {
      case '--seed':
        opts.seed = Number(take());
        break;
      case '--count':
        opts.count = Number(take());
        break;
      case '--out':
        opts.out = take();
        break;
      case '--verify':
        opts.verify = take();
        break;
      case '--exclude':
        for (const kind of take().split(',')) {
          opts.exclude.add(kind);
        }
        break;
      case '--only':
        opts.only = Number(take());
        break;
      case '--min-steps':
        opts.minSteps = Number(take());
        break;
      case '--max-steps':
        opts.maxSteps = Number(take());
        break;
      default:
        throw new Error('unknown argument ' + argv[i]);
    }
  }
  if (!Number.isSafeInteger(opts.seed) || opts.seed < 0) {
    throw new Error('--seed must be a non-negative integer');
  }
  if (!opts.out && !opts.verify) {
    throw new Error('--out FILE (or --verify FILE) is required');
  }
  return opts;
};

// ---------------------------------------------------------------------------
// Deterministic randomness: a 32-bit xorshift-multiply mixer to derive the
// per-script state, then a four-word xoshiro128** generator.

const mix32 = (x) => {
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
};

const makeRng = (seed, index) => {
  const hi = Math.floor(seed / 4294967296) >>> 0;
  const lo = seed >>> 0;
  let s0 = mix32(lo ^ 0x9e3779b9);
  let s1 = mix32(hi ^ mix32(s0 + 0x85ebca6b));
  let s2 = mix32(index ^ mix32(s1 + 0xc2b2ae35));
  let s3 = mix32(s2 ^ 0x27d4eb2f ^ index);
  if ((s0 | s1 | s2 | s3) === 0) {
    s0 = 1;
  }
  const u32 = () => {
    const result = Math.imul(((Math.imul(s1, 5) << 7) | (Math.imul(s1, 5) >>> 25)), 9) >>> 0;
    const t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
    return result;
  };
  for (let i = 0; i < 8; i++) {
    u32();
  }
  const rng = {
    u32,
    float: () => u32() / 4294967296,
    int: (lo2, hi2) => lo2 + Math.floor(rng.float() * (hi2 - lo2 + 1)),
    chance: (p) => rng.float() < p,
    pick: (arr) => arr[Math.floor(rng.float() * arr.length)],
    // Weighted choice from [[weight, value], ...].
    weighted: (pairs) => {
      const total = pairs.reduce((sum, [w]) => sum + w, 0);
      if (total <= 0) {
        return null;
      }
      let r = rng.float() * total;
      for (const [w, v] of pairs) {
        if (w > 0 && (r -= w) < 0) {
          return v;
        }
      }
      return pairs.filter(([w]) => w > 0).pop()[1];
    },
    sample: (arr, n) => {
      const copy = [...arr];
      const out = [];
      while (out.length < n && copy.length) {
        out.push(copy.splice(Math.floor(rng.float() * copy.length), 1)[0]);
      }
      return out;
    },
  };
  return rng;
};

// ---------------------------------------------------------------------------
// Id pools: small per script so that ids collide, get deleted and re-added.

const INTEGERISH = ['0', '1', '2', '10', '01', '00', '-1', '4294967294', '4294967295'];

const TABLE_POOL = [
  't', 'pets', '0', '1', '10', '01', '-1', '4294967294', '4294967295', '',
  '__proto__', 'constructor', 'toString', '🦄', 'a"b', 'x\ny', 'back\\slash',
  'täble', ' ', '日本',
];
const ROW_POOL = [
  ...INTEGERISH, '3', '5', '9007199254740993', '1.5', ' 1', 'r', 'fido', '',
  '__proto__', 'constructor', 'hasOwnProperty', '😀', 'r"q', 'l\nb', '\\',
  '日本', 'e\u0301',
];
const CELL_POOL = [
  'c', 'species', '0', '1', '10', '01', '-1', '4294967294', '4294967295', '',
  '__proto__', 'constructor', 'valueOf', '🐶', 'q"', 'n\n', 'b\\s', 'é', '\t',
  '\u2028', '/', ':', '\u007f',
];
const VALUE_POOL = [
  'v', 'open', '0', '1', '10', '01', '-1', '4294967294', '4294967295', '',
  '__proto__', 'constructor', 'toJSON', '👍🏽', 'v"', 'v\r\n', '\\', 'ß', ' ',
];
const KEY_POOL = [
  'a', 'b', 'z', '0', '1', '2', '10', '01', '-1', '4294967294', '4294967295',
  '__proto__', 'constructor', '', 'é', '🐱', 'k"', 'n\n', '1.5',
];
const UNIQUE_ID_POOL = [
  'store1', 's1', 'a', 'b', 'c', '', 'A', '0', '🦄', 'client-ß', 'x y',
  'long-unique-id-0123456789', '\u0001', 'q"', 'store2',
];

// ---------------------------------------------------------------------------
// Values. Objects are built as Maps (insertion order, any key including
// "__proto__"), so that the JSON text we write keeps the insertion order; the
// value TinyBase receives is JSON.parse of that text, exactly like the C side.

const NUMBER_POOL = [
  0, -0, 1, -1, 2, 0.1, 0.5, -0.5, 0.30000000000000004, 1e21, 1e20, 1e-7,
  1e-6, 1.5e-7, 5e-324, 2 ** 53 + 2, 2 ** 53, -(2 ** 53), -1.5e-10,
  1.7976931348623157e308, -1.7976931348623157e308, 123456789012345680000,
  1.2345678901234568e21, 4294967295, 4294967296, 1e300, 1e-300, 2.5e-8, 100,
  42, 3.14159, -273.15, 1234567.125, 2 ** -1022, 1 / 3,
];

// Numeric literals whose text is not the canonical form of their double.
const LITERAL_POOL = [
  '9007199254740993', '18446744073709551615', '18446744073709551616',
  '123456789012345678901234567890', '-9223372036854775809',
  '9223372036854775807', '0.1000000000000000055511151231257827', '1.0',
  '1E2', '1e+2', '-0.0', '0e10', '2.50', '1e-400', '0.000001000', '100e-2',
];

const STRING_POOL = [
  '', 'a', 'dog', 'cat', ' ', '0', '1', 'null', 'true', '\u0000', 'a\u0000b',
  '\b\f\n\r\t', '\u0001\u001f', '\u007f\u0080\u009f', '\u2028\u2029', 'é',
  'e\u0301', '日本語', '😀', '👩‍👩‍👧', '\uFEFF', 'x\uFFFD', 'x\uFFFC',
  '\uFFFC\uFFFC', ' \uFFFD', 'quote"', 'back\\slash', '/', '</script>',
  '{"a":1}', '[1,2]', 'x'.repeat(200),
];

const CHARS = [
  'a', 'b', 'Z', '0', '9', ' ', '"', '\\', '/', '\u0000', '\u0001', '\b',
  '\t', '\n', '\u000b', '\f', '\r', '\u001f', '\u007f', '\u0080', 'é', 'ß',
  '\u2028', '\u2029', '\uFEFF', '\uFFFD', '\uFFFC', '😀', '🦄', '中', '\u0301',
];

const isValidString = (s) => s !== U && s[0] !== '\uFFFD';

const randomString = (rng) => {
  let s;
  do {
    const n = rng.int(0, 8);
    s = '';
    for (let i = 0; i < n; i++) {
      s += rng.pick(CHARS);
    }
  } while (!isValidString(s));
  return s;
};

const dv = new DataView(new ArrayBuffer(8));
const randomDouble = (rng) => {
  for (;;) {
    dv.setUint32(0, rng.u32());
    dv.setUint32(4, rng.u32());
    const x = dv.getFloat64(0);
    if (Number.isFinite(x)) {
      return x;
    }
  }
};

// A numeric literal in the tree: written verbatim.
class Literal {
  constructor(text) {
    this.text = text;
  }
}

const randomNumber = (rng) =>
  rng.weighted([
    [5, () => rng.pick(NUMBER_POOL)],
    [2, () => randomDouble(rng)],
    [2, () => rng.int(-1000, 1000)],
    [1, () => Math.round((rng.float() - 0.5) * 1e9) / 1e3],
    [1, () => new Literal(rng.pick(LITERAL_POOL))],
  ])();

const randomScalar = (rng, ctx) =>
  rng.weighted([
    [4, () => (rng.chance(0.6) ? rng.pick(STRING_POOL) : randomString(rng))],
    // Rarely a long string (a few KB of UTF-8, odd byte counts).
    [0.02, () => 'x' + 'ẋ'.repeat(rng.int(1000, 3000))],
    [4, () => randomNumber(rng)],
    [1.5, () => rng.chance(0.5)],
    [1, () => null],
  ])();

const randomJson = (rng, depth) => {
  if (depth <= 0 || rng.chance(0.55)) {
    return rng.weighted([
      [10, () => randomScalar(rng)],
      // Nested strings are not constrained (§1.3): the markers are fine here.
      [1, () => rng.pick([U, '\uFFFD', '\uFFFD{"a":1}'])],
    ])();
  }
  return rng.chance(0.5) ? randomObject(rng, depth - 1) : randomArray(rng, depth - 1);
};

const randomObject = (rng, depth) => {
  const map = new Map();
  const n = rng.int(0, 4);
  for (let i = 0; i < n; i++) {
    map.set(rng.pick(KEY_POOL), randomJson(rng, depth));
  }
  return map;
};

const randomArray = (rng, depth) => {
  const n = rng.int(0, 4);
  const arr = [];
  for (let i = 0; i < n; i++) {
    arr.push(randomJson(rng, depth));
  }
  return arr;
};

// A Cell or Value (never invalid).
const randomCell = (rng, ctx) => {
  if (ctx.objects && rng.chance(0.22)) {
    return rng.chance(0.55) ? randomObject(rng, 2) : randomArray(rng, 2);
  }
  return randomScalar(rng, ctx);
};

// ---------------------------------------------------------------------------
// JSON text writer. Canonical mode writes what JSON.stringify writes except
// that -0 is written "-0" (JSON.parse gives -0 back). Noisy mode adds
// whitespace, non-canonical number spellings and optional escapes; every
// spelling parses to the same JS value.

const numberText = (x, rng, noisy) => {
  if (Object.is(x, -0)) {
    return noisy && rng.chance(0.5) ? rng.pick(['-0.0', '-0e0', '-0E+3']) : '-0';
  }
  const canonical = String(x);
  if (!noisy || rng.chance(0.4)) {
    return canonical;
  }
  const variants = [x.toPrecision(17), x.toExponential(), canonical.replace('e', 'E')];
  if (Number.isInteger(x) && Math.abs(x) < 1e15) {
    variants.push(x.toFixed(1), canonical + 'e0');
    if (x !== 0) {
      variants.push(canonical + '00e-2');
    }
  }
  const text = rng.pick(variants);
  if (JSON.parse(text) !== x) {
    throw new Error('bad number variant ' + text + ' for ' + canonical);
  }
  return text;
};

const hex4 = (code, rng) => {
  const h = code.toString(16).padStart(4, '0');
  return '\\u' + (rng.chance(0.5) ? h : h.toUpperCase());
};

const stringText = (s, rng, noisy) => {
  if (!noisy) {
    return JSON.stringify(s);
  }
  let out = '"';
  for (const ch of s) {
    if (rng.chance(0.25)) {
      if (ch === '/') {
        out += '\\/';
      } else {
        for (let i = 0; i < ch.length; i++) {
          out += hex4(ch.charCodeAt(i), rng);
        }
      }
    } else {
      out += JSON.stringify(ch).slice(1, -1);
    }
  }
  return out + '"';
};

const space = (rng, noisy) =>
  noisy && rng.chance(0.3) ? rng.pick([' ', '\n', '\t', '\r\n', '  ']) : '';

const writeJson = (v, rng, noisy) => {
  const w = (x) => writeJson(x, rng, noisy);
  const sp = () => space(rng, noisy);
  if (v instanceof Literal) {
    return v.text;
  }
  if (v === null) {
    return 'null';
  }
  if (typeof v === 'boolean') {
    return v ? 'true' : 'false';
  }
  if (typeof v === 'number') {
    return numberText(v, rng, noisy);
  }
  if (typeof v === 'string') {
    return stringText(v, rng, noisy);
  }
  if (Array.isArray(v)) {
    return '[' + sp() + v.map((x) => w(x)).join(sp() + ',' + sp()) + sp() + ']';
  }
  if (v instanceof Map) {
    return (
      '{' + sp() +
      [...v].map(([k, x]) => stringText(k, rng, noisy) + sp() + ':' + sp() + w(x)).join(sp() + ',' + sp()) +
      sp() + '}'
    );
  }
  throw new Error('cannot write ' + typeof v);
};

// JSON text in which undefined is written as "\uFFFC" (the wire encoding).
const jsonU = (value) => JSON.stringify(value, (_k, v) => (v === undefined ? U : v));

// The wire decoder: every string that is exactly "\uFFFC" becomes undefined.
const decodeU = (v) => {
  if (v === U) {
    return undefined;
  }
  if (Array.isArray(v)) {
    return v.map(decodeU);
  }
  if (v !== null && typeof v === 'object') {
    for (const k of Object.keys(v)) {
      v[k] = decodeU(v[k]);
    }
  }
  return v;
};

// ---------------------------------------------------------------------------
// One script.

const generateScript = (seed, index, opts) => {
  const rng = makeRng(seed, index);
  // Operation kinds can be left out (--exclude) to look past a known
  // difference.
  const w = (weight, kind) => (opts.exclude.has(kind) ? 0 : weight);

  const ctx = {
    objects: rng.chance(0.5),
    noise: rng.pick([0, 0, 0.15, 0.4]),
    tables: rng.sample(TABLE_POOL, rng.int(1, 3)),
    rows: rng.sample(ROW_POOL, rng.int(2, 6)),
    cells: rng.sample(CELL_POOL, rng.int(2, 5)),
    values: rng.sample(VALUE_POOL, rng.int(2, 5)),
  };
  // Integer-like row ids make addRow interesting: make sure there is one.
  if (!ctx.rows.some((r) => /^[0-9]+$/.test(r))) {
    ctx.rows.push(rng.pick(INTEGERISH.slice(0, 6)));
  }

  const storeCount = rng.chance(0.8) ? 2 : 3;
  const uniqueIds = rng.sample(UNIQUE_ID_POOL, storeCount);
  if (rng.chance(0.05)) {
    uniqueIds[1] = uniqueIds[0]; // same client id: HLC ties between stores
  }

  const clock = {now: T0 + rng.int(0, 1e9)};
  let maxNow = clock.now;
  // Each store's getNow() is the step's `now` plus a per-store skew: mostly
  // none, sometimes within or beyond the five-minute window of §5.4.
  const clockOffsets = uniqueIds.map((_, i) =>
    i == 0 || rng.chance(0.7)
      ? 0
      : rng.pick([rng.int(-5000, 5000), rng.int(-FIVE_MINUTES, FIVE_MINUTES), rng.pick([-1, 1]) * rng.int(FIVE_MINUTES, 2 * FIVE_MINUTES)]),
  );
  const stores = uniqueIds.map((uniqueId, i) => {
    const name = String.fromCharCode(65 + i);
    const clockOffset = clockOffsets[i];
    const st = {
      name,
      uniqueId,
      clockOffset,
      store: createMergeableStore(uniqueId, () => clock.now + clockOffset),
      stepChanges: null,
      finishCount: 0,
      lastChanges: null,
      history: [],
    };
    st.store.addDidFinishTransactionListener(() => {
      st.stepChanges = jsonU(st.store.__[2](false));
      st.lastChanges = st.stepChanges;
      st.finishCount++;
    });
    return st;
  });
  const byName = Object.fromEntries(stores.map((st) => [st.name, st]));

  const advanceClock = () => {
    const kind = rng.weighted([
      [35, 'same'],
      [30, 'tick'],
      [10, 'ms'],
      [8, 'back'],
      [4, 'window-back'],
      [5, 'jump'],
      [8, 'resync'],
    ]);
    switch (kind) {
      case 'same':
        break;
      case 'tick':
        clock.now += rng.int(1, 3);
        break;
      case 'ms':
        clock.now += rng.int(4, 5000);
        break;
      case 'back':
        clock.now -= rng.int(1, 2000);
        break;
      case 'window-back':
        // Around the five-minute future window of incoming HLCs.
        clock.now = maxNow - FIVE_MINUTES + rng.int(-3, 3);
        break;
      case 'jump':
        clock.now += rng.pick([FIVE_MINUTES, FIVE_MINUTES + 1, 3600000, 86400000, rng.int(1, 1e7)]);
        break;
      case 'resync':
        clock.now = maxNow;
        break;
    }
    maxNow = Math.max(maxNow, clock.now);
  };

  const noisy = () => ctx.noise > 0 && rng.chance(ctx.noise);
  const text = (v) => {
    const t = writeJson(v, rng, noisy());
    JSON.parse(t); // sanity
    return t;
  };

  // Id choice, biased towards ids that currently exist.
  const pickFrom = (existing, pool, p) =>
    existing.length && rng.chance(p) ? rng.pick(existing) : rng.pick(pool);
  const pickTable = (s, p = 0.6) => pickFrom(s.getTableIds(), ctx.tables, p);
  const pickRow = (s, t, p = 0.55) => pickFrom(s.getRowIds(t), ctx.rows, p);
  const pickCell = (s, t, r, p = 0.55) => pickFrom(s.getCellIds(t, r), ctx.cells, p);
  const pickValue = (s, p = 0.55) => pickFrom(s.getValueIds(), ctx.values, p);

  const randomRowMap = (allowEmpty) => {
    const row = new Map();
    if (allowEmpty && rng.chance(0.15)) {
      return row;
    }
    const n = rng.int(1, Math.min(4, ctx.cells.length + 1));
    for (let i = 0; i < n; i++) {
      row.set(rng.pick(ctx.cells), randomCell(rng, ctx));
    }
    return row;
  };
  const randomTableMap = (mustHaveRow) => {
    const table = new Map();
    const n = rng.int(1, 4);
    for (let i = 0; i < n; i++) {
      table.set(rng.pick(ctx.rows), randomRowMap(true));
    }
    if (mustHaveRow && ![...table.values()].some((row) => row.size)) {
      table.set(rng.pick(ctx.rows), randomRowMap(false));
    }
    return table;
  };
  const randomTablesMap = () => {
    const tables = new Map();
    const n = rng.int(1, 3);
    for (let i = 0; i < n; i++) {
      // A nested table that ends up empty is dropped like an empty row.
      tables.set(rng.pick(ctx.tables), rng.chance(0.05) ? new Map() : randomTableMap(false));
    }
    const hasRow = (table) => [...table.values()].some((row) => row.size);
    if (![...tables.values()].some(hasRow)) {
      tables.set(rng.pick(ctx.tables), randomTableMap(true));
    }
    return tables;
  };
  const randomValuesMap = () => {
    const values = new Map();
    const n = rng.int(1, Math.min(4, ctx.values.length + 1));
    for (let i = 0; i < n; i++) {
      values.set(rng.pick(ctx.values), randomCell(rng, ctx));
    }
    return values;
  };

  // Builds one local-write call for store s (which may be inside a
  // transaction: the ids it picks reflect the live state).
  const localCall = (s, depth) => {
    const kind = rng.weighted(
      [
        [20, 'setCell'],
        [10, 'setValue'],
        [8, 'setRow'],
        [7, 'setPartialRow'],
        [6, 'setTable'],
        [4, 'setTables'],
        [4, 'setValues'],
        [4, 'setPartialValues'],
        [7, 'addRow'],
        [8, 'delCell'],
        [5, 'delRow'],
        [3, 'delTable'],
        [1.5, 'delTables'],
        [4, 'delValue'],
        [1.5, 'delValues'],
        [depth < 2 ? (depth == 0 ? 9 : 4) : 0, 'transaction'],
      ].map(([weight, kind]) => [w(weight, kind), kind]),
    );
    if (kind === null) {
      throw new Error('--exclude left no local operation');
    }
    switch (kind) {
      case 'setCell': {
        const t = pickTable(s);
        const r = pickRow(s, t);
        return {method: kind, ids: [t, r, pickCell(s, t, r)], json: text(randomCell(rng, ctx))};
      }
      case 'setValue':
        return {method: kind, ids: [pickValue(s)], json: text(randomCell(rng, ctx))};
      case 'setRow':
      case 'setPartialRow': {
        const t = pickTable(s);
        return {method: kind, ids: [t, pickRow(s, t)], json: text(randomRowMap(false))};
      }
      case 'setTable':
        return {method: kind, ids: [pickTable(s)], json: text(randomTableMap(true))};
      case 'setTables':
        return {method: kind, ids: [], json: text(randomTablesMap())};
      case 'setValues':
      case 'setPartialValues':
        return {method: kind, ids: [], json: text(randomValuesMap())};
      case 'addRow':
        return {
          method: kind,
          ids: [pickTable(s)],
          json: text(randomRowMap(false)),
          reuseRowIds: rng.chance(0.7),
        };
      case 'delCell': {
        const t = pickTable(s, 0.85);
        const r = pickRow(s, t, 0.85);
        return {method: kind, ids: [t, r, pickCell(s, t, r, 0.8)]};
      }
      case 'delRow': {
        const t = pickTable(s, 0.85);
        return {method: kind, ids: [t, pickRow(s, t, 0.8)]};
      }
      case 'delTable':
        return {method: kind, ids: [pickTable(s, 0.8)]};
      case 'delValue':
        return {method: kind, ids: [pickValue(s, 0.8)]};
      case 'delTables':
      case 'delValues':
        return {method: kind, ids: []};
      case 'transaction':
        return {method: kind, ops: []}; // filled while running
    }
    throw new Error(kind);
  };

  // Whether any Cell/Value stamp (deleted ones hold undefined) holds an
  // encoded object/array.
  const hasJsonCells = (st) => {
    const [[tables], [values]] = st.store.__[1]();
    const encoded = ([v]) => typeof v === 'string' && v[0] === '\uFFFD';
    return (
      Object.values(values).some(encoded) ||
      Object.values(tables).some(([rows]) =>
        Object.values(rows).some(([cells]) => Object.values(cells).some(encoded)),
      )
    );
  };

  // Builds a mergeable call for store st, reading another store's state.
  const mergeableCall = (st) => {
    const others = stores.filter((o) => o !== st);
    const other = rng.pick(others);
    const kind = rng.weighted([
      [w(8, 'applyContent'), 'content'],
      [w(6, 'applyChanges'), 'changes'],
      [w(3, 'applyStale'), 'stale'],
      [w(1, 'applyOwn'), 'own'],
      [w(2.5, 'setMergeableContent'), 'setContent'],
      [w(6, 'merge'), 'merge'],
    ]);
    if (kind === null) {
      return localCall(st.store, 0);
    }
    const contentOf = (o) => jsonU([...o.store.__[1](), 1]);
    const applyContent = () =>
      ({method: 'applyMergeableChanges', from: other.name, what: 'content', json: contentOf(other)});
    switch (kind) {
      case 'content':
        return applyContent();
      case 'own':
        return {method: 'applyMergeableChanges', from: st.name, what: 'content', json: contentOf(st)};
      case 'changes':
        return other.lastChanges
          ? {method: 'applyMergeableChanges', from: other.name, what: 'changes', json: other.lastChanges}
          : applyContent();
      case 'stale':
        return other.history.length
          ? {method: 'applyMergeableChanges', from: other.name, what: 'stale content',
            json: jsonU([...JSON.parse(rng.pick(other.history)), 1])}
          : applyContent();
      case 'setContent':
        return {method: 'setMergeableContent', from: other.name, what: 'content', json: jsonU(other.store.__[1]())};
      case 'merge':
        // TinyBase's public merge() mishandles object/array cells (§6.4);
        // tinysync does not reproduce that, so only merge without them.
        return hasJsonCells(st) || hasJsonCells(other)
          ? applyContent()
          : {method: 'merge', from: other.name};
    }
    throw new Error(kind);
  };

  // Runs a call on TinyBase, generating transaction bodies on the fly.
  const runCall = (st, call, returned, depth) => {
    const s = st.store;
    const [a, b, c] = call.ids ?? [];
    const arg = () => JSON.parse(call.json);
    switch (call.method) {
      case 'setTables':
        s.setTables(arg());
        break;
      case 'setTable':
        s.setTable(a, arg());
        break;
      case 'setRow':
        s.setRow(a, b, arg());
        break;
      case 'setPartialRow':
        s.setPartialRow(a, b, arg());
        break;
      case 'setCell':
        s.setCell(a, b, c, arg());
        break;
      case 'setValues':
        s.setValues(arg());
        break;
      case 'setPartialValues':
        s.setPartialValues(arg());
        break;
      case 'setValue':
        s.setValue(a, arg());
        break;
      case 'addRow': {
        const id = s.addRow(a, arg(), call.reuseRowIds);
        if (typeof id !== 'string') {
          throw new Error('addRow returned ' + id);
        }
        returned.push(id);
        break;
      }
      case 'delTables':
        s.delTables();
        break;
      case 'delTable':
        s.delTable(a);
        break;
      case 'delRow':
        s.delRow(a, b);
        break;
      case 'delCell':
        s.delCell(a, b, c);
        break;
      case 'delValues':
        s.delValues();
        break;
      case 'delValue':
        s.delValue(a);
        break;
      case 'transaction':
        s.transaction(() => {
          const n = rng.int(1, 6);
          for (let i = 0; i < n; i++) {
            const sub = localCall(s, depth + 1);
            call.ops.push(sub);
            runCall(st, sub, returned, depth + 1);
          }
        });
        break;
      case 'applyMergeableChanges':
        s.__[4](decodeU(arg()));
        break;
      case 'setMergeableContent':
        s.__[3](decodeU(arg()));
        break;
      case 'merge':
        s.merge(byName[call.from].store);
        break;
      default:
        throw new Error('unknown method ' + call.method);
    }
  };

  // Short display form of a call.
  const display = (call) => {
    switch (call.method) {
      case 'transaction':
        return ['transaction', call.ops.map(display)];
      case 'applyMergeableChanges':
      case 'setMergeableContent':
        return [call.method, call.what + ' of ' + call.from];
      case 'merge':
        return ['merge', call.from];
      default:
        return [
          call.method,
          ...call.ids,
          ...(call.json !== undefined ? [JSON.parse(call.json)] : []),
          ...(call.reuseRowIds !== undefined ? [call.reuseRowIds] : []),
        ];
    }
  };

  const snapshot = (st) => ({
    content: jsonU(st.store.__[1]()),
    hashes: st.store.getMergeableContentHashes(),
    tables: JSON.stringify(st.store.getTables()),
    values: JSON.stringify(st.store.getValues()),
    changes: st.stepChanges,
  });

  const stepCount = rng.int(opts.minSteps, opts.maxSteps);
  const steps = [];
  for (let i = 0; i < stepCount; i++) {
    advanceClock();
    const st = rng.pick(stores);
    const call = rng.chance(0.27) ? mergeableCall(st) : localCall(st.store, 0);
    for (const o of stores) {
      o.stepChanges = null;
      o.finishCount = 0;
    }
    const returned = [];
    runCall(st, call, returned, 0);
    const involved = call.method == 'merge' ? [st, byName[call.from]] : [st];
    const expect = {stores: {}};
    if (returned.length) {
      expect.returned = returned;
    }
    for (const o of stores) {
      if (o.finishCount > 1 || (o.finishCount && !involved.includes(o))) {
        throw new Error('unexpected transaction count in ' + o.name);
      }
    }
    for (const o of involved) {
      expect.stores[o.name] = snapshot(o);
      o.history.push(expect.stores[o.name].content);
    }
    steps.push({store: st.name, now: clock.now, op: jsonU(display(call)), call, expect});
  }

  return {
    index,
    objects: ctx.objects,
    noise: ctx.noise,
    stores: stores.map(({name, uniqueId, clockOffset}) => ({name, uniqueId, clockOffset})),
    steps,
  };
};

// ---------------------------------------------------------------------------
// Self-check of a generated file: replay only what the file says (the way the
// C test does) on fresh TinyBase stores and compare every expectation.

const verifyFile = (file) => {
  const data = JSON.parse(readFileSync(file, 'utf8'));
  let steps = 0;
  for (const script of data.scripts) {
    const clock = {now: 0};
    const peers = {};
    for (const {name, uniqueId, clockOffset} of script.stores) {
      const peer = {store: createMergeableStore(uniqueId, () => clock.now + clockOffset), changes: null};
      peer.store.addDidFinishTransactionListener(() => {
        peer.changes = jsonU(peer.store.__[2](false));
      });
      peers[name] = peer;
    }
    const run = (s, call, returned) => {
      const [a, b, c] = call.ids ?? [];
      const arg = () => JSON.parse(call.json);
      switch (call.method) {
        case 'addRow':
          returned.push(s.addRow(a, arg(), call.reuseRowIds));
          break;
        case 'transaction':
          s.transaction(() => call.ops.forEach((sub) => run(s, sub, returned)));
          break;
        case 'applyMergeableChanges':
          s.__[4](decodeU(arg()));
          break;
        case 'setMergeableContent':
          s.__[3](decodeU(arg()));
          break;
        case 'merge':
          s.merge(peers[call.from].store);
          break;
        default:
          s[call.method](...call.ids, ...(call.json !== undefined ? [arg()] : []));
      }
    };
    script.steps.forEach((step, i) => {
      clock.now = step.now;
      Object.values(peers).forEach((p) => (p.changes = null));
      const returned = [];
      run(peers[step.store].store, step.call, returned);
      const fail = (what, a, b) => {
        throw new Error(`script ${script.index} step ${i} ${step.op}: ${what}\n${a}\n${b}`);
      };
      if (JSON.stringify(returned) !== JSON.stringify(step.expect.returned ?? [])) {
        fail('returned', JSON.stringify(returned), JSON.stringify(step.expect.returned));
      }
      for (const [name, e] of Object.entries(step.expect.stores)) {
        const s = peers[name].store;
        const got = {
          content: jsonU(s.__[1]()),
          hashes: s.getMergeableContentHashes(),
          tables: JSON.stringify(s.getTables()),
          values: JSON.stringify(s.getValues()),
          changes: peers[name].changes,
        };
        for (const k of Object.keys(got)) {
          if (JSON.stringify(got[k]) !== JSON.stringify(e[k])) {
            fail(name + ' ' + k, JSON.stringify(e[k]), JSON.stringify(got[k]));
          }
        }
      }
      steps++;
    });
  }
  process.stderr.write(`store-diff: ${file}: ${data.scripts.length} scripts, ${steps} steps replay identically\n`);
};

// ---------------------------------------------------------------------------

const main = () => {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.verify) {
    verifyFile(opts.verify);
    return;
  }
  const indexes =
    opts.only !== null ? [opts.only] : Array.from({length: opts.count}, (_, i) => i);
  const scripts = indexes.map((i) => generateScript(opts.seed, i, opts));
  const stepCount = scripts.reduce((n, s) => n + s.steps.length, 0);
  writeFileSync(
    opts.out,
    JSON.stringify({
      format: 'tinysync store-diff 1',
      tinybase: '10.0.1',
      seed: opts.seed,
      count: scripts.length,
      steps: stepCount,
      scripts,
    }) + '\n',
  );
  process.stderr.write(
    `store-diff: seed ${opts.seed}: ${scripts.length} scripts, ${stepCount} steps -> ${opts.out}\n`,
  );
};

main();
