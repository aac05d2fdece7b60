#!/usr/bin/env python3
# Writes the seed corpora of the fuzz targets from the spec vectors in
# tests/data: fuzz/make-seeds.py [OUTDIR] (default fuzz/corpus). Each input
# is a file named after the SHA-1 of its bytes, as libFuzzer names them, so
# running it again only adds what is missing. The committed corpora are its
# output plus regression inputs (crashes found, kept under the same
# directories) and nothing else.
#
# SPDX-License-Identifier: MIT

import hashlib
import json
import os
import struct
import sys

top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
data_dir = os.path.join(top, 'tests', 'data')
out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(top, 'fuzz', 'corpus')

# Payload decoder header (see fuzz/fuzz-payload-decoder.c): byte 0 gives
# 8 KiB payloads and retained fragments and fragment size 1, or 1 KiB
# payloads, 256 B retained, fragment size 15; byte 1 the time step.
PAYLOAD_HEADERS = [bytes([0x3f, 0x00]), bytes([0x52, 0x01])]
SEPARATOR = b'\xff'


def load(name):
    with open(os.path.join(data_dir, name), encoding='utf-8') as f:
        return json.load(f)


def to_bytes(text):
    # Lone surrogates (from "\ud800" escapes) keep their generalized UTF-8
    # form: the binary-frame path of the decoder turns them into U+FFFD.
    return text.encode('utf-8', 'surrogatepass')


def compact(value):
    """JSON.stringify-like text of a decoded vector value."""
    try:
        return to_bytes(json.dumps(value, ensure_ascii=False, separators=(',', ':')))
    except UnicodeEncodeError:
        return json.dumps(value, separators=(',', ':')).encode('ascii')


