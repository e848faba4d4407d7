// Batched matrix multiply with a fused epilogue: the linear layers, the convolutions (as
// GEMMs over overlapping input rows), and the encoder's attention products all run here.
//
//   y[zo][zi][m][n] = epilogue( sum_k x[zo][zi][m][k] * b[zo][zi][k][n] )
//   epilogue: * scale[n] (int8), + bias[n], then GELU (exact, erf), then + add[zo][zi][m][n],
//   then (+= y if ACCUM)
//
// Bindings (group 0):
//   0 params  uniform  Params (below)
//   1 x       storage  array<vec4<f32>>  rows of k contiguous values (k % 4 == 0)
//   2 b       storage  array<vec4<u32>>  columns in blocks of 8 (n padded to 16): block j of
//                                        k-step s at vec4 index b_base4 + s*b_k4 + j*b_blk4.
//                                        k-major (each k a row of n columns) or blocked (each
//                                        block's k-run contiguous: b_k4 = 1, b_blk4 = k).
//                                        B_FMT 0: f32 bits; 1: two f16 per u32; 2: int8 with
//                                        k-rows interleaved in pairs ([k/2][n][2] bytes), then
//                                        one f32 scale per column from vec4 index scale_base4
//   9 b64     storage  array<vec4<u64>>  the same buffer as b, read 32 bytes at a time when B64
//  10 x64     storage  array<vec4<u64>>  the same buffer as x, likewise by the matvec when X64
//                                        (both declared in shaders/int64.wgsl)
//   3 bias    storage  array<f32>        [bias_base + n] (read only when HAS_BIAS)
//   4 add     storage  array<f32>        (read only when HAS_ADD)
//   5 state   storage  array<u32>        decode step state, STATE_WORDS per row (when USE_STATE)
//   6 out0    storage  array<u32>        segment 0: f32 bits, or packed f16 when SEG0_F16
//   7 out1    storage  array<u32>        segment 1: likewise (SEG1_F16)
//   8 out2    storage  array<u32>        segment 2: likewise (SEG2_F16)
// The output columns [0, n) are cut into up to three segments, each with its own buffer and
// affine index map (row-major, transposed, or a KV cache written at the row's step position).
//
// Two entry points share the bindings, parameters and epilogue:
//   main    (GEMM) dispatch (ceil(n / 16 / WG_X), ceil(m / ROWS / WG_Y), z_outer * z_inner),
//           workgroup (WG_X, WG_Y, 1). Each invocation computes ROWS (= MAX_ROWS) rows x 16
//           columns: per k it reads 32 (f16) or 64 (f32) contiguous bytes of b (int8: 32 bytes
//           per pair of k), neighbouring invocations reading neighbouring blocks. On devices
//           with 8-lane subgroups (shaders/subgroup8.wgsl is prepended) the host makes WG_Y = 1,
//           and the x rows, the same for every lane, are loaded once per subgroup and broadcast.
//   matvec  (decode rows, m <= MV_MAX_ROWS, no batch) dispatch (ceil(n / 8 / WG_X), 1, 1),
//           workgroup (WG_X, KSPLIT, 1); see its own comment below. With 8-lane subgroups
//           and several rows, the rows' x are likewise loaded once per subgroup.

struct Seg {
    end: u32,     // one past the segment's last column
    base: u32,
    row: u32,     // stride per output row m
    col: u32,     // stride per column inside the segment
    outer: u32,   // stride per zo
    inner: u32,   // stride per zi
    pos: u32,     // stride per step position of row m (0 when unused)
    _pad: u32,
}

