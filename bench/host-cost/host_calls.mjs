// Counts the proxy-wasm host calls the filter makes in each phase of a request: the module runs
// in Node against a fake proxy-wasm host (ABI 0.2.1) that answers like Envoy and counts every
// import called. Every host call crosses the Wasm boundary (docs/host-cost.md), so the count is a
// cost that can be compared between builds without timing anything.
//
//   node bench/host-cost/host_calls.mjs <sluice_wasm.wasm> [<baseline.wasm>]
//
// The configuration is make bench's (every feature on: quotas on two scopes, the default
// guardrails, picking with a snapshot of three replicas, token accounting). Each scenario runs
// twice and the second run is reported: the first defines the metrics its label sets need (once
// per VM). With a baseline module, prints both and exits 1 when the first makes more calls than
// the baseline in any phase.
import fs from 'node:fs';
import crypto from 'node:crypto';
import process from 'node:process';
import { WASI } from 'node:wasi';

const KEY = 'sk-count';
const TINY_KEYS = ['sk-tiny-0', 'sk-tiny-1'];
const sha = (s) => crypto.createHash('sha256').update(s).digest('hex');
const CONFIG = JSON.stringify({
  routing: { model_header: 'x-sluice-model', base_model_header: 'x-sluice-base-model', unhandled_paths: 'reject' },
  limits: { max_request_body_bytes: 8388608 },
  models: {
    'meta-llama/Llama-3.1-8B-Instruct': { pool: 'llama_8b', context_window: 131072, adapters: ['sql-lora'] },
    'Qwen/Qwen2.5-7B-Instruct': { pool: 'qwen_7b', context_window: 32768 },
  },
  aliases: { 'gpt-4o': 'meta-llama/Llama-3.1-8B-Instruct', 'gpt-4o-mini': 'Qwen/Qwen2.5-7B-Instruct' },
  picking: { picker_cluster: 'sluice_picker', refresh_ms: 50, stale_after_ms: 600000, fallbacks: 2 },
  guardrails: {},
  quotas: {
    keys: [{ sha256: sha(KEY), tenant: 'bench' }, ...TINY_KEYS.map((k, i) => ({ sha256: sha(k), tenant: `tiny${i}` }))],
    tenants: {
      bench: { limits: { requests_per_minute: 1000000000, tokens_per_minute: 1000000000000, max_concurrent: 100000,
        budgets: [{ period: 'day', tokens: 1000000000000000, usd: 1000000000 }] } },
      tiny0: { limits: { requests_per_minute: 1 } },
      tiny1: { limits: { requests_per_minute: 1 } },
    },
    models: { 'meta-llama/Llama-3.1-8B-Instruct': { requests_per_minute: 1000000000 } },
    prices: { 'meta-llama/Llama-3.1-8B-Instruct': { input: 0.05, output: 0.08 } },
  },
});

// The picker's snapshot (sluice_wire::Snapshot) in postcard: varints, length-prefixed strings.
function varint(n) {
  const out = []; let v = BigInt(n);
  do { let b = Number(v & 0x7fn); v >>= 7n; if (v) b |= 0x80; out.push(b); } while (v);
  return out;
}
const str = (s) => { const b = Buffer.from(s); return [...varint(b.length), ...b]; };
const f32 = (x) => { const b = Buffer.alloc(4); b.writeFloatLE(x); return [...b]; };
const endpoint = (address, waiting) => [...str(address), 1, ...varint(waiting), ...varint(1), ...f32(0.2),
  ...varint(16), ...varint(4), ...varint(0), ...varint(0), ...varint(10)];
const pool = (name, model, eps) => [...str(name), ...str(model), ...varint(eps.length), ...eps.flat()];
const snapshot = (nowMs) => Uint8Array.from([...varint(1), ...varint(7), ...varint(nowMs), ...varint(50), ...varint(2),
  ...pool('llama_8b', 'meta-llama/Llama-3.1-8B-Instruct',
    [endpoint('10.0.0.1:8000', 0), endpoint('10.0.0.2:8000', 1), endpoint('10.0.0.3:8000', 2)]),
  ...pool('qwen_7b', 'Qwen/Qwen2.5-7B-Instruct', [endpoint('10.0.1.1:8000', 0)])]);

