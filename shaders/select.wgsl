// Chooses each row's next token on the GPU and advances the row's step state, so the host
// need not look at logits between steps.
//
// For a live row at position pos (its token was fed this step), the next position is pos + 1:
//   - inside the prompt (pos + 1 < prompt_len) the token is forced from the row's history;
//   - otherwise the token is picked among the allowed ones: suppress_tokens always,
//     begin_suppress_tokens at the first sampled position, and with TIMESTAMPS set Whisper's
//     timestamp rules (no <|notimestamps|>; timestamps come in pairs and never decrease; the
//     first token is a timestamp no later than max_initial; when the probability mass of the
//     timestamps beats every single text token, a timestamp must follow). Greedy picks the
//     largest logit (ties to the lowest id); with SAMPLE set it picks the largest
//     logit / temperature + Gumbel noise, the noise hashed from (seed, position, token), which
//     samples softmax(logits / temperature) reproducibly.
// It records the token in the history and its log-probability (log-softmax over the allowed
// tokens at temperature 1, as OpenAI's decoder reports it), sets done at end-of-text or at the
// row's last position, and, at the step that fed the start-of-transcript token, records the
// no-speech probability (softmax of the raw logits).
//
// Entry point `aria`: EleutherAI aria-amt's selection (its 3419-id note vocabulary; the rules
// buffer and the timestamp fields are not used). The logit of id 389 (pedal off) is scaled by
// 1.05; a = the argmax (lowest id on ties); p = softmax of the scaled logits; the token is the
// p-weighted mean id over [a-2, a+2] within the velocity and onset ids [392, vocab), plus a
// itself, divided by their p sum + 1e-9 and rounded half to even (WGSL's round). Prompt
// tokens are forced and the last position ends the row as in `main`; a row also ends at <E>
// (id 1) or at an onset of 20 s or more (id >= 2418; the host then drops it and the token
// before it, as aria-amt does).
//
// Bindings (group 0):
//   0 params    uniform  Params
//   1 logits    storage  array<f32>  [rows][logits_row]
//   2 rules     storage  array<u32>  bitmasks of mask_words words: suppress, then begin-suppress
//   3 state     storage  array<u32>  STATE_WORDS per row (read-write; layout in src/graph.rs)
//   4 history   storage  array<u32>  [rows][cap]: prompt tokens, then generated ones
//   5 logprobs  storage  array<f32>  [rows][cap]
// Dispatch (either entry point): (rows, 1, 1); workgroup (256, 1, 1), one workgroup per row.

