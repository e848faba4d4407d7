// 64-bit views of the attention caches for devices with SHADER_INT64 (lavapipe): a library
// prepended to attend.wgsl on CPU adapters; shaders/attend_kv64_none.wgsl takes its place
// elsewhere. No entry point.
//
// Bindings (group 0):
//   7 kt64  storage  array<vec2<u64>>  the buffer bound at binding 2 (kt), 16 bytes per element
//   8 vt64  storage  array<vec2<u64>>  the buffer bound at binding 3 (vt), likewise
//
// Why: lavapipe loads a storage buffer lane by lane, with a bounds check and a branch per
// component, and K/V loads are most of decode attention's time. A vec2<u64> brings the same
// 16 bytes as a vec4<u32> in half the components.

@group(0) @binding(7) var<storage, read> kt64: array<vec2<u64>>;
@group(0) @binding(8) var<storage, read> vt64: array<vec2<u64>>;

// The four words at vec4 index i of kt (cache 0) or vt (cache 1).
fn load_kv_words(cache: u32, i: u32) -> vec4<u32> {
    var v: vec2<u64>;
    if (cache == 0u) { v = kt64[i]; } else { v = vt64[i]; }
    return vec4<u32>(u32(v.x), u32(v.x >> 32u), u32(v.y), u32(v.y >> 32u));
}