const serializeMap = (pairs) => {
  const parts = [Buffer.alloc(4)]; parts[0].writeUInt32LE(pairs.length);
  for (const [k, v] of pairs) {
    const b = Buffer.alloc(8); b.writeUInt32LE(Buffer.byteLength(k)); b.writeUInt32LE(Buffer.byteLength(v), 4); parts.push(b);
  }
  for (const [k, v] of pairs) parts.push(Buffer.from(k), Buffer.from([0]), Buffer.from(v), Buffer.from([0]));
  return Uint8Array.from(Buffer.concat(parts));
};
const u64 = (n) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(n)); return Uint8Array.from(b); };

/// Loads `path` in a fresh fake host and runs every scenario; returns [{name, status, calls}].
function run(path) {
  let inst; let phase = 'load'; let calls = {};
  const mem = () => new DataView(inst.exports.memory.buffer);
  const bytes = (ptr, len) => new Uint8Array(inst.exports.memory.buffer, ptr, len).slice();
  const text = (ptr, len) => Buffer.from(bytes(ptr, len)).toString();
  // Hands `data` to the module the way Envoy does: in memory the module allocates.
  const give = (data, retPtr, retSize) => {
    let p = 0;
    if (data.length > 0) {
      p = inst.exports.proxy_on_memory_allocate(data.length);
      new Uint8Array(inst.exports.memory.buffer, p, data.length).set(data);
    }
    mem().setUint32(retPtr, p, true); mem().setUint32(retSize, data.length, true); return 0;
  };
  const parseMap = (ptr, len) => {
    const b = Buffer.from(bytes(ptr, len)); const n = b.readUInt32LE(0); const out = []; let off = 4 + n * 8;
    for (let i = 0; i < n; i++) {
      const kl = b.readUInt32LE(4 + i * 8); const vl = b.readUInt32LE(8 + i * 8);
      out.push([b.subarray(off, off + kl).toString(), b.subarray(off + kl + 1, off + kl + 1 + vl).toString()]);
      off += kl + vl + 2;
    }
    return out;
  };
  const shared = new Map(); let version = 1;
  const maps = { 0: [], 2: [] };
  const buffers = { 0: new Uint8Array(), 1: new Uint8Array(), 7: Uint8Array.from(Buffer.from(CONFIG)) };
  const properties = new Map(); let reply = null; let metric = 1;
  const env = {
    proxy_log: () => 0,
    proxy_get_header_map_pairs: (t, rp, rs) => give(serializeMap(maps[t] || []), rp, rs),
    proxy_get_header_map_value: (t, kp, kl, rp, rs) => {
      const hit = (maps[t] || []).find(([n]) => n === text(kp, kl));
      return hit ? give(Uint8Array.from(Buffer.from(hit[1])), rp, rs) : 1;
    },
    proxy_replace_header_map_value: (t, kp, kl, vp, vl) => {
      const k = text(kp, kl); maps[t] = (maps[t] || []).filter(([n]) => n !== k); maps[t].push([k, text(vp, vl)]); return 0;
    },
    proxy_add_header_map_value: (t, kp, kl, vp, vl) => { (maps[t] ||= []).push([text(kp, kl), text(vp, vl)]); return 0; },
    proxy_remove_header_map_value: (t, kp, kl) => { const k = text(kp, kl); maps[t] = (maps[t] || []).filter(([n]) => n !== k); return 0; },
    proxy_set_header_map_pairs: (t, p, l) => { maps[t] = parseMap(p, l); return 0; },
    proxy_get_buffer_bytes: (t, start, max, rp, rs) => (buffers[t] ? give(buffers[t].slice(start, start + max), rp, rs) : 1),
    proxy_set_buffer_bytes: (t, start, size, p, l) => {
      const b = buffers[t] || new Uint8Array();
      buffers[t] = Uint8Array.from([...b.slice(0, start), ...bytes(p, l), ...b.slice(start + size)]); return 0;
    },
    proxy_get_property: (pp, pl, rp, rs) => {
      const v = properties.get(text(pp, pl).replace(/\0/g, '.')); return v ? give(v, rp, rs) : 1;
    },
    proxy_set_property: () => 0,
    proxy_get_shared_data: (kp, kl, rp, rs, cp) => {
      const e = shared.get(text(kp, kl)); if (!e) return 1;
      give(e.value, rp, rs); mem().setUint32(cp, e.cas, true); return 0;
    },
    proxy_set_shared_data: (kp, kl, vp, vl, cas) => {
      const k = text(kp, kl); const e = shared.get(k);
      if (cas !== 0 && e && e.cas !== cas) return 8; // CasMismatch
      shared.set(k, { value: bytes(vp, vl), cas: ++version }); return 0;
    },
    proxy_get_current_time_nanoseconds: (rp) => { mem().setBigUint64(rp, BigInt(Date.now()) * 1000000n, true); return 0; },
    proxy_send_local_response: (status, dp, dl, bp, bl, hp, hl) => {
      reply = { status, body: bytes(bp, bl), headers: parseMap(hp, hl) }; return 0;
    },
    proxy_define_metric: (t, np, nl, rp) => { mem().setUint32(rp, metric++, true); return 0; },
    proxy_increment_metric: () => 0,
    proxy_record_metric: () => 0,
    proxy_get_metric: () => 0,
    proxy_set_tick_period_milliseconds: () => 0,
    proxy_http_call: (...a) => { mem().setUint32(a[a.length - 1], 1, true); return 0; },
    proxy_close_stream: () => 0,
    proxy_continue_stream: () => 0,
    proxy_set_effective_context: () => 0,
    proxy_done: () => 0,
    proxy_get_status: () => 0,
    proxy_call_foreign_function: () => 1,
  };
  const module = new WebAssembly.Module(fs.readFileSync(path));
  const imports = { env: {} };
  for (const { module: from, name } of WebAssembly.Module.imports(module)) {
    if (from !== 'env') continue;
    const fn = env[name] || (() => 1);
    imports.env[name] = (...args) => {
      if (name !== 'proxy_log') {
        const c = (calls[phase] ||= {}); const short = name.replace(/^proxy_/, '');
        c[short] = (c[short] || 0) + 1;
      }
      return fn(...args);
    };
  }
  const wasi = new WASI({ version: 'preview1', returnOnExit: true });
  imports.wasi_snapshot_preview1 = wasi.wasiImport;
  inst = new WebAssembly.Instance(module, imports);
  wasi.initialize(inst);
  const x = inst.exports;
  x.proxy_on_context_create(1, 0);
  x.proxy_on_vm_start(1, 0);
  if (!x.proxy_on_configure(1, buffers[7].length)) throw new Error(`${path} refused the configuration`);
  shared.set('sluice.snapshot', { value: snapshot(Date.now()), cas: ++version });
  shared.set('sluice.snapshot.version', { value: u64(7), cas: ++version });
  x.proxy_on_tick(1);
  properties.set('xds.route_name', Uint8Array.from(Buffer.from('inference')));

  // One request through the phases Envoy calls; a local reply also runs the response phase.
  let ctx = 1;
  const request = (name, { method = 'POST', path: p = '/v1/chat/completions', headers = [], body = null, response = null }) => {
    ctx += 1; calls = {}; reply = null;
    const id = ctx;
    maps[0] = [[':method', method], [':path', p], [':authority', 'gateway'], ...headers];
    phase = 'context'; x.proxy_on_context_create(id, 1);
    phase = 'request headers'; x.proxy_on_request_headers(id, maps[0].length, body === null ? 1 : 0);
    if (!reply && body !== null) {
      buffers[0] = Uint8Array.from(Buffer.from(body));
      phase = 'request body'; x.proxy_on_request_body(id, buffers[0].length, 1);
    }
    const resp = reply
      ? { status: reply.status, headers: reply.headers, chunks: [Buffer.from(reply.body).toString()] }
      : response;
    maps[2] = [[':status', String(resp.status)], ...resp.headers];
    phase = 'response headers';
    const held = x.proxy_on_response_headers(id, maps[2].length, 0) === 1;
    phase = 'response body';
    const chunks = held ? [resp.chunks.join('')] : resp.chunks;
    chunks.forEach((c, i) => {
      buffers[1] = Uint8Array.from(Buffer.from(c));
      x.proxy_on_response_body(id, buffers[1].length, i === chunks.length - 1 ? 1 : 0);
    });
    properties.set('response.code', u64(resp.status));
    phase = 'log'; x.proxy_on_log(id);
    phase = 'done'; x.proxy_on_done(id); x.proxy_on_delete(id);
    return { name, status: resp.status, calls };
  };

  const auth = [['authorization', `Bearer ${KEY}`], ['content-type', 'application/json']];
  const prompt = 'Summarize the following text in three sentences. '.repeat(20);
  const chat = (extra = {}) => JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: prompt }], max_tokens: 64, ...extra });
  const usage = '"usage":{"prompt_tokens":230,"completion_tokens":12,"total_tokens":242}';
  const json = (content) => ({ status: 200, headers: [['content-type', 'application/json'], ['content-length', '300']],
    chunks: [`{"id":"c1","object":"chat.completion","model":"meta-llama/Llama-3.1-8B-Instruct","choices":[{"index":0,"message":{"role":"assistant","content":${JSON.stringify(content)}},"finish_reason":"stop"}],${usage}}`] });
  const ev = (o) => `data: ${JSON.stringify(o)}\n\n`;
  const delta = (t) => ev({ id: 'c1', object: 'chat.completion.chunk', model: 'meta-llama/Llama-3.1-8B-Instruct', choices: [{ index: 0, delta: { content: t } }], usage: null });
  const stream = { status: 200, headers: [['content-type', 'text/event-stream']],
    chunks: [delta('Hello'), delta(' there,') + delta(' friend.'),
      `${ev({ id: 'c1', object: 'chat.completion.chunk', choices: [], usage: { prompt_tokens: 230, completion_tokens: 3, total_tokens: 233 } })}data: [DONE]\n\n`] };
  let results;
  for (const pass of [0, 1]) {
    const tiny = [['authorization', `Bearer ${TINY_KEYS[pass]}`], ['content-type', 'application/json']];
    results = [
      request('chat, JSON response', { headers: auth, body: chat(), response: json('The text says hello.') }),
      request('chat, streamed', { headers: auth, body: chat({ stream: true }), response: stream }),
      request('chat, JSON response redacted', { headers: auth, body: chat(), response: json('Mail jane@example.com for more.') }),
      request('chat, client-sent routing headers',
        { headers: [...auth, ['x-sluice-model', 'x'], ['x-gateway-destination-endpoint', '10.9.9.9:80']], body: chat(), response: json('ok') }),
      request('quota: first request of a tenant', { headers: tiny, body: chat(), response: json('ok') }),
      request('quota: refused (429)', { headers: tiny, body: chat() }),
      request('GET /v1/models', { method: 'GET', path: '/v1/models', headers: [['authorization', `Bearer ${KEY}`]] }),
      request('no key (401)', { headers: [['content-type', 'application/json']], body: chat() }),
    ];
  }
  return results;
}

