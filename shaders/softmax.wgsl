// Row softmax in place, with a scale applied to the inputs: x <- softmax(scale * x).
// Used on the encoder's attention scores.
//
// Bindings (group 0):
//   0 params  uniform  Params
//   1 x       storage  array<vec4<f32>>  z_count blocks of `rows` rows of `cols` values
//                                        (cols % 4 == 0; row stride and block stride % 4 == 0)
// Dispatch: (ceil(rows / WG), z_count, 1); one invocation per row: an online pass for the
// maximum and the sum of exponentials, then a pass that writes the probabilities.

struct Params { rows: u32, cols: u32, base: u32, row: u32, z_stride: u32, scale: f32, _p0: u32, _p1: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<vec4<f32>>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    if (r >= p.rows) { return; }
    let i0 = (p.base + gid.y * p.z_stride + r * p.row) / 4u;
    let n4 = p.cols / 4u;
    var m = -3.0e38;
    var l = 0.0;
    for (var i = 0u; i < n4; i++) {
        let v = x[i0 + i] * p.scale;
        let mv = max(max(v.x, v.y), max(v.z, v.w));
        if (mv > m) { l *= exp(m - mv); m = mv; }
        let e = exp(v - m);
        l += e.x + e.y + e.z + e.w;
    }
    let inv = 1.0 / l;
    for (var i = 0u; i < n4; i++) { x[i0 + i] = exp(x[i0 + i] * p.scale - m) * inv; }
}
