// Decode attention for one query per row against a key/value cache, reading only the valid
// prefix [0, n_valid) of the cache: n_valid is the row's step position + 1 (self-attention,
// read from the step state) or a fixed length (cross-attention over the encoder output).
// The keys are split into chunks of 64 * KEYS_PER_LANE; each workgroup handles one (chunk, head,
// row) and writes a partial softmax (max, sum, weighted values); `merge` combines the chunks
// (split-K).
// A single-chunk grid (SINGLE) writes the output directly and needs no merge.
// Chunks past n_valid return at once, so a step's cost follows n_valid, not the capacity.
//
// Caches are transposed per head: kt[row][head][d][cap] and vt likewise (cap % 16 == 0), in
// f16 (KV_F16, two per word) or f32, so that 8 neighbouring keys of one dimension are 16 (or
// 32) contiguous bytes, and neighbouring invocations read neighbouring blocks of 8 keys.
//
// Bindings (group 0):
//   0 params    uniform  Params
//   1 q         storage  array<vec4<f32>>  row r, head h at q_base + r*q_row + h*head_dim
//   2 kt        storage  array<vec4<u32>>  f16 pairs or f32 bits
//   3 vt        storage  array<vec4<u32>>
//   4 state     storage  array<u32>        STATE_WORDS per row
//   5 partials  storage  array<f32>        [rows][heads][n_chunks][head_dim + 2]
//   6 out       storage  array<f32>        row r, head h, dim d at out_base + r*out_row + h*head_dim + d
//   7, 8        64-bit views of kt and vt where the device has them (shaders/attend_kv64.wgsl)
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

// Scores, then probabilities, of the chunk's keys (LANES * MAX_KEYS_PER_LANE / 4).
var<workgroup> probs: array<vec4<f32>, 512>;
// reduce64's two levels.
var<workgroup> red64: array<f32, 64>;
var<workgroup> red8: array<f32, 8>;
// Phase 2's partial sums: [dim within the pass][key lane].
var<workgroup> red_val: array<f32, 512>;

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
        out = unpack8_act(load_kv_words(cache, e / 8u));
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

fn max4(v: vec4<f32>) -> f32 { return max(max(v.x, v.y), max(v.z, v.w)); }

fn combine(a: f32, b: f32, is_max: bool) -> f32 { return select(a + b, max(a, b), is_max); }

// The max (is_max) or the sum of v over the workgroup's 64 lanes, in two levels of eight: a
// lane reads 16 workgroup values, not 64 (lavapipe loads workgroup memory lane by lane, and the
// one-level form cost a quarter of the kernel's loads). Called from uniform control flow.
fn reduce64(v: f32, lane: u32, is_max: bool) -> f32 {
    red64[lane] = v;
    workgroupBarrier();
    if (lane < 8u) {
        var t = red64[8u * lane];
        for (var i = 1u; i < 8u; i++) { t = combine(t, red64[8u * lane + i], is_max); }
        red8[lane] = t;
    }
    workgroupBarrier();
    var r = red8[0];
    for (var i = 1u; i < 8u; i++) { r = combine(r, red8[i], is_max); }
    workgroupBarrier(); // every lane has read red8 before the next reduction writes it
    return r;
}

// Eight dims' values (dims d .. d+7 of the head, those below head_dim) of one block of eight
// keys, dotted with the keys' probabilities.
fn values_dot(ve: u32, d: u32, p0: vec4<f32>, p1: vec4<f32>) -> f32 {
    if (d >= p.head_dim) { return 0.0; }
    let v = load8(1u, ve + d * p.cap);
    return dot(v[0], p0) + dot(v[1], p1);
}

