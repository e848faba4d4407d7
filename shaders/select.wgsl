// Chooses each row's next token on the GPU and advances the row's step state, so the host
// need not look at logits between steps.
//
// For a live row at position pos (its token was fed this step), the next position is pos + 1:
//   - inside the prompt (pos + 1 < prompt_len) the token is forced from the row's history;
//   - otherwise: argmax over the logits with the suppression rules applied (suppress_tokens at
//     every step; begin_suppress_tokens at the first sampled position), ties to the lowest id.
// It records the token in the history, its log-probability (log-softmax over the allowed
// tokens), sets done at end-of-text or at the last position, and, at the step that fed the
// start-of-transcript token, the no-speech probability (softmax of the raw logits).
//
// Bindings (group 0):
//   0 params    uniform  Params
//   1 logits    storage  array<f32>  [rows][logits_row]
//   2 rules     storage  array<u32>  bitmasks of ceil(vocab / 32) words: suppress, then begin-suppress
//   3 state     storage  array<u32>  STATE_WORDS per row (read-write)
//   4 history   storage  array<u32>  [rows][cap]: prompt tokens, then generated ones
//   5 logprobs  storage  array<f32>  [rows][cap]
// Dispatch: (rows, 1, 1); workgroup (256, 1, 1), one workgroup per row.

struct Params { vocab: u32, logits_row: u32, cap: u32, mask_words: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> rules: array<u32>;
@group(0) @binding(3) var<storage, read_write> state: array<u32>;
@group(0) @binding(4) var<storage, read_write> history: array<u32>;
@group(0) @binding(5) var<storage, read_write> logprobs: array<f32>;

override STATE_WORDS: u32 = 16u;
const S_TOKEN: u32 = 0u;
const S_POS: u32 = 1u;
const S_DONE: u32 = 2u;
const S_PROMPT_LEN: u32 = 3u;
const S_SAMPLE_BEGIN: u32 = 4u;
const S_MAX_LEN: u32 = 5u;
const S_EOT: u32 = 6u;
const S_SOT_POS: u32 = 7u;
const S_NO_SPEECH: u32 = 8u;
const S_NO_SPEECH_PROB: u32 = 9u;
const S_SUM_LOGPROB: u32 = 10u;
const S_N_GENERATED: u32 = 11u;
const NONE: u32 = 0xffffffffu;
const LANES: u32 = 256u;
const NEG: f32 = -3.0e38;

var<workgroup> best_val: array<f32, 256>;
var<workgroup> best_idx: array<u32, 256>;
var<workgroup> sum_max: array<f32, 256>;
var<workgroup> sum_exp: array<f32, 256>;
var<workgroup> raw_max: array<f32, 256>;
var<workgroup> raw_exp: array<f32, 256>;

fn bit(word0: u32, t: u32) -> bool {
    return ((rules[word0 + t / 32u] >> (t % 32u)) & 1u) != 0u;
}

// Online log-sum-exp accumulation: (m, s) represents s * exp(m).
fn lse_add(m: ptr<function, f32>, s: ptr<function, f32>, v: f32) {
    if (v > *m) { *s = *s * exp(*m - v) + 1.0; *m = v; } else { *s += exp(v - *m); }
}

fn lse_merge(m1: f32, s1: f32, m2: f32, s2: f32) -> vec2<f32> {
    let m = max(m1, m2);
    if (m == NEG) { return vec2<f32>(NEG, 0.0); }
    return vec2<f32>(m, s1 * exp(m1 - m) + s2 * exp(m2 - m));
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let r = wid.x;
    let st = r * STATE_WORDS;
    if (state[st + S_DONE] != 0u) { return; }
    let pos = state[st + S_POS];
    let next_pos = pos + 1u;
    let prompt_len = state[st + S_PROMPT_LEN];
    let want_no_speech = pos == state[st + S_SOT_POS] && state[st + S_NO_SPEECH] != NONE;
    let forced = next_pos < prompt_len;
    let lrow = r * p.logits_row;

    var bv = NEG;
    var bi = 0u;
    var am = NEG; var as_ = 0.0; // allowed tokens' log-sum-exp
    var rm = NEG; var rs = 0.0;  // raw logits' log-sum-exp
    if (!forced || want_no_speech) {
        let begin = next_pos == state[st + S_SAMPLE_BEGIN];
        for (var t = lane; t < p.vocab; t += LANES) {
            let v = logits[lrow + t];
            if (want_no_speech) { lse_add(&rm, &rs, v); }
            if (bit(0u, t) || (begin && bit(p.mask_words, t))) { continue; }
            lse_add(&am, &as_, v);
            if (v > bv) { bv = v; bi = t; }
        }
    }
    best_val[lane] = bv; best_idx[lane] = bi;
    sum_max[lane] = am; sum_exp[lane] = as_;
    raw_max[lane] = rm; raw_exp[lane] = rs;
    workgroupBarrier();
    for (var w = LANES / 2u; w > 0u; w /= 2u) {
        if (lane < w) {
            let ov = best_val[lane + w];
            let oi = best_idx[lane + w];
            if (ov > best_val[lane] || (ov == best_val[lane] && oi < best_idx[lane])) {
                best_val[lane] = ov; best_idx[lane] = oi;
            }
            let a = lse_merge(sum_max[lane], sum_exp[lane], sum_max[lane + w], sum_exp[lane + w]);
            sum_max[lane] = a.x; sum_exp[lane] = a.y;
            let b = lse_merge(raw_max[lane], raw_exp[lane], raw_max[lane + w], raw_exp[lane + w]);
            raw_max[lane] = b.x; raw_exp[lane] = b.y;
        }
        workgroupBarrier();
    }
    if (lane != 0u) { return; }

    if (want_no_speech) {
        let ns = state[st + S_NO_SPEECH];
        let prob = exp(logits[lrow + ns] - raw_max[0]) / raw_exp[0];
        state[st + S_NO_SPEECH_PROB] = bitcast<u32>(prob);
    }
    let hrow = r * p.cap;
    var tok: u32;
    if (forced) {
        tok = history[hrow + next_pos];
    } else {
        tok = best_idx[0];
        let lp = best_val[0] - sum_max[0] - log(sum_exp[0]);
        logprobs[hrow + next_pos] = lp;
        history[hrow + next_pos] = tok;
        state[st + S_SUM_LOGPROB] = bitcast<u32>(bitcast<f32>(state[st + S_SUM_LOGPROB]) + lp);
        state[st + S_N_GENERATED] = state[st + S_N_GENERATED] + 1u;
    }
    state[st + S_TOKEN] = tok;
    state[st + S_POS] = next_pos;
    let eot = state[st + S_EOT];
    if ((!forced && tok == eot) || next_pos + 1u >= state[st + S_MAX_LEN]) {
        state[st + S_DONE] = 1u;
    }
}
