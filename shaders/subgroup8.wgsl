// Subgroup broadcasts for devices that run 8-lane subgroups (lavapipe on 256-bit SIMD): a
// library prepended to matmul.wgsl when the device has subgroup operations and a subgroup size
// of exactly 8; shaders/subgroup_none.wgsl takes its place elsewhere. No bindings, no entry point.
//
// Why: lavapipe turns every storage-buffer load into a loop over the 8 lanes (a bounds check and
// a masked load per 32-bit element), even when all lanes read the same address. A GEMM tile's
// x rows are the same for every lane, so one load per lane plus broadcasts (a shuffle each)
// replaces eight loads per lane.
const SG8: bool = true;

// This invocation's lane (0..7) where lanes 0..7 of its subgroup are all active, else 8.
// Counting active lanes below this one, not the subgroup_invocation_id builtin, keeps the
// entry point legal with two-dimensional workgroups.
fn sg8_lane() -> u32 {
    if (subgroupBallot(true).x != 0xffu) { return 8u; }
    return subgroupExclusiveAdd(1u);
}

// Whether any active lane of the subgroup has `b`.
fn sg8_any(b: bool) -> bool { return subgroupAny(b); }

// v of lanes 0..7, in lane order.
fn bcast8(v: vec4<f32>) -> array<vec4<f32>, 8> {
    return array<vec4<f32>, 8>(
        subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u), subgroupBroadcast(v, 2u), subgroupBroadcast(v, 3u),
        subgroupBroadcast(v, 4u), subgroupBroadcast(v, 5u), subgroupBroadcast(v, 6u), subgroupBroadcast(v, 7u));
}