// Work is laid out so that neighbouring invocations read neighbouring addresses: in phase 1
// lane l scores the key blocks l, l + 64, ... (8 keys each: one 16-byte load of f16 keys per
// dimension); in phase 2 lane (group g, key lane kl) = (l / 8, l % 8) sums dims 8g .. 8g+7
// over key blocks kl, kl + 8, ..., and the eight key lanes of a dim meet in workgroup memory.
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
    let live_end = min(end, n_valid); // keys at or past it are masked (FULL reads them anyway)
    let blocks = (end - start + 7u) / 8u;

    // Phase 1: scaled scores of each block's 8 keys, masked keys at -3e38.
    let hd4 = p.head_dim / 4u;
    let qi = (p.q_base + r * p.q_row + h * p.head_dim) / 4u;
    let head_base = r * p.kv_row + h * p.head_dim * p.cap + start; // in cache elements
    var lane_max = -3.0e38;
    for (var blk = lane; blk < blocks; blk += LANES) {
        var a0 = vec4<f32>(0.0);
        var a1 = vec4<f32>(0.0);
        var ke = head_base + 8u * blk;
        for (var d4 = 0u; d4 < hd4; d4++) {
            let qv = q[qi + d4];
            for (var dd = 0u; dd < 4u; dd++) {
                let k = load8(0u, ke);
                ke += p.cap;
                a0 += k[0] * qv[dd];
                a1 += k[1] * qv[dd];
            }
        }
        let j = vec4<u32>(start + 8u * blk) + vec4<u32>(0u, 1u, 2u, 3u);
        a0 = select(vec4<f32>(-3.0e38), a0 * p.scale, j < vec4<u32>(live_end));
        a1 = select(vec4<f32>(-3.0e38), a1 * p.scale, j + vec4<u32>(4u) < vec4<u32>(live_end));
        probs[2u * blk] = a0;
        probs[2u * blk + 1u] = a1;
        lane_max = max(lane_max, max(max4(a0), max4(a1)));
    }
    let m = reduce64(lane_max, lane, true);
    var lane_sum = 0.0;
    for (var blk = lane; blk < blocks; blk += LANES) {
        // Masked keys weigh 0 (also when the whole chunk is masked and m is -3e38).
        let s0 = probs[2u * blk];
        let s1 = probs[2u * blk + 1u];
        let e0 = select(vec4<f32>(0.0), exp(s0 - m), s0 > vec4<f32>(-1.0e38));
        let e1 = select(vec4<f32>(0.0), exp(s1 - m), s1 > vec4<f32>(-1.0e38));
        probs[2u * blk] = e0;
        probs[2u * blk + 1u] = e1;
        lane_sum += dot(e0, vec4<f32>(1.0)) + dot(e1, vec4<f32>(1.0));
    }
    let l = reduce64(lane_sum, lane, false);

    // Phase 2: weighted values, 64 dims per pass.
    let pbase = ((r * p.heads + h) * p.n_chunks + c) * (p.head_dim + 2u);
    let g = lane / 8u;
    let kl = lane % 8u;
    for (var pass0 = 0u; pass0 < p.head_dim; pass0 += 64u) {
        let d0 = pass0 + 8u * g;
        var acc0 = vec4<f32>(0.0);
        var acc1 = vec4<f32>(0.0);
        for (var blk = kl; blk < blocks; blk += 8u) {
            let p0 = probs[2u * blk];
            let p1 = probs[2u * blk + 1u];
            let ve = head_base + 8u * blk;
            acc0 += vec4<f32>(values_dot(ve, d0, p0, p1), values_dot(ve, d0 + 1u, p0, p1),
                              values_dot(ve, d0 + 2u, p0, p1), values_dot(ve, d0 + 3u, p0, p1));
            acc1 += vec4<f32>(values_dot(ve, d0 + 4u, p0, p1), values_dot(ve, d0 + 5u, p0, p1),
                              values_dot(ve, d0 + 6u, p0, p1), values_dot(ve, d0 + 7u, p0, p1));
        }
        // [dim within the pass][key lane]
        let rv = 64u * g + kl;
        red_val[rv] = acc0.x; red_val[rv + 8u] = acc0.y; red_val[rv + 16u] = acc0.z; red_val[rv + 24u] = acc0.w;
        red_val[rv + 32u] = acc1.x; red_val[rv + 40u] = acc1.y; red_val[rv + 48u] = acc1.z; red_val[rv + 56u] = acc1.w;
        workgroupBarrier();
        let d = pass0 + lane;
        if (d < p.head_dim) {
            let t = 8u * lane;
            let total = red_val[t] + red_val[t + 1u] + red_val[t + 2u] + red_val[t + 3u] + red_val[t + 4u]
                + red_val[t + 5u] + red_val[t + 6u] + red_val[t + 7u];
            if (SINGLE) {
                out[p.out_base + r * p.out_row + h * p.head_dim + d] = total / l;
            } else {
                partials[pbase + d] = total;
            }
        }
        workgroupBarrier();
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
