// LayerNorm over the last dimension: y = (x - mean) / sqrt(var + eps) * gamma + beta.
//
// Bindings (group 0):
//   0 params  uniform  Params
//   1 x       storage  array<vec4<f32>>  rows of `dim` values (dim % 4 == 0), row stride x_row
//   2 gamma   storage  array<vec4<f32>>  [dim]
//   3 beta    storage  array<vec4<f32>>  [dim]
//   4 state   storage  array<u32>        decode step state (read when USE_STATE: done rows skip)
//   5 y       storage  array<vec4<f32>>  rows of `dim` values, row stride y_row
// Dispatch: (ceil(rows / WG), 1, 1); one invocation per row, two passes over the row
// (mean, then centred variance: stable for the large residual-stream values of deep models).

struct Params { rows: u32, dim: u32, x_base: u32, x_row: u32, y_base: u32, y_row: u32, eps: f32, _pad: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> gamma: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> beta: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> state: array<u32>;
@group(0) @binding(5) var<storage, read_write> y: array<vec4<f32>>;

override WG: u32 = 64u;
override USE_STATE: bool = false;
override STATE_WORDS: u32 = 16u;
const STATE_DONE: u32 = 2u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    if (r >= p.rows) { return; }
    if (USE_STATE && state[r * STATE_WORDS + STATE_DONE] != 0u) { return; }
    let n4 = p.dim / 4u;
    let xi = (p.x_base + r * p.x_row) / 4u;
    var s = vec4<f32>(0.0);
    for (var i = 0u; i < n4; i++) { s += x[xi + i]; }
    let mean = (s.x + s.y + s.z + s.w) / f32(p.dim);
    var v = vec4<f32>(0.0);
    for (var i = 0u; i < n4; i++) { let c = x[xi + i] - mean; v += c * c; }
    let rstd = inverseSqrt((v.x + v.y + v.z + v.w) / f32(p.dim) + p.eps);
    let yi = (p.y_base + r * p.y_row) / 4u;
    for (var i = 0u; i < n4; i++) { y[yi + i] = (x[xi + i] - mean) * rstd * gamma[i] + beta[i]; }
}