struct Params {
    m: u32, n: u32, k: u32, z_inner: u32,
    x_base: u32, x_row: u32, x_outer: u32, x_inner: u32,       // in f32 elements
    b_base4: u32, b_k4: u32, b_outer4: u32, b_inner4: u32,     // in vec4<u32> units
    add_base: u32, add_row: u32, add_outer: u32, add_inner: u32,
    bias_base: u32, scale_base4: u32, b_blk4: u32, _p2: u32,
    seg: array<Seg, 3>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> addend: array<f32>;
@group(0) @binding(5) var<storage, read> state: array<u32>;
@group(0) @binding(6) var<storage, read_write> out0: array<u32>;
@group(0) @binding(7) var<storage, read_write> out1: array<u32>;
@group(0) @binding(8) var<storage, read_write> out2: array<u32>;

override WG_X: u32 = 64u;       // invocations along the column blocks
override WG_Y: u32 = 1u;        // invocations along the row groups
override ROWS: u32 = 1u;          // rows per invocation: MAX_ROWS (main), m (matvec)
override B_FMT: u32 = 1u;         // 0 f32, 1 f16, 2 int8 (see binding 2)
override HAS_BIAS: bool = false;
override GELU: bool = false;
override HAS_ADD: bool = false;
override ACCUM: bool = false;     // segment 0 (f32) accumulates into what out0 holds (residual)
override USE_STATE: bool = false; // rows are decode rows: skip done rows, use their positions
override SEG0_F16: bool = false;
override SEG1_F16: bool = false;
override SEG2_F16: bool = false;
// B read through its 64-bit view `b64` (shaders/int64.wgsl): by the GEMM for k-major f32/f16
// with even vec4 offsets, by the matvec for blocked f16.
override B64: bool = false;
// The matvec (with B64) reads x through its 64-bit view `x64`, two k4 steps per load: x_base,
// x_row and k are multiples of 8 and each k-slice holds an even number of k4 steps.
override X64: bool = false;
override STATE_WORDS: u32 = 16u;
const STATE_POS: u32 = 1u;
const STATE_DONE: u32 = 2u;
// The accumulator arrays are exactly the tile: an array larger than the rows it holds is not
// kept in registers by lavapipe (measured 3.5x slower).
const MAX_ROWS: u32 = 16u;
// GEMM rows' x shared through 8-lane subgroup broadcasts (shaders/subgroup8.wgsl). Needs all
// of a subgroup's lanes on the same rows, which one-row-group workgroups (WG_Y = 1) give.
override SHARE_X: bool = SG8 && ROWS == 16u && WG_Y == 1u;

// 16 columns of one k from vec4 index i4. With B64 (GEMM, k-major, even offsets) they are 32
// (f16) or 64 (f32) contiguous bytes, read as one or two vec4<u64> loads.
fn load_b(i4: u32) -> array<vec4<f32>, 4> {
    var q: array<vec4<u32>, 4>;
    if (B64) {
        let lo = load_b64_pair(i4 / 2u);
        q[0] = lo[0];
        q[1] = lo[1];
        if (B_FMT == 0u) {
            let hi = load_b64_pair(i4 / 2u + 1u);
            q[2] = hi[0];
            q[3] = hi[1];
        }
    } else {
        q[0] = b[i4];
        if (B_FMT == 1u) {
            q[1] = b[i4 + p.b_blk4];
        } else {
            q[1] = b[i4 + 1u];
            q[2] = b[i4 + p.b_blk4];
            q[3] = b[i4 + p.b_blk4 + 1u];
        }
    }
    var w: array<vec4<f32>, 4>;
    if (B_FMT == 1u) {
        let h0 = unpack8(q[0]);
        let h1 = unpack8(q[1]);
        w[0] = h0[0];
        w[1] = h0[1];
        w[2] = h1[0];
        w[3] = h1[1];
    } else {
        w[0] = bitcast<vec4<f32>>(q[0]);
        w[1] = bitcast<vec4<f32>>(q[1]);
        w[2] = bitcast<vec4<f32>>(q[2]);
        w[3] = bitcast<vec4<f32>>(q[3]);
    }
    return w;
}

// Two interleaved k-rows of 16 int8 columns: [0..4] for the even k, [4..8] for the odd one.
fn load_b_i8(i4: u32) -> array<vec4<f32>, 8> {
    var w: array<vec4<f32>, 8>;
    let q0 = bitcast<vec4<i32>>(b[i4]);
    let q1 = bitcast<vec4<i32>>(b[i4 + 1u]);
    // Word j holds (column 2j, even k), (2j, odd k), (2j+1, even k), (2j+1, odd k).
    w[0] = vec4<f32>(vec4<i32>(extractBits(q0.x, 0u, 8u), extractBits(q0.x, 16u, 8u), extractBits(q0.y, 0u, 8u), extractBits(q0.y, 16u, 8u)));
    w[1] = vec4<f32>(vec4<i32>(extractBits(q0.z, 0u, 8u), extractBits(q0.z, 16u, 8u), extractBits(q0.w, 0u, 8u), extractBits(q0.w, 16u, 8u)));
    w[2] = vec4<f32>(vec4<i32>(extractBits(q1.x, 0u, 8u), extractBits(q1.x, 16u, 8u), extractBits(q1.y, 0u, 8u), extractBits(q1.y, 16u, 8u)));
    w[3] = vec4<f32>(vec4<i32>(extractBits(q1.z, 0u, 8u), extractBits(q1.z, 16u, 8u), extractBits(q1.w, 0u, 8u), extractBits(q1.w, 16u, 8u)));
    w[4] = vec4<f32>(vec4<i32>(extractBits(q0.x, 8u, 8u), extractBits(q0.x, 24u, 8u), extractBits(q0.y, 8u, 8u), extractBits(q0.y, 24u, 8u)));
    w[5] = vec4<f32>(vec4<i32>(extractBits(q0.z, 8u, 8u), extractBits(q0.z, 24u, 8u), extractBits(q0.w, 8u, 8u), extractBits(q0.w, 24u, 8u)));
    w[6] = vec4<f32>(vec4<i32>(extractBits(q1.x, 8u, 8u), extractBits(q1.x, 24u, 8u), extractBits(q1.y, 8u, 8u), extractBits(q1.y, 24u, 8u)));
    w[7] = vec4<f32>(vec4<i32>(extractBits(q1.z, 8u, 8u), extractBits(q1.z, 24u, 8u), extractBits(q1.w, 8u, 8u), extractBits(q1.w, 24u, 8u)));
    return w;
}

// Exact GELU, x * Phi(x). erf from Abramowitz-Stegun 7.1.26 is only good to 1.5e-7 absolute
// in erf, which is below f32 resolution of the products that follow.
fn gelu(v: f32) -> f32 {
    let z = abs(v) * 0.70710678118654752;
    let t = 1.0 / (1.0 + 0.3275911 * z);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let erf_abs = 1.0 - poly * exp(-z * z);
    let erf_v = select(-erf_abs, erf_abs, v >= 0.0);
    return 0.5 * v * (1.0 + erf_v);
}

// a + w * s, in that order (the CPU reference's order).
fn madd(w: vec4<f32>, s: f32, a: vec4<f32>) -> vec4<f32> { return a + w * s; }

fn row_done(m: u32) -> bool {
    return USE_STATE && state[m * STATE_WORDS + STATE_DONE] != 0u;
}

fn store_f16(seg: u32, idx: u32, v: f32) {
    // Two f16 share a word: read-modify-write the half this element owns. No other invocation
    // of the dispatch writes the same word (see the host's checks on segment layouts).
    let word = idx >> 1u;
    let hi = (idx & 1u) == 1u;
    let h = pack2x16float(vec2<f32>(v, 0.0)) & 0xffffu;
    if (seg == 0u) {
        let old = out0[word];
        out0[word] = select((old & 0xffff0000u) | h, (old & 0xffffu) | (h << 16u), hi);
    } else if (seg == 1u) {
        let old = out1[word];
        out1[word] = select((old & 0xffff0000u) | h, (old & 0xffffu) | (h << 16u), hi);
    } else {
        let old = out2[word];
        out2[word] = select((old & 0xffff0000u) | h, (old & 0xffffu) | (h << 16u), hi);
    }
}

// One element of segment `s` at index `idx` (f32 bits or a packed f16 half).
fn put(s: u32, idx: u32, v: f32) {
    if (s == 0u) {
        if (SEG0_F16) {
            store_f16(0u, idx, v);
        } else if (ACCUM) {
            out0[idx] = bitcast<u32>(v + bitcast<f32>(out0[idx]));
        } else {
            out0[idx] = bitcast<u32>(v);
        }
    } else if (s == 1u) {
        if (SEG1_F16) { store_f16(1u, idx, v); } else { out1[idx] = bitcast<u32>(v); }
    } else {
        if (SEG2_F16) { store_f16(2u, idx, v); } else { out2[idx] = bitcast<u32>(v); }
    }
}

// Finishes four accumulated columns n .. n+3 of row m and writes those below p.n.
// `idx` is the destination of column n; `col` the segment's column stride.
fn finish4(m: u32, n: u32, zo: u32, zi: u32, s: u32, idx: u32, col: u32, acc: vec4<f32>) {
    if (n >= p.n) { return; }
    var v = acc;
    if (B_FMT == 2u) {
        // Columns are padded to 16, so the four scales always exist.
        v *= bitcast<vec4<f32>>(b[p.scale_base4 + n / 4u]);
    }
    if (HAS_BIAS) {
        let b = p.bias_base + n;
        v += vec4<f32>(bias[b], bias[min(b + 1u, b + p.n - n - 1u)], bias[min(b + 2u, b + p.n - n - 1u)],
                       bias[min(b + 3u, b + p.n - n - 1u)]);
    }
    if (GELU) { v = vec4<f32>(gelu(v.x), gelu(v.y), gelu(v.z), gelu(v.w)); }
    if (HAS_ADD) {
        let a = p.add_base + zo * p.add_outer + zi * p.add_inner + m * p.add_row + n;
        let last = a + p.n - n - 1u;
        v += vec4<f32>(addend[a], addend[min(a + 1u, last)], addend[min(a + 2u, last)], addend[min(a + 3u, last)]);
    }
    put(s, idx, v.x);
    if (n + 1u < p.n) { put(s, idx + col, v.y); }
    if (n + 2u < p.n) { put(s, idx + 2u * col, v.z); }
    if (n + 3u < p.n) { put(s, idx + 3u * col, v.w); }
}

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let blk = gid.x;
    let col0 = blk * 16u;
    let row0 = gid.y * ROWS;
    // With shared x rows, invocations past the last column stay to the end of the k loop
    // (their lanes serve the broadcasts), loading the last block and storing nothing.
    let lane = sg8_lane();
    let share_x = SHARE_X && lane < 8u;
    let live = col0 < p.n;
    let subgroup_live = sg8_any(live);
    if (row0 >= p.m || !(live || (share_x && subgroup_live))) { return; }
    let zo = gid.z / p.z_inner;
    let zi = gid.z % p.z_inner;
    if (USE_STATE) {
        var any_live = false;
        for (var r = 0u; r < ROWS; r++) {
            if (row0 + r < p.m && !row_done(row0 + r)) { any_live = true; }
        }
        if (!any_live) { return; }
    }

