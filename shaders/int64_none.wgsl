// The stand-in for shaders/int64.wgsl on devices without 64-bit integers: the same functions,
// no bindings 9 and 10 and no u64 (so the module validates everywhere). B64 = X64 = false
// keeps them unused.

fn load_b64_pair(i: u32) -> array<vec4<u32>, 2> {
    return array<vec4<u32>, 2>(vec4<u32>(0u), vec4<u32>(0u));
}

fn load_x64_pair(i: u32) -> array<vec4<f32>, 2> {
    return array<vec4<f32>, 2>(vec4<f32>(0.0), vec4<f32>(0.0));
}