const sum = (calls) => Object.values(calls).reduce((s, n) => s + n, 0);
const [path, baseline] = process.argv.slice(2);
if (!path) {
  console.error('usage: node host_calls.mjs <sluice_wasm.wasm> [<baseline.wasm>]');
  process.exit(2);
}
process.removeAllListeners('warning'); // node:wasi is "experimental"
const ours = run(path);
const theirs = baseline ? run(baseline) : null;
let worse = false;
for (const [i, r] of ours.entries()) {
  const total = Object.values(r.calls).reduce((s, c) => s + sum(c), 0);
  const base = theirs ? Object.values(theirs[i].calls).reduce((s, c) => s + sum(c), 0) : null;
  console.log(`## ${r.name}: ${r.status}, ${total} host calls${base === null ? '' : ` (baseline ${base})`}`);
  const phases = new Set([...Object.keys(r.calls), ...(theirs ? Object.keys(theirs[i].calls) : [])]);
  for (const p of phases) {
    const c = r.calls[p] || {};
    const b = theirs ? sum(theirs[i].calls[p] || {}) : null;
    if (b !== null && sum(c) > b) worse = true;
    const detail = Object.entries(c).sort().map(([k, v]) => `${k}×${v}`).join(' ');
    console.log(`  ${p.padEnd(17)} ${String(sum(c)).padStart(3)}${b === null ? '' : ` (${b})`.padStart(6)}  ${detail}`);
  }
}
if (worse) {
  console.log('MORE host calls than the baseline in some phase');
  process.exit(1);
}