class Corpus:
    def __init__(self, name):
        self.dir = os.path.join(out_dir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.count = 0

    def add(self, data):
        if isinstance(data, str):
            data = to_bytes(data)
        path = os.path.join(self.dir, hashlib.sha1(data).hexdigest())
        if not os.path.exists(path):
            with open(path, 'wb') as f:
                f.write(data)
            self.count += 1


def walk(value, fn, key=None):
    fn(key, value)
    if isinstance(value, dict):
        for k, v in value.items():
            walk(v, fn, k)
    elif isinstance(value, list):
        for v in value:
            walk(v, fn, key)


json_vectors = load('json.json')
invalid = load('invalid-messages.json')
scenarios = load('store-scenarios.json')
transcripts = load('wire-transcript.json')

# ---- Payloads: every frame of the invalid-messages cases and transcripts ----

cases = []  # lists of frame texts, in order
for group, entries in invalid.items():
    if not isinstance(entries, list):
        continue
    for case in entries:
        frames = []
        for key in ('payloads', 'payloadsToClient', 'serverPlays'):
            for p in case.get(key, []):
                if isinstance(p, str):
                    frames.append(p.replace('{HELLO}', '"hellohellohello1"')
                                   .replace('{SUB}', '"subscribesubscri"')
                                   .replace('{SENDER}', 'sender'))
        if frames:
            cases.append(frames)
for transcript in transcripts['transcripts']:
    frames = [f['payload'] for f in transcript.get('frames', [])
              if f.get('dir') == 'c2s' and isinstance(f.get('payload'), str)]
    if frames:
        cases.append(frames)


def remainder_of(frame):
    """The JSON after the envelope lines, if any."""
    if frame.startswith('M\n'):
        rest = frame[2:]
        if '\n' in rest:
            frame = rest.split('\n', 1)[1]
    if '\n' in frame:
        return frame.split('\n', 1)[1]
    return None


# ---- fuzz-json -------------------------------------------------------------

c = Corpus('fuzz-json')
for n in json_vectors['numbers']:
    c.add(n['json'])
    c.add(struct.pack('<d', struct.unpack('>d', bytes.fromhex(n['bits']))[0]))
for s in json_vectors['strings']:
    c.add(s['json'])
    c.add(bytes.fromhex(s['jsonUtf8Hex']))
for o in json_vectors['objects']:
    c.add(o['json'])
for u in json_vectors['wireUndefined']:
    c.add(u['wire'])
    c.add(u['jsonStringify'])
for sc in scenarios['scenarios']:
    for step in sc.get('steps', [])[:3]:
        c.add(compact(step.get('after', {}).get('content')))
json_count = c.count

# ---- fuzz-message-validation -------------------------------------------------

c = Corpus('fuzz-message-validation')
for frames in cases:
    for frame in frames:
        r = remainder_of(frame)
        if r is not None:
            c.add(r)
message_count = c.count

# ---- fuzz-payload-decoder ----------------------------------------------------

c = Corpus('fuzz-payload-decoder')
for frames in cases:
    joined = SEPARATOR.join(to_bytes(f) for f in frames)
    for header in PAYLOAD_HEADERS:
        c.add(header + joined)
payload_count = c.count

# ---- fuzz-apply-changes ------------------------------------------------------

c = Corpus('fuzz-apply-changes')
STAMP_KEYS = {'content', 'transactionChanges', 'changesAppliedToB',
              'publicMergeableContent', 'storeMergeableContentAfter', 'input', 'output'}


def add_stamps(key, value):
    if key in STAMP_KEYS and isinstance(value, (list, dict)):
        c.add(compact(value))


for sc in scenarios['scenarios']:
    walk(sc, add_stamps)
    for step in sc.get('steps', []):
        op = step.get('op')
        if isinstance(op, list) and op and op[0] in (
                'applyEncodedMergeableChanges', 'setEncodedMergeableContent',
                'applyMergeableChanges', 'setMergeableContent'):
            for arg in op[1:]:
                c.add(compact(arg))
for case in invalid.get('clientLegacy', []) + invalid.get('clientMultiple', []):
    if 'storeMergeableContentAfter' in case:
        c.add(compact(case['storeMergeableContentAfter']))
apply_count = c.count

# ---- fuzz-persister-load: files as TinyBase's and tinysync's file persisters
# write them (the encoded mergeable content), plus an empty file and the
# plain [tables, values] file of a TinyBase Store ----------------------------

contents = []


def add_content(key, value):
    if key in ('content', 'storeMergeableContentAfter', 'publicMergeableContent') \
            and isinstance(value, list) and len(value) == 2:
        contents.append(value)


for sc in scenarios['scenarios']:
    walk(sc, add_content)
for case in invalid.get('clientLegacy', []) + invalid.get('clientMultiple', []):
    add_content('content', case.get('storeMergeableContentAfter'))

c = Corpus('fuzz-persister-load')
for content in contents:
    c.add(compact(content))
c.add(b'')
c.add(b'[{"pets":{"fido":{"species":"dog"}}},{"open":true}]')
persister_count = c.count

# ---- fuzz-sqlite-persister-load: the rows TsSqlitePersister would write for
# the same contents (see fuzz/fuzz-sqlite-persister-load.c) --------------------


def sqlite_rows(content):
    """Lines of rows for one mergeable content, None if an id or text
    cannot be written in the line format (tab, newline)."""
    def text(s):
        if not isinstance(s, str) or '\t' in s or '\n' in s:
            raise ValueError
        return s

    lines = []
    (tables, tables_hlc, tables_hash), (values, values_hlc, values_hash) = content
    lines.append(['C', '0', '', '', text(tables_hlc), str(tables_hash)])
    for table_id, (rows, hlc, hash_) in tables.items():
        lines.append(['C', '2', text(table_id), '', text(hlc), str(hash_)])
        for row_id, (cells, row_hlc, row_hash) in rows.items():
            lines.append(['C', '3', text(table_id), text(row_id), text(row_hlc), str(row_hash)])
            for cell_id, (cell, cell_hlc, cell_hash) in cells.items():
                lines.append(['L', text(table_id), text(row_id), text(cell_id),
                              compact(cell).decode('utf-8', 'surrogatepass'),
                              text(cell_hlc), str(cell_hash)])
    lines.append(['C', '1', '', '', text(values_hlc), str(values_hash)])
    for value_id, (value, value_hlc, value_hash) in values.items():
        lines.append(['V', text(value_id), compact(value).decode('utf-8', 'surrogatepass'),
                      text(value_hlc), str(value_hash)])
    return '\n'.join('\t'.join(line) for line in lines) + '\n'


c = Corpus('fuzz-sqlite-persister-load')
for content in contents:
    try:
        c.add(sqlite_rows(content))
    except (ValueError, TypeError):
        pass
c.add(b'')
c.add(b'M\tformat\t2\n')
sqlite_count = c.count

# ---- fuzz-synchronizer: what a client's engine receives, in order (request
# ids of responses become "?", which the target fills in) --------------------


def engine_frame(payload):
    """'from\\n[requestId, type, body]' with a response's id as "?"."""
    if payload.startswith('M\n'):
        rest = payload[2:]
        if '\n' not in rest:
            return None
        payload = rest.split('\n', 1)[1]
    if '\n' not in payload:
        return None
    sender, remainder = payload.split('\n', 1)
    try:
        message = json.loads(remainder)
    except ValueError:
        return to_bytes(payload)
    if isinstance(message, list) and len(message) == 3 and message[1] == 0:
        message[0] = '?'
        remainder = compact(message).decode('utf-8', 'surrogatepass')
    return to_bytes((sender or 'peer') + '\n' + remainder)


c = Corpus('fuzz-synchronizer')
for transcript in transcripts['transcripts']:
    by_conn = {}
    for f in transcript.get('frames', []):
        if f.get('dir') == 's2c' and isinstance(f.get('payload'), str):
            frame = engine_frame(f['payload'])
            if frame is not None:
                by_conn.setdefault(f.get('conn'), []).append(frame)
    for frames in by_conn.values():
        c.add(SEPARATOR.join(frames))
        for frame in frames:
            c.add(frame)
for case in invalid.get('clientLegacy', []):
    frames = [engine_frame(p) for p in case.get('payloadsToClient', []) if isinstance(p, str)]
    frames = [f for f in frames if f is not None]
    if frames:
        c.add(SEPARATOR.join(frames))
sync_count = c.count

print('new seeds: fuzz-json %d, fuzz-message-validation %d, fuzz-payload-decoder %d, '
      'fuzz-apply-changes %d, fuzz-persister-load %d, fuzz-sqlite-persister-load %d, '
      'fuzz-synchronizer %d'
      % (json_count, message_count, payload_count, apply_count, persister_count, sqlite_count,
         sync_count))
