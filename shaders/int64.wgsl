// A 64-bit view of the matmul's B operand for devices with SHADER_INT64 (lavapipe): a library
// prepended to matmul.wgsl on CPU adapters; shaders/int64_none.wgsl takes its place elsewhere.
// No entry point.
//
// Bindings (group 0):
//   9  b64  storage  array<vec4<u64>>  the buffer bound at binding 2 (b), 32 bytes per element
//   10 x64  storage  array<vec4<u64>>  the buffer bound at binding 1 (x), likewise
//
// Why: lavapipe loads a storage buffer lane by lane, with a bounds check and a branch per
// component. A vec4<u64> load brings 32 bytes for the same four components a vec4<u32> spends
// on 16: an f16 mat-vec streaming its weights this way runs ~20% faster.

@group(0) @binding(9) var<storage, read> b64: array<vec4<u64>>;
@group(0) @binding(10) var<storage, read> x64: array<vec4<u64>>;

fn split_u64(v: vec2<u64>) -> vec4<u32> {
    return vec4<u32>(u32(v.x), u32(v.x >> 32u), u32(v.y), u32(v.y >> 32u));
}

// The two vec4<u32> of b at indices 2*i and 2*i + 1.
fn load_b64_pair(i: u32) -> array<vec4<u32>, 2> {
    let q = b64[i];
    return array<vec4<u32>, 2>(split_u64(q.xy), split_u64(q.zw));
}

// The two vec4<f32> of x at indices 2*i and 2*i + 1.
fn load_x64_pair(i: u32) -> array<vec4<f32>, 2> {
    let q = x64[i];
    return array<vec4<f32>, 2>(bitcast<vec4<f32>>(split_u64(q.xy)), bitcast<vec4<f32>>(split_u64(q.zw)));
}