    let x0 = p.x_base + zo * p.x_outer + zi * p.x_inner;
    var xoff: array<u32, MAX_ROWS>;
    for (var r = 0u; r < ROWS; r++) {
        // Rows past m re-read row m-1; their results are never stored.
        xoff[r] = (x0 + min(row0 + r, p.m - 1u) * p.x_row) / 4u;
    }
    // Two blocks of 8 columns (int8: one vec4 covers 8 columns of a pair of k).
    var bi = p.b_base4 + zo * p.b_outer4 + zi * p.b_inner4 + min(blk, (p.n - 1u) / 16u) * 2u * p.b_blk4;

    var acc: array<array<vec4<f32>, 4>, MAX_ROWS>;
    for (var k4 = 0u; k4 < p.k / 4u; k4++) {
        var xv: array<vec4<f32>, MAX_ROWS>;
        if (share_x) {
            // Lane l loads rows l and l + 8 (ROWS = 16) and the subgroup hands them round.
            let lo = bcast8(x[xoff[lane] + k4]);
            let hi = bcast8(x[xoff[lane + 8u] + k4]);
            for (var r = 0u; r < 8u; r++) {
                xv[r] = lo[r];
                xv[r + 8u] = hi[r];
            }
        } else {
            for (var r = 0u; r < ROWS; r++) { xv[r] = x[xoff[r] + k4]; }
        }
        if (B_FMT == 2u) {
            // b_k4 steps over a pair of k-rows; both pairs of the step are written out (below).
            let wa = load_b_i8(bi);
            let wb = load_b_i8(bi + p.b_k4);
            bi += 2u * p.b_k4;
            for (var r = 0u; r < ROWS; r++) {
                let s = xv[r];
                for (var c = 0u; c < 4u; c++) {
                    acc[r][c] = (acc[r][c] + (wa[c] * s.x + wa[c + 4u] * s.y)) + (wb[c] * s.z + wb[c + 4u] * s.w);
                }
            }
        } else {
            // The four k of a step are written out, not looped over: lavapipe blends every
            // loop-carried value with the loop's lane mask once per iteration (a vblendvps per
            // accumulator), so one iteration per four k quarters those blends (-23% encoder).
            let w0 = load_b(bi);
            let w1 = load_b(bi + p.b_k4);
            let w2 = load_b(bi + 2u * p.b_k4);
            let w3 = load_b(bi + 3u * p.b_k4);
            bi += 4u * p.b_k4;
            for (var r = 0u; r < ROWS; r++) {
                let s = xv[r];
                for (var c = 0u; c < 4u; c++) {
                    acc[r][c] = madd(w3[c], s.w, madd(w2[c], s.z, madd(w1[c], s.y, madd(w0[c], s.x, acc[r][c]))));
                }
            }
        }
    }

