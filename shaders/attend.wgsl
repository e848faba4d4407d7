// Decode attention for one query per row against a key/value cache, reading only the valid
// prefix [0, n_valid) of the cache: n_valid is the row's step position + 1 (self-attention,
// read from the step state) or a fixed length (cross-attention over the encoder output).
// The keys are split into chunks of 64 * KEYS_PER_LANE; each workgroup handles one (chunk, head,
// row) and
// writes a partial softmax (max, sum, weighted values); `merge` combines the chunks (split-K).
// A single-chunk grid (SINGLE) writes the output directly and needs no merge.
// Chunks past n_valid return at once, so a step's cost follows n_valid, not the capacity.
//
// Caches are transposed per head: kt[row][head][d][cap] and vt likewise (cap % 16 == 0), in
// f16 (KV_F16, two per word) or f32, so that 16 neighbouring keys of one dimension are 32 (or
// 64) contiguous bytes.
//
// Bindings (group 0):
//   0 params    uniform  Params
//   1 q         storage  array<vec4<f32>>  row r, head h at q_base + r*q_row + h*head_dim
//   2 kt        storage  array<vec4<u32>>  f16 pairs or f32 bits
//   3 vt        storage  array<vec4<u32>>
//   4 state     storage  array<u32>        STATE_WORDS per row
//   5 partials  storage  array<f32>        [rows][heads][n_chunks][head_dim + 2]
//   6 out       storage  array<f32>        row r, head h, dim d at out_base + r*out_row + h*head_dim + d
// Dispatch: partial (n_chunks, heads, rows), merge (heads, rows, 1) unless SINGLE; workgroup
// (64, 1, 1).
// FULL (benchmark only) reads the whole capacity and masks positions >= n_valid, as a static
// cache with a mask does in PyTorch.

struct Params {
    heads: u32, head_dim: u32, cap: u32, fixed_len: u32,
    q_base: u32, q_row: u32, kv_row: u32, n_chunks: u32,
    out_base: u32, out_row: u32, scale: f32, _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> kt: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> vt: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> state: array<u32>;
@group(0) @binding(5) var<storage, read_write> partials: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

override USE_STATE: bool = true;
override FULL: bool = false;
override KV_F16: bool = true;
override STATE_WORDS: u32 = 16u;
const STATE_POS: u32 = 1u;
const STATE_DONE: u32 = 2u;
// Keys per invocation, 16 or 32: a chunk is LANES * KEYS_PER_LANE keys.
override KEYS_PER_LANE: u32 = 16u;
// The grid has one chunk: `partial` writes the normalised output and `merge` is not run.
override SINGLE: bool = false;
const LANES: u32 = 64u;
const MAX_KEYS_PER_LANE: u32 = 32u;

var<workgroup> probs: array<vec4<f32>, 512>; // LANES * MAX_KEYS_PER_LANE / 4
var<workgroup> red_max: array<f32, 64>;
var<workgroup> red_sum: array<f32, 64>;

fn valid_len(r: u32) -> u32 {
    if (p.fixed_len != 0u) { return p.fixed_len; }
    return state[r * STATE_WORDS + STATE_POS] + 1u;
}

fn row_done(r: u32) -> bool {
    return USE_STATE && state[r * STATE_WORDS + STATE_DONE] != 0u;
}

// Eight consecutive cache elements starting at element `e` (a multiple of 8).
fn load8(cache: u32, e: u32) -> array<vec4<f32>, 2> {
    var out: array<vec4<f32>, 2>;
    if (KV_F16) {
        var w: vec4<u32>;
        if (cache == 0u) { w = kt[e / 8u]; } else { w = vt[e / 8u]; }
        out = unpack8(w);
    } else {
        var w0: vec4<u32>;
        var w1: vec4<u32>;
        if (cache == 0u) {
            w0 = kt[e / 4u];
            w1 = kt[e / 4u + 1u];
        } else {
            w0 = vt[e / 4u];
            w1 = vt[e / 4u + 1u];
        }
        out[0] = bitcast<vec4<f32>>(w0);
        out[1] = bitcast<vec4<f32>>(w1);
    }
    return out;
}

@compute @workgroup_size(64)
fn partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let c = wid.x;
    let h = wid.y;
    let r = wid.z;
    // Uniform across the workgroup, so every invocation returns together (before any barrier).
    if (row_done(r)) { return; }
    let n_valid = valid_len(r);
    let span = select(n_valid, p.cap, FULL);
    let chunk = LANES * KEYS_PER_LANE;
    let start = c * chunk;
    if (start >= span) { return; }
    let end = min(start + chunk, span);

