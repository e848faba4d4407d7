// The stand-in for shaders/subgroup8.wgsl on devices without 8-lane subgroups: the same names,
// no subgroup operations (so the module validates everywhere). SG8 = false keeps them unused.
const SG8: bool = false;

fn sg8_lane() -> u32 { return 8u; }

fn sg8_any(b: bool) -> bool { return b; }

fn bcast8(v: vec4<f32>) -> array<vec4<f32>, 8> {
    return array<vec4<f32>, 8>(v, v, v, v, v, v, v, v);
}