    if (!live) { return; }

    // The block's segment (segment boundaries are multiples of 16, checked by the host).
    var s = 0u;
    var start = 0u;
    if (col0 >= p.seg[0].end) { s = 1u; start = p.seg[0].end; }
    if (col0 >= p.seg[1].end) { s = 2u; start = p.seg[1].end; }
    let sg = p.seg[s];
    let seg0 = sg.base + zo * sg.outer + zi * sg.inner + (col0 - start) * sg.col;
    // The epilogue runs over a copy of the tile, in a loop with a run-time trip count, so that
    // its code exists once, not once per vec4 of the tile (64 inlined copies before). On lavapipe
    // that cuts the cold JIT time of a GEMM pipeline from 16-50 s to 10-15 s, at the same speed.
    // The copy has constant indices only: a dynamic index into `acc` would push the
    // accumulators out of registers.
    var tile: array<vec4<f32>, 4u * MAX_ROWS>;
    for (var r = 0u; r < MAX_ROWS; r++) {
        for (var c = 0u; c < 4u; c++) { tile[4u * r + c] = acc[r][c]; }
    }
    let c4 = 4u * sg.col;
    let rows = min(ROWS, p.m - row0);
    for (var i = 0u; i < 4u * rows; i++) {
        let r = i / 4u;
        let c = i % 4u;
        let m = row0 + r;
        if (row_done(m)) { continue; }
        var idx = seg0 + m * sg.row + c * c4;
        if (USE_STATE) { idx += state[m * STATE_WORDS + STATE_POS] * sg.pos; }
        finish4(m, col0 + 4u * c, zo, zi, s, idx, sg.col, tile[i]);
    }
}

