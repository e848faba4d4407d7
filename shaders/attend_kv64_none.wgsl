// The stand-in for shaders/attend_kv64.wgsl on devices without 64-bit integers: the same
// function over the 32-bit views (no bindings 7 and 8, no u64). No entry point.

fn load_kv_words(cache: u32, i: u32) -> vec4<u32> {
    if (cache == 0u) { return kt[i]; }
    return vt[i];
}
