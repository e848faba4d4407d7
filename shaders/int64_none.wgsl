// The stand-in for shaders/int64.wgsl on devices without 64-bit integers: the same function,
// no binding 9 and no u64 (so the module validates everywhere). B64 = false keeps it unused.

fn load_b64_pair(i: u32) -> array<vec4<u32>, 2> {
    return array<vec4<u32>, 2>(vec4<u32>(0u), vec4<u32>(0u));
}