// ---------------------------------------------------------------------------------------------
// matvec: the same product and epilogue for the few rows of a decode step (m <= MAX_ROWS, no
// batch), where a GEMM tiling leaves most of the device idle. Each invocation owns 8 columns of
// every row (one vec4 of B per k for f16, two for f32, one per pair of k for int8), and the k
// range is split KSPLIT ways across the workgroup's y dimension so that small layers still
// spread over many workgroups; the KSPLIT partial sums meet in workgroup memory.
// On CPU adapters the decoder's f16 weights are blocked (b_k4 = 1): an invocation's 8 columns
// are then one contiguous run, which a CPU core streams (k-major makes neighbouring lanes read
// neighbouring addresses, as GPUs want, but each k a different page), and with B64 that run
// is read 32 bytes per load. Both together: the logits projection ~25% faster on lavapipe.
//
// Dispatch: (ceil(n / 8 / WG_X), 1, 1); workgroup (WG_X, KSPLIT, 1), ROWS = m.

override KSPLIT: u32 = 1u;
const MV_MAX_ROWS: u32 = 8u; // = MATVEC_MAX_ROWS in encode.rs
// Several decode rows' x shared through 8-lane subgroups (shaders/subgroup8.wgsl): lane l
// loads row l's next k and the subgroup hands them round, so a batch's x costs each lane one
// load per k step, as one row does (8 rows: the logits projection 2x faster on lavapipe).
override MV_SHARE_X: bool = SG8 && ROWS > 1u;
// Partial sums of slices 1 .. KSPLIT-1: [slice - 1][WG_X][row][2]; WG_X * KSPLIT <= 64.
var<workgroup> partial_sums: array<vec4<f32>, 1008>;

// Four k of blocked f16 B (64 contiguous bytes from vec4 index bi) times each row's xv.
fn mv_blocked_k4(acc: ptr<function, array<array<vec4<f32>, 2>, MV_MAX_ROWS>>, bi: u32, xv: array<vec4<f32>, MV_MAX_ROWS>) {
    let pa = load_b64_pair(bi / 2u);
    let pb = load_b64_pair(bi / 2u + 1u);
    let w0 = unpack8(pa[0]);
    let w1 = unpack8(pa[1]);
    let w2 = unpack8(pb[0]);
    let w3 = unpack8(pb[1]);
    for (var r = 0u; r < ROWS; r++) {
        let s = xv[r];
        (*acc)[r][0] += w0[0] * s.x;
        (*acc)[r][1] += w0[1] * s.x;
        (*acc)[r][0] += w1[0] * s.y;
        (*acc)[r][1] += w1[1] * s.y;
        (*acc)[r][0] += w2[0] * s.z;
        (*acc)[r][1] += w2[1] * s.z;
        (*acc)[r][0] += w3[0] * s.w;
        (*acc)[r][1] += w3[1] * s.w;
    }
}