struct Params { vocab: u32, logits_row: u32, cap: u32, mask_words: u32, ts_begin: u32, no_timestamps: u32, _p0: u32, _p1: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> rules: array<u32>;
@group(0) @binding(3) var<storage, read_write> state: array<u32>;
@group(0) @binding(4) var<storage, read_write> history: array<u32>;
@group(0) @binding(5) var<storage, read_write> logprobs: array<f32>;

override STATE_WORDS: u32 = 24u;
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
const S_FLAGS: u32 = 12u;
const S_LAST_TS: u32 = 13u;
const S_TEMPERATURE: u32 = 14u;
const S_SEED: u32 = 15u;
const S_MAX_INITIAL_TS: u32 = 16u;
const FLAG_TIMESTAMPS: u32 = 1u;
const FLAG_SAMPLE: u32 = 2u;
const NONE: u32 = 0xffffffffu;
const LANES: u32 = 256u;
const NEG: f32 = -3.0e38;

// Per lane, then reduced: best candidate of the text range [0, ts_begin) and of the timestamp
// range (by the possibly noised score), the largest raw text logit, and log-sum-exps.
var<workgroup> w_text_score: array<f32, 256>;
var<workgroup> w_text_idx: array<u32, 256>;
var<workgroup> w_ts_score: array<f32, 256>;
var<workgroup> w_ts_idx: array<u32, 256>;
var<workgroup> w_text_max: array<f32, 256>;
var<workgroup> w_text_lse: array<vec2<f32>, 256>;
var<workgroup> w_ts_lse: array<vec2<f32>, 256>;
var<workgroup> w_raw_lse: array<vec2<f32>, 256>;
var<workgroup> w_live: u32;

fn bit(word0: u32, t: u32) -> bool {
    return ((rules[word0 + t / 32u] >> (t % 32u)) & 1u) != 0u;
}

// Online log-sum-exp: (m, s) stands for s * exp(m).
fn lse_add(a: vec2<f32>, v: f32) -> vec2<f32> {
    if (v > a.x) { return vec2<f32>(v, a.y * exp(a.x - v) + 1.0); }
    return vec2<f32>(a.x, a.y + exp(v - a.x));
}

fn lse_merge(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    let m = max(a.x, b.x);
    if (m == NEG) { return vec2<f32>(NEG, 0.0); }
    return vec2<f32>(m, a.y * exp(a.x - m) + b.y * exp(b.x - m));
}

fn lse_value(a: vec2<f32>) -> f32 {
    if (a.y == 0.0) { return NEG; }
    return a.x + log(a.y);
}

fn hash(x: u32) -> u32 {
    let h = x * 747796405u + 2891336453u;
    let w = ((h >> ((h >> 28u) + 4u)) ^ h) * 277803737u;
    return (w >> 22u) ^ w;
}

// Standard Gumbel noise for (seed, position, token), from a uniform in (0, 1).
fn gumbel(seed: u32, pos: u32, t: u32) -> f32 {
    let h = hash(seed ^ hash(pos ^ hash(t)));
    let u = (f32(h >> 8u) + 0.5) * (1.0 / 16777216.0);
    return -log(-log(u));
}

fn better(v: f32, i: u32, bv: f32, bi: u32) -> bool {
    return v > bv || (v == bv && i < bi);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let r = wid.x;
    let st = r * STATE_WORDS;
    if (lane == 0u) { w_live = select(1u, 0u, state[st + S_DONE] != 0u); }
    // Done rows leave together: the barrier below must be reached by all or none.
    if (workgroupUniformLoad(&w_live) == 0u) { return; }
    let pos = state[st + S_POS];
    let next_pos = pos + 1u;
    let prompt_len = state[st + S_PROMPT_LEN];
    let sample_begin = state[st + S_SAMPLE_BEGIN];
    let want_no_speech = pos == state[st + S_SOT_POS] && state[st + S_NO_SPEECH] != NONE;
    let forced = next_pos < prompt_len;
    let lrow = r * p.logits_row;
    let hrow = r * p.cap;
    let flags = state[st + S_FLAGS];
    let ts_on = (flags & FLAG_TIMESTAMPS) != 0u && p.ts_begin != NONE;
    let sample = (flags & FLAG_SAMPLE) != 0u;
    // Divided, not multiplied by a reciprocal: the same rounding as the CPU and CUDA paths.
    let temp = max(bitcast<f32>(state[st + S_TEMPERATURE]), 1e-6);
    let seed = state[st + S_SEED];
    let eot = state[st + S_EOT];

    // The timestamp rules' view of what was sampled so far.
    let seq_len = next_pos - min(sample_begin, next_pos);
    let last_ts = seq_len >= 1u && history[hrow + pos] >= p.ts_begin;
    let penult_ts = seq_len < 2u || history[hrow + pos - 1u] >= p.ts_begin;
    let prev_ts = state[st + S_LAST_TS];
    var ts_floor = p.ts_begin;
    if (prev_ts != NONE) { ts_floor = select(prev_ts + 1u, prev_ts, last_ts && !penult_ts); }
    var ts_ceiling = 0xfffffffeu;
    let max_init = state[st + S_MAX_INITIAL_TS];
    if (seq_len == 0u && max_init != NONE) { ts_ceiling = p.ts_begin + max_init; }
    let ts_boundary = select(p.vocab, p.ts_begin, ts_on);

    var text_score = NEG; var text_idx = 0xffffffffu;
    var ts_score = NEG; var ts_idx = 0xffffffffu;
    var text_max = NEG;
    var text_lse = vec2<f32>(NEG, 0.0);
    var ts_lse = vec2<f32>(NEG, 0.0);
    var raw_lse = vec2<f32>(NEG, 0.0);
    if (!forced || want_no_speech) {
        let begin = next_pos == sample_begin;
        for (var t = lane; t < p.vocab; t += LANES) {
            let v = logits[lrow + t];
            if (want_no_speech) { raw_lse = lse_add(raw_lse, v); }
            if (bit(0u, t) || (begin && bit(p.mask_words, t))) { continue; }
            let is_ts = t >= ts_boundary;
            if (ts_on) {
                if (t == p.no_timestamps) { continue; }
                if (last_ts && penult_ts && is_ts) { continue; }
                if (last_ts && !penult_ts && t < eot) { continue; }
                if (is_ts && (t < ts_floor || t > ts_ceiling)) { continue; }
                if (seq_len == 0u && !is_ts) { continue; }
            }
            var score = v;
            if (sample) { score = v / temp + gumbel(seed, next_pos, t); }
            if (is_ts) {
                ts_lse = lse_add(ts_lse, v);
                if (better(score, t, ts_score, ts_idx)) { ts_score = score; ts_idx = t; }
            } else {
                text_lse = lse_add(text_lse, v);
                text_max = max(text_max, v);
                if (better(score, t, text_score, text_idx)) { text_score = score; text_idx = t; }
            }
        }
    }
    w_text_score[lane] = text_score; w_text_idx[lane] = text_idx;
    w_ts_score[lane] = ts_score; w_ts_idx[lane] = ts_idx;
    w_text_max[lane] = text_max;
    w_text_lse[lane] = text_lse; w_ts_lse[lane] = ts_lse; w_raw_lse[lane] = raw_lse;
    workgroupBarrier();
    for (var w = LANES / 2u; w > 0u; w /= 2u) {
        if (lane < w) {
            let o = lane + w;
            if (better(w_text_score[o], w_text_idx[o], w_text_score[lane], w_text_idx[lane])) {
                w_text_score[lane] = w_text_score[o]; w_text_idx[lane] = w_text_idx[o];
            }
            if (better(w_ts_score[o], w_ts_idx[o], w_ts_score[lane], w_ts_idx[lane])) {
                w_ts_score[lane] = w_ts_score[o]; w_ts_idx[lane] = w_ts_idx[o];
            }
            w_text_max[lane] = max(w_text_max[lane], w_text_max[o]);
            w_text_lse[lane] = lse_merge(w_text_lse[lane], w_text_lse[o]);
            w_ts_lse[lane] = lse_merge(w_ts_lse[lane], w_ts_lse[o]);
            w_raw_lse[lane] = lse_merge(w_raw_lse[lane], w_raw_lse[o]);
        }
        workgroupBarrier();
    }
    if (lane != 0u) { return; }

    if (want_no_speech) {
        let ns = state[st + S_NO_SPEECH];
        state[st + S_NO_SPEECH_PROB] = bitcast<u32>(exp(logits[lrow + ns] - lse_value(w_raw_lse[0])));
    }
    var tok: u32;
    if (forced) {
        tok = history[hrow + next_pos];
    } else {
        // Timestamps must follow when their total probability beats every text token.
        let ts_total = lse_value(w_ts_lse[0]);
        let force_ts = ts_on && ts_total > w_text_max[0] && w_ts_idx[0] != NONE;
        var denom: f32;
        if (force_ts || w_text_idx[0] == NONE) {
            tok = w_ts_idx[0];
            denom = select(lse_value(lse_merge(w_text_lse[0], w_ts_lse[0])), ts_total, force_ts);
        } else if (w_ts_idx[0] != NONE && better(w_ts_score[0], w_ts_idx[0], w_text_score[0], w_text_idx[0])) {
            tok = w_ts_idx[0];
            denom = lse_value(lse_merge(w_text_lse[0], w_ts_lse[0]));
        } else {
            tok = w_text_idx[0];
            denom = lse_value(lse_merge(w_text_lse[0], w_ts_lse[0]));
        }
        var lp = 0.0;
        if (tok == NONE) {
            // Every token was suppressed: end the row rather than emit garbage.
            tok = eot;
        } else {
            lp = logits[lrow + tok] - denom;
        }
        logprobs[hrow + next_pos] = lp;
        history[hrow + next_pos] = tok;
        state[st + S_SUM_LOGPROB] = bitcast<u32>(bitcast<f32>(state[st + S_SUM_LOGPROB]) + lp);
        state[st + S_N_GENERATED] = state[st + S_N_GENERATED] + 1u;
        if (ts_on && tok >= p.ts_begin && tok < p.vocab) { state[st + S_LAST_TS] = tok; }
    }
    state[st + S_TOKEN] = tok;
    state[st + S_POS] = next_pos;
    if ((!forced && tok == eot) || next_pos + 1u >= state[st + S_MAX_LEN]) {
        state[st + S_DONE] = 1u;
    }
}

const ARIA_PEDAL_OFF: u32 = 389u;
const ARIA_SMOOTHED: u32 = 392u;
const ARIA_EOS: u32 = 1u;
const ARIA_LATE_ONSET: u32 = 2418u;

fn aria_logit(row: u32, t: u32) -> f32 {
    let v = logits[row + t];
    return select(v, v * 1.05, t == ARIA_PEDAL_OFF);
}

@compute @workgroup_size(256)
fn aria(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
    let r = wid.x;
    let st = r * STATE_WORDS;
    if (lane == 0u) { w_live = select(1u, 0u, state[st + S_DONE] != 0u); }
    if (workgroupUniformLoad(&w_live) == 0u) { return; }
    let next_pos = state[st + S_POS] + 1u;
    let forced = next_pos < state[st + S_PROMPT_LEN];
    let lrow = r * p.logits_row;
    // A forced step scans nothing; the barriers below are reached by every lane either way.
    let n = select(p.vocab, 0u, forced);

    // The argmax of the scaled logits.
    var best = NEG;
    var best_id = NONE;
    for (var t = lane; t < n; t += LANES) {
        let v = aria_logit(lrow, t);
        if (better(v, t, best, best_id)) { best = v; best_id = t; }
    }
    w_text_score[lane] = best; w_text_idx[lane] = best_id;
    workgroupBarrier();
    for (var w = LANES / 2u; w > 0u; w /= 2u) {
        if (lane < w && better(w_text_score[lane + w], w_text_idx[lane + w], w_text_score[lane], w_text_idx[lane])) {
            w_text_score[lane] = w_text_score[lane + w]; w_text_idx[lane] = w_text_idx[lane + w];
        }
        workgroupBarrier();
    }
    let m = w_text_score[0];
    let a = w_text_idx[0];

    // The softmax denominator.
    var sum = 0.0;
    for (var t = lane; t < n; t += LANES) { sum += exp(aria_logit(lrow, t) - m); }
    w_ts_score[lane] = sum;
    workgroupBarrier();
    for (var w = LANES / 2u; w > 0u; w /= 2u) {
        if (lane < w) { w_ts_score[lane] += w_ts_score[lane + w]; }
        workgroupBarrier();
    }
    if (lane != 0u) { return; }

    let hrow = r * p.cap;
    var tok: u32;
    if (forced) {
        tok = history[hrow + next_pos];
    } else {
        let inv_total = 1.0 / w_ts_score[0];
        var weight = 0.0;
        var weighted = 0.0;
        for (var i = max(a, 2u) - 2u; i <= min(a + 2u, p.vocab - 1u); i++) {
            if (i == a || i >= ARIA_SMOOTHED) {
                let prob = exp(aria_logit(lrow, i) - m) * inv_total;
                weight += prob;
                weighted += prob * f32(i);
            }
        }
        tok = u32(round(weighted / (weight + 1e-9)));
        let lp = aria_logit(lrow, tok) - m + log(inv_total);
        logprobs[hrow + next_pos] = lp;
        history[hrow + next_pos] = tok;
        state[st + S_SUM_LOGPROB] = bitcast<u32>(bitcast<f32>(state[st + S_SUM_LOGPROB]) + lp);
        state[st + S_N_GENERATED] = state[st + S_N_GENERATED] + 1u;
    }
    state[st + S_TOKEN] = tok;
    state[st + S_POS] = next_pos;
    let stop = !forced && (tok == ARIA_EOS || tok >= ARIA_LATE_ONSET);
    if (stop || next_pos + 1u >= state[st + S_MAX_LEN]) {
        state[st + S_DONE] = 1u;
    }
}