    // Phase 1: scores of this lane's keys, in groups of 16 neighbours.
    let hd4 = p.head_dim / 4u;
    let qi = (p.q_base + r * p.q_row + h * p.head_dim) / 4u;
    let head_base = r * p.kv_row + h * p.head_dim * p.cap; // in cache elements
    let j0 = start + lane * KEYS_PER_LANE;
    var s: array<f32, MAX_KEYS_PER_LANE>;
    for (var g = 0u; g < KEYS_PER_LANE / 16u; g++) {
        let jg = j0 + 16u * g;
        if (jg >= end) { break; }
        var acc0 = vec4<f32>(0.0); var acc1 = vec4<f32>(0.0);
        var acc2 = vec4<f32>(0.0); var acc3 = vec4<f32>(0.0);
        var ke = head_base + jg;
        for (var d4 = 0u; d4 < hd4; d4++) {
            let qv = q[qi + d4];
            for (var dd = 0u; dd < 4u; dd++) {
                let a = load8(0u, ke);
                let b = load8(0u, ke + 8u);
                ke += p.cap;
                acc0 += a[0] * qv[dd]; acc1 += a[1] * qv[dd];
                acc2 += b[0] * qv[dd]; acc3 += b[1] * qv[dd];
            }
        }
        for (var i = 0u; i < 4u; i++) {
            s[16u * g + i] = acc0[i]; s[16u * g + 4u + i] = acc1[i];
            s[16u * g + 8u + i] = acc2[i]; s[16u * g + 12u + i] = acc3[i];
        }
    }
    var lane_max = -3.0e38;
    for (var i = 0u; i < KEYS_PER_LANE; i++) {
        let j = j0 + i;
        if (j < end && j < n_valid) {
            s[i] *= p.scale;
            lane_max = max(lane_max, s[i]);
        }
    }
    red_max[lane] = lane_max;
    workgroupBarrier();
    var m = -3.0e38;
    for (var i = 0u; i < LANES; i++) { m = max(m, red_max[i]); }
    var lane_sum = 0.0;
    for (var i = 0u; i < KEYS_PER_LANE; i++) {
        let j = j0 + i;
        var e = 0.0;
        if (j < end && j < n_valid) { e = exp(s[i] - m); }
        s[i] = e;
        lane_sum += e;
    }
    for (var i = 0u; i < KEYS_PER_LANE / 4u; i++) {
        probs[lane * (KEYS_PER_LANE / 4u) + i] = vec4<f32>(s[4u * i], s[4u * i + 1u], s[4u * i + 2u], s[4u * i + 3u]);
    }
    red_sum[lane] = lane_sum;
    workgroupBarrier();
    var l = 0.0;
    for (var i = 0u; i < LANES; i++) { l += red_sum[i]; }

    // Phase 2: weighted values, one invocation per head dimension.
    let pbase = ((r * p.heads + h) * p.n_chunks + c) * (p.head_dim + 2u);
    let n8 = (end - start + 7u) / 8u;
    for (var d = lane; d < p.head_dim; d += LANES) {
        let ve = head_base + d * p.cap + start;
        var acc = vec4<f32>(0.0);
        for (var i = 0u; i < n8; i++) {
            let v = load8(1u, ve + 8u * i);
            acc += v[0] * probs[2u * i] + v[1] * probs[2u * i + 1u];
        }
        let total = acc.x + acc.y + acc.z + acc.w;
        if (SINGLE) {
            out[p.out_base + r * p.out_row + h * p.head_dim + d] = total / l;
        } else {
            partials[pbase + d] = total;
        }
    }
    if (lane == 0u && !SINGLE) {
        partials[pbase + p.head_dim] = m;
        partials[pbase + p.head_dim + 1u] = l;
    }
}

@compute @workgroup_size(64)
fn merge(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let h = wid.x;
    let r = wid.y;
    if (row_done(r)) { return; }
    let span = select(valid_len(r), p.cap, FULL);
    let chunk = LANES * KEYS_PER_LANE;
    let nc = (span + chunk - 1u) / chunk;
    let stride = p.head_dim + 2u;
    let base = (r * p.heads + h) * p.n_chunks * stride;
    var mx = -3.0e38;
    for (var c = 0u; c < nc; c++) { mx = max(mx, partials[base + c * stride + p.head_dim]); }
    var denom = 0.0;
    for (var c = 0u; c < nc; c++) {
        let pc = base + c * stride;
        denom += partials[pc + p.head_dim + 1u] * exp(partials[pc + p.head_dim] - mx);
    }
    for (var d = lane; d < p.head_dim; d += LANES) {
        var acc = 0.0;
        for (var c = 0u; c < nc; c++) {
            let pc = base + c * stride;
            acc += partials[pc + d] * exp(partials[pc + p.head_dim] - mx);
        }
        out[p.out_base + r * p.out_row + h * p.head_dim + d] = acc / denom;
    }
}