@compute @workgroup_size(WG_X, KSPLIT)
fn matvec(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let blk = gid.x;
    let col0 = blk * 8u;
    let slice = lid.y;
    // No early return: every invocation must reach the barrier below.
    let has_cols = col0 < p.n;
    // With shared x, a lane past the last column still runs the k loop (reading the last
    // block) while its subgroup has live lanes: they need its loads. One row shares nothing,
    // and skips the subgroup operations (MV_SHARE_X is a constant, so the branch is uniform).
    var lane = 8u;
    var subgroup_has_cols = false;
    if (MV_SHARE_X) {
        lane = sg8_lane();
        subgroup_has_cols = sg8_any(has_cols);
    }
    let share_x = MV_SHARE_X && lane < 8u;
    var live = has_cols || (share_x && subgroup_has_cols);
    if (USE_STATE) {
        var any_live = false;
        for (var r = 0u; r < ROWS; r++) {
            if (!row_done(r)) { any_live = true; }
        }
        live = live && any_live;
    }
    // The row whose x this lane loads for the subgroup.
    let x_row = min(lane, ROWS - 1u);

    let k4s = p.k / 4u;
    let per_slice = (k4s + KSPLIT - 1u) / KSPLIT;
    let k4_begin = min(slice * per_slice, k4s);
    let k4_end = min(k4_begin + per_slice, k4s);
    var xoff: array<u32, MV_MAX_ROWS>;
    for (var r = 0u; r < ROWS; r++) { xoff[r] = (p.x_base + r * p.x_row) / 4u; }
    // B offsets in vec4 units; int8 steps a pair of k-rows per b_k4.
    let k_steps = select(4u, 2u, B_FMT == 2u);
    var bi = p.b_base4 + k4_begin * k_steps * p.b_k4 + min(blk, (p.n - 1u) / 8u) * p.b_blk4;

    var acc: array<array<vec4<f32>, 2>, MV_MAX_ROWS>;
    if (live && X64) {
        // lavapipe loads x lane by lane like any storage buffer, although every lane reads the
        // same address: a third of this loop's load components before X64 (the logits
        // projection ~10% faster with it). Two k4 steps per iteration, written out.
        for (var k8 = k4_begin; k8 < k4_end; k8 += 2u) {
            var xa: array<vec4<f32>, MV_MAX_ROWS>;
            var xb: array<vec4<f32>, MV_MAX_ROWS>;
            if (share_x) {
                let pr = load_x64_pair((xoff[x_row] + k8) / 2u);
                let sa = bcast8(pr[0]);
                let sb = bcast8(pr[1]);
                for (var r = 0u; r < ROWS; r++) {
                    xa[r] = sa[r];
                    xb[r] = sb[r];
                }
            } else {
                for (var r = 0u; r < ROWS; r++) {
                    let pr = load_x64_pair((xoff[r] + k8) / 2u);
                    xa[r] = pr[0];
                    xb[r] = pr[1];
                }
            }
            mv_blocked_k4(&acc, bi, xa);
            mv_blocked_k4(&acc, bi + 4u, xb);
            bi += 8u;
        }
    } else if (live) {
        for (var k4 = k4_begin; k4 < k4_end; k4++) {
            var xv: array<vec4<f32>, MV_MAX_ROWS>;
            if (share_x) {
                let sv = bcast8(x[xoff[x_row] + k4]);
                for (var r = 0u; r < ROWS; r++) { xv[r] = sv[r]; }
            } else {
                for (var r = 0u; r < ROWS; r++) { xv[r] = x[xoff[r] + k4]; }
            }
            if (B_FMT == 2u) {
                for (var kp = 0u; kp < 2u; kp++) {
                    // Word j: (col 2j, even k), (2j, odd k), (2j+1, even k), (2j+1, odd k).
                    let q = bitcast<vec4<i32>>(b[bi]);
                    bi += p.b_k4;
                    let e0 = vec4<f32>(vec4<i32>(extractBits(q.x, 0u, 8u), extractBits(q.x, 16u, 8u), extractBits(q.y, 0u, 8u), extractBits(q.y, 16u, 8u)));
                    let e1 = vec4<f32>(vec4<i32>(extractBits(q.z, 0u, 8u), extractBits(q.z, 16u, 8u), extractBits(q.w, 0u, 8u), extractBits(q.w, 16u, 8u)));
                    let o0 = vec4<f32>(vec4<i32>(extractBits(q.x, 8u, 8u), extractBits(q.x, 24u, 8u), extractBits(q.y, 8u, 8u), extractBits(q.y, 24u, 8u)));
                    let o1 = vec4<f32>(vec4<i32>(extractBits(q.z, 8u, 8u), extractBits(q.z, 24u, 8u), extractBits(q.w, 8u, 8u), extractBits(q.w, 24u, 8u)));
                    for (var r = 0u; r < ROWS; r++) {
                        let s0 = xv[r][2u * kp];
                        let s1 = xv[r][2u * kp + 1u];
                        acc[r][0] += e0 * s0 + o0 * s1;
                        acc[r][1] += e1 * s0 + o1 * s1;
                    }
                }
            } else if (B64) {
                // Blocked f16 (b_k4 = 1): the block's next four k are 64 contiguous bytes,
                // read as two 32-byte loads (lavapipe's per-lane load loop costs the same per
                // component whatever its width, so 64-bit components halve it).
                for (var kp = 0u; kp < 2u; kp++) {
                    let pair = load_b64_pair(bi / 2u);
                    bi += 2u;
                    let w0 = unpack8(pair[0]);
                    let w1 = unpack8(pair[1]);
                    for (var r = 0u; r < ROWS; r++) {
                        let s0 = xv[r][2u * kp];
                        let s1 = xv[r][2u * kp + 1u];
                        acc[r][0] += w0[0] * s0;
                        acc[r][1] += w0[1] * s0;
                        acc[r][0] += w1[0] * s1;
                        acc[r][1] += w1[1] * s1;
                    }
                }
            } else {
                for (var kk = 0u; kk < 4u; kk++) {
                    var w: array<vec4<f32>, 2>;
                    if (B_FMT == 1u) {
                        w = unpack8(b[bi]);
                    } else {
                        w[0] = bitcast<vec4<f32>>(b[bi]);
                        w[1] = bitcast<vec4<f32>>(b[bi + 1u]);
                    }
                    bi += p.b_k4;
                    for (var r = 0u; r < ROWS; r++) {
                        let s = xv[r][kk];
                        acc[r][0] += w[0] * s;
                        acc[r][1] += w[1] * s;
                    }
                }
            }
        }
    }

    if (KSPLIT > 1u) {
        if (slice > 0u) {
            let base = ((slice - 1u) * WG_X + lid.x) * ROWS * 2u;
            for (var r = 0u; r < ROWS; r++) {
                partial_sums[base + 2u * r] = acc[r][0];
                partial_sums[base + 2u * r + 1u] = acc[r][1];
            }
        }
        workgroupBarrier();
        if (slice > 0u) { return; }
        for (var t = 1u; t < KSPLIT; t++) {
            let base = ((t - 1u) * WG_X + lid.x) * ROWS * 2u;
            for (var r = 0u; r < ROWS; r++) {
                acc[r][0] += partial_sums[base + 2u * r];
                acc[r][1] += partial_sums[base + 2u * r + 1u];
            }
        }
    }
    if (!live || !has_cols) { return; }

    // Segment boundaries are multiples of 16, so a block of 8 lies in one segment.
    var s = 0u;
    var start = 0u;
    if (col0 >= p.seg[0].end) { s = 1u; start = p.seg[0].end; }
    if (col0 >= p.seg[1].end) { s = 2u; start = p.seg[1].end; }
    let sg = p.seg[s];
    let seg0 = sg.base + (col0 - start) * sg.col;
    for (var r = 0u; r < ROWS; r++) {
        if (row_done(r)) { continue; }
        var idx = seg0 + r * sg.row;
        if (USE_STATE) { idx += state[r * STATE_WORDS + STATE_POS] * sg.pos; }
        finish4(r, col0, 0u, 0u, s, idx, sg.col, acc[r][0]);
        finish4(r, col0 + 4u, 0u, 0u, s, idx + 4u * sg.col, sg.col, acc[r][1]);
    }
}
