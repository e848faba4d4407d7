// f16 pairs packed in u32 words, widened to f32: a library prepended to the kernels that read
// f16 (matmul.wgsl, attend.wgsl); no bindings, no entry point.
//
// `unpack2x16float` is native on GPUs, but Mesa's lavapipe lowers it to a slow sequence (about
// 40% of an f16 mat-vec's time). With SOFT_F16 (set for CPU adapters) the halves are widened
// with integer ops on four words at once instead, exactly: normal values by rebiasing the
// exponent, subnormals as m * 2^-24 (no subnormal f32 arithmetic, which traps to microcode on
// x86). Infinities and NaNs widen to large finite values; weights are checked finite at load.
override SOFT_F16: bool = false;

// Four f16 bit patterns (in the low 16 bits) to f32.
fn f16_soft(h: vec4<u32>) -> vec4<f32> {
    let mag = h & vec4<u32>(0x7fffu);
    let normal = (mag << vec4<u32>(13u)) + vec4<u32>(0x38000000u); // exponent bias 15 -> 127
    let subnormal = bitcast<vec4<u32>>(vec4<f32>(mag) * 5.9604644775390625e-8); // m * 2^-24
    let bits = select(normal, subnormal, mag < vec4<u32>(0x400u));
    return bitcast<vec4<f32>>(bits | ((h & vec4<u32>(0x8000u)) << vec4<u32>(16u)));
}

// The eight halves of four words in memory order: [0] = w.x lo, w.x hi, w.y lo, w.y hi;
// [1] = the same of w.z and w.w.
fn unpack8(w: vec4<u32>) -> array<vec4<f32>, 2> {
    if (SOFT_F16) {
        let lo = f16_soft(w & vec4<u32>(0xffffu));
        let hi = f16_soft(w >> vec4<u32>(16u));
        return array<vec4<f32>, 2>(vec4<f32>(lo.x, hi.x, lo.y, hi.y), vec4<f32>(lo.z, hi.z, lo.w, hi.w));
    }
    return array<vec4<f32>, 2>(
        vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y)),
        vec4<f32>(unpack2x16float(w.z), unpack2x16float(w.w)));
}

// unpack8 for activations (the attention caches): with SOFT_F16, each half's bits are moved
// into an f32's sign, exponent and mantissa fields and the exponent rebiased by one multiply
// by 2^112, about a third of unpack8's operations. Exact on lavapipe, which keeps f32
// subnormals: a subnormal half (|x| < 6.1e-5) becomes an f32 subnormal that the multiply
// scales exactly, but each SIMD multiply meeting one costs an x86 microcode assist (measured
// 5x slower with all-subnormal inputs). Rare in activations; not so in weights (0.37% of
// tiny.en's halves, 3.6% of 8-wide vectors of its embedding), where the assists cancel the
// gain, hence unpack8 for them. Where a CPU runs with denormals-are-zero, those halves become
// zeros instead.
fn unpack8_act(w: vec4<u32>) -> array<vec4<f32>, 2> {
    if (SOFT_F16) {
        // The high half: an arithmetic shift right by 3 puts its exponent at bits 23..27 and
        // copies its sign into bits 28..31; the mask keeps bit 31 and drops the low half.
        let hi = bitcast<vec4<f32>>((bitcast<vec4<i32>>(w) >> vec4<u32>(3u)) & vec4<i32>(-1879056384)) * 5.192296858534828e33;
        let lo = bitcast<vec4<f32>>((bitcast<vec4<i32>>(w << vec4<u32>(16u)) >> vec4<u32>(3u)) & vec4<i32>(-1879056384)) * 5.192296858534828e33;
        return array<vec4<f32>, 2>(vec4<f32>(lo.x, hi.x, lo.y, hi.y), vec4<f32>(lo.z, hi.z, lo.w, hi.w));
    }
    return unpack8(w);
}
