// Softmax in place, with a scale applied to the inputs: x <- softmax(scale * x), over vectors
// of `cols` values with an arbitrary element stride. Used on the encoder's attention scores,
// which are stored transposed (one vector per query, `row` = 1, `col` = the key stride), so
// neighbouring invocations read neighbouring addresses at every step of their loops.
//
// Bindings (group 0):
//   0 params  uniform  Params
//   1 x       storage  array<vec4<f32>>  value c of vector r in block z at element
//                                        base + z * z_stride + r * row + c * col
// Dispatch: (ceil(rows / QUAD / WG), z_count, 1). Each invocation owns QUAD vectors: 4 side by
// side (row = 1; rows, col, base and z_stride multiples of 4: one vec4 load per value, four
// values at a time), or 1 (any layout, one value at a time). An online pass takes the maximum
// and the sum of exponentials; a second pass writes the probabilities.

struct Params { rows: u32, cols: u32, base: u32, row: u32, col: u32, z_stride: u32, scale: f32, _p0: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<vec4<f32>>;

fn value_at(i: u32) -> f32 { return x[i >> 2u][i & 3u]; }
fn store_at(i: u32, v: f32) { x[i >> 2u][i & 3u] = v; }

override WG: u32 = 64u;
override QUAD: u32 = 1u; // vectors per invocation: 4 (side by side) or 1

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x * QUAD;
    if (r >= p.rows) { return; }
    let i0 = p.base + gid.y * p.z_stride + r * p.row;
    if (QUAD == 4u) {
        // m[l], s[l]: running maximum and sum of exponentials of vector r + l.
        var m = vec4<f32>(-3.0e38);
        var s = vec4<f32>(0.0);
        var i = i0;
        for (var c = 0u; c < p.cols; c += 4u) {
            // Four values of each vector (the tail repeats value c, masked out below).
            let v0 = x[i >> 2u] * p.scale;
            let v1 = x[(i + select(0u, p.col, c + 1u < p.cols)) >> 2u] * p.scale;
            let v2 = x[(i + select(0u, 2u * p.col, c + 2u < p.cols)) >> 2u] * p.scale;
            let v3 = x[(i + select(0u, 3u * p.col, c + 3u < p.cols)) >> 2u] * p.scale;
            i += 4u * p.col;
            let mn = max(m, max(max(v0, v1), max(v2, v3)));
            var e = exp(v0 - mn);
            if (c + 1u < p.cols) { e += exp(v1 - mn); }
            if (c + 2u < p.cols) { e += exp(v2 - mn); }
            if (c + 3u < p.cols) { e += exp(v3 - mn); }
            s = s * exp(m - mn) + e;
            m = mn;
        }
        let inv = 1.0 / s;
        i = i0;
        for (var c = 0u; c < p.cols; c++) {
            x[i >> 2u] = exp(x[i >> 2u] * p.scale - m) * inv;
            i += p.col;
        }
        return;
    }
    // One vector: an online pass, then the probabilities.
    var m = -3.0e38;
    var l = 0.0;
    var i = i0;
    for (var c = 0u; c < p.cols; c++) {
        let v = value_at(i) * p.scale;
        i += p.col;
        if (v > m) { l *= exp(m - v); m = v; }
        l += exp(v - m);
    }
    let inv = 1.0 / l;
    i = i0;
    for (var c = 0u; c < p.cols; c++) {
        store_at(i, exp(value_at(i) * p.scale - m) * inv);
        i += p.col;
    }
}
