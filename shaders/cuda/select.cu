// Chooses each row's next token on the GPU and advances the row's step state
// (graph::SelectToken), with the semantics of the CPU reference (src/backend/cpu.rs):
// for a live row at position pos, next = pos + 1;
//   - inside the prompt (next < prompt_len) the token is forced from the row's history;
//   - otherwise it is the best allowed token: suppress mask always, begin-suppress mask at the
//     first sampled position, and with the timestamp flag Whisper's timestamp rules (no
//     <|notimestamps|>; timestamps in pairs, never decreasing; the first token a timestamp no
//     later than max_initial; a timestamp must follow when the timestamps' total probability
//     beats every text token). Greedy takes the largest logit, ties to the lowest id; sampling
//     the largest logit / temperature + Gumbel noise hashed from (seed, next, token).
// It records the token and its log-probability (log-softmax over the allowed tokens), sets
// done at end-of-text or the row's last position, and at the step that fed the start-of-
// transcript token records the no-speech probability (softmax of the raw logits).
//
// `select_aria`: EleutherAI aria-amt's selection (its 3419-id vocabulary; rules and timestamp
// fields unused), as the CPU reference (amt::select) and shaders/select.wgsl `aria`: the
// pedal-off logit (id 389) scaled by 1.05; a = argmax (lowest id on ties); p = softmax of the
// scaled logits; the token is the p-weighted mean id over [a-2, a+2] within ids >= 392, plus a,
// over their p sum + 1e-9, rounded half to even. A row ends at <E> (1) or an onset id >= 2418.
//
// Argument: one SelectArgs by value (packed by src/backend/cuda/plan.rs in this order).
//   logits    f32 [rows][logits_row]
//   rules     u32 two bitmasks of mask_words words: suppress, then begin-suppress
//   state     u32 STATE_WORDS per row (read-write)
//   history   u32 [rows][cap]; logprobs f32 [rows][cap]
// Launch geometry (both): grid (rows, 1, 1), block (256, 1, 1): one block per row; each thread scans
// the vocabulary with stride 256, then a shared-memory tree reduction.

#define SEL_LANES 256u

struct SelectArgs {
    const float* logits;
    const u32* rules;
    u32* state;
    u32* history;
    float* logprobs;
    u32 vocab, logits_row, cap, mask_words, ts_begin, no_timestamps;
};

// Online log-sum-exp: (m, s) stands for s * exp(m).
struct Lse {
    float m, s;
};

__device__ __forceinline__ Lse lse_add(Lse a, float v) {
    if (v > a.m) return Lse{v, a.s * expf(a.m - v) + 1.0f};
    return Lse{a.m, a.s + expf(v - a.m)};
}

__device__ __forceinline__ Lse lse_merge(Lse a, Lse b) {
    const float m = fmaxf(a.m, b.m);
    if (m == NEG_BIG) return Lse{NEG_BIG, 0.0f};
    return Lse{m, a.s * expf(a.m - m) + b.s * expf(b.m - m)};
}

__device__ __forceinline__ float lse_value(Lse a) {
    return a.s == 0.0f ? NEG_BIG : a.m + logf(a.s);
}

__device__ __forceinline__ u32 pcg_hash(u32 x) {
    const u32 h = x * 747796405u + 2891336453u;
    const u32 w = ((h >> ((h >> 28u) + 4u)) ^ h) * 277803737u;
    return (w >> 22u) ^ w;
}

// Standard Gumbel noise for (seed, position, token): cpu::gumbel.
__device__ __forceinline__ float gumbel(u32 seed, u32 pos, u32 t) {
    const u32 h = pcg_hash(seed ^ pcg_hash(pos ^ pcg_hash(t)));
    const float u = ((float)(h >> 8u) + 0.5f) * (1.0f / 16777216.0f);
    return -logf(-logf(u));
}

__device__ __forceinline__ bool better(float v, u32 i, float bv, u32 bi) {
    return v > bv || (v == bv && i < bi);
}

__device__ __forceinline__ bool mask_bit(const u32* rules, u32 word0, u32 t) {
    return ((rules[word0 + t / 32u] >> (t % 32u)) & 1u) != 0u;
}

extern "C" __global__ void select_token(const SelectArgs a) {
    __shared__ float s_text_score[SEL_LANES], s_ts_score[SEL_LANES], s_text_max[SEL_LANES];
    __shared__ u32 s_text_idx[SEL_LANES], s_ts_idx[SEL_LANES];
    __shared__ Lse s_text_lse[SEL_LANES], s_ts_lse[SEL_LANES], s_raw_lse[SEL_LANES];
    const u32 r = blockIdx.x, lane = threadIdx.x;
    u32* st = a.state + r * STATE_WORDS;
    if (st[S_DONE] != 0u) return; // uniform over the block
    const u32 pos = st[S_POS];
    const u32 next = pos + 1u;
    const u32 hrow = r * a.cap;
    if (next >= a.cap) {
        // The history has no room (the session keeps max_len <= cap, so only bad state).
        __syncthreads();
        if (lane == 0u) st[S_DONE] = 1u;
        return;
    }
    const bool forced = next < st[S_PROMPT_LEN];
    const u32 sample_begin = min(st[S_SAMPLE_BEGIN], next);
    const bool want_no_speech = pos == st[S_SOT_POS] && st[S_NO_SPEECH] != NONE;
    const float* logits = a.logits + r * a.logits_row;
    const u32 flags = st[S_FLAGS];
    const bool ts_on = (flags & FLAG_TIMESTAMPS) != 0u && a.ts_begin != NONE;
    const bool sample = (flags & FLAG_SAMPLE) != 0u;
    const float temp = fmaxf(__uint_as_float(st[S_TEMPERATURE]), 1e-6f);
    const u32 seed = st[S_SEED], eot = st[S_EOT];

    // The timestamp rules' view of what was sampled so far: history[sample_begin, next).
    const u32 seq_len = next - sample_begin;
    const bool last_ts = seq_len >= 1u && a.history[hrow + pos] >= a.ts_begin;
    const bool penult_ts = seq_len < 2u || a.history[hrow + pos - 1u] >= a.ts_begin;
    const u32 prev_ts = st[S_LAST_TS];
    u32 ts_floor = a.ts_begin;
    if (prev_ts != NONE) ts_floor = (last_ts && !penult_ts) ? prev_ts : prev_ts + 1u;
    u32 ts_ceiling = 0xfffffffeu;
    const u32 max_init = st[S_MAX_INITIAL_TS];
    if (seq_len == 0u && max_init != NONE) ts_ceiling = a.ts_begin + max_init;
    const u32 ts_boundary = ts_on ? a.ts_begin : a.vocab;

    float text_score = NEG_BIG, ts_score = NEG_BIG, text_max = NEG_BIG;
    u32 text_idx = NONE, ts_idx = NONE;
    Lse text_lse{NEG_BIG, 0.0f}, ts_lse{NEG_BIG, 0.0f}, raw_lse{NEG_BIG, 0.0f};
    if (!forced || want_no_speech) {
        const bool begin = next == sample_begin;
        for (u32 t = lane; t < a.vocab; t += SEL_LANES) {
            const float v = logits[t];
            if (want_no_speech) raw_lse = lse_add(raw_lse, v);
            if (forced) continue;
            if (mask_bit(a.rules, 0u, t) || (begin && mask_bit(a.rules, a.mask_words, t))) continue;
            const bool is_ts = t >= ts_boundary;
            if (ts_on) {
                if (t == a.no_timestamps) continue;
                if (last_ts && penult_ts && is_ts) continue;
                if (last_ts && !penult_ts && t < eot) continue;
                if (is_ts && (t < ts_floor || t > ts_ceiling)) continue;
                if (seq_len == 0u && !is_ts) continue;
            }
            const float score = sample ? v / temp + gumbel(seed, next, t) : v;
            if (is_ts) {
                ts_lse = lse_add(ts_lse, v);
                if (better(score, t, ts_score, ts_idx)) { ts_score = score; ts_idx = t; }
            } else {
                text_lse = lse_add(text_lse, v);
                text_max = fmaxf(text_max, v);
                if (better(score, t, text_score, text_idx)) { text_score = score; text_idx = t; }
            }
        }
    }
    s_text_score[lane] = text_score; s_text_idx[lane] = text_idx;
    s_ts_score[lane] = ts_score; s_ts_idx[lane] = ts_idx;
    s_text_max[lane] = text_max;
    s_text_lse[lane] = text_lse; s_ts_lse[lane] = ts_lse; s_raw_lse[lane] = raw_lse;
    __syncthreads();
    for (u32 w = SEL_LANES / 2u; w > 0u; w /= 2u) {
        if (lane < w) {
            const u32 o = lane + w;
            if (better(s_text_score[o], s_text_idx[o], s_text_score[lane], s_text_idx[lane])) {
                s_text_score[lane] = s_text_score[o]; s_text_idx[lane] = s_text_idx[o];
            }
            if (better(s_ts_score[o], s_ts_idx[o], s_ts_score[lane], s_ts_idx[lane])) {
                s_ts_score[lane] = s_ts_score[o]; s_ts_idx[lane] = s_ts_idx[o];
            }
            s_text_max[lane] = fmaxf(s_text_max[lane], s_text_max[o]);
            s_text_lse[lane] = lse_merge(s_text_lse[lane], s_text_lse[o]);
            s_ts_lse[lane] = lse_merge(s_ts_lse[lane], s_ts_lse[o]);
            s_raw_lse[lane] = lse_merge(s_raw_lse[lane], s_raw_lse[o]);
        }
        __syncthreads();
    }
    if (lane != 0u) return;

    if (want_no_speech) {
        const u32 ns = st[S_NO_SPEECH];
        st[S_NO_SPEECH_PROB] = __float_as_uint(expf(logits[ns] - lse_value(s_raw_lse[0])));
    }
    u32 tok;
    if (forced) {
        tok = a.history[hrow + next];
    } else {
        // A timestamp must follow when the timestamps' total probability beats every text token.
        const float ts_total = lse_value(s_ts_lse[0]);
        const bool force_ts = ts_on && s_ts_idx[0] != NONE && ts_total > s_text_max[0];
        const float all = lse_value(lse_merge(s_text_lse[0], s_ts_lse[0]));
        float denom = all;
        if (force_ts || s_text_idx[0] == NONE) {
            tok = s_ts_idx[0];
            if (force_ts) denom = ts_total;
        } else if (s_ts_idx[0] != NONE && better(s_ts_score[0], s_ts_idx[0], s_text_score[0], s_text_idx[0])) {
            tok = s_ts_idx[0];
        } else {
            tok = s_text_idx[0];
        }
        float lp = 0.0f;
        if (tok == NONE) {
            tok = eot; // every token was suppressed: end the row rather than emit garbage
        } else {
            lp = logits[tok] - denom;
        }
        a.logprobs[hrow + next] = lp;
        a.history[hrow + next] = tok;
        st[S_SUM_LOGPROB] = __float_as_uint(__uint_as_float(st[S_SUM_LOGPROB]) + lp);
        st[S_N_GENERATED] = st[S_N_GENERATED] + 1u;
        if (ts_on && tok >= a.ts_begin && tok < a.vocab) st[S_LAST_TS] = tok;
    }
    st[S_TOKEN] = tok;
    st[S_POS] = next;
    if ((!forced && tok == eot) || next + 1u >= st[S_MAX_LEN]) st[S_DONE] = 1u;
}

#define ARIA_PEDAL_OFF 389u
#define ARIA_SMOOTHED 392u
#define ARIA_EOS 1u
#define ARIA_LATE_ONSET 2418u

__device__ __forceinline__ float aria_logit(const float* logits, u32 t) {
    const float v = logits[t];
    return t == ARIA_PEDAL_OFF ? v * 1.05f : v;
}

extern "C" __global__ void select_aria(const SelectArgs a) {
    __shared__ float s_best[SEL_LANES], s_sum[SEL_LANES];
    __shared__ u32 s_best_id[SEL_LANES];
    const u32 r = blockIdx.x, lane = threadIdx.x;
    u32* st = a.state + r * STATE_WORDS;
    if (st[S_DONE] != 0u) return; // uniform over the block
    const u32 next = st[S_POS] + 1u;
    const u32 hrow = r * a.cap;
    if (next >= a.cap) {
        __syncthreads();
        if (lane == 0u) st[S_DONE] = 1u;
        return;
    }
    const bool forced = next < st[S_PROMPT_LEN];
    const float* logits = a.logits + r * a.logits_row;
    const u32 n = forced ? 0u : a.vocab;

    float best = NEG_BIG;
    u32 best_id = NONE;
    for (u32 t = lane; t < n; t += SEL_LANES) {
        const float v = aria_logit(logits, t);
        if (better(v, t, best, best_id)) { best = v; best_id = t; }
    }
    s_best[lane] = best; s_best_id[lane] = best_id;
    __syncthreads();
    for (u32 w = SEL_LANES / 2u; w > 0u; w /= 2u) {
        if (lane < w && better(s_best[lane + w], s_best_id[lane + w], s_best[lane], s_best_id[lane])) {
            s_best[lane] = s_best[lane + w]; s_best_id[lane] = s_best_id[lane + w];
        }
        __syncthreads();
    }
    const float m = s_best[0];
    const u32 am = s_best_id[0];
    float sum = 0.0f;
    for (u32 t = lane; t < n; t += SEL_LANES) sum += expf(aria_logit(logits, t) - m);
    s_sum[lane] = sum;
    __syncthreads();
    for (u32 w = SEL_LANES / 2u; w > 0u; w /= 2u) {
        if (lane < w) s_sum[lane] += s_sum[lane + w];
        __syncthreads();
    }
    if (lane != 0u) return;

    u32 tok;
    if (forced) {
        tok = a.history[hrow + next];
    } else {
        const float inv_total = 1.0f / s_sum[0];
        float weight = 0.0f, weighted = 0.0f;
        const u32 hi = min(am + 2u, a.vocab - 1u);
        for (u32 i = max(am, 2u) - 2u; i <= hi; i++) {
            if (i != am && i < ARIA_SMOOTHED) continue;
            const float prob = expf(aria_logit(logits, i) - m) * inv_total;
            weight += prob;
            weighted += prob * (float)i;
        }
        tok = (u32)rintf(weighted / (weight + 1e-9f));
        const float lp = aria_logit(logits, tok) - m + logf(inv_total);
        a.logprobs[hrow + next] = lp;
        a.history[hrow + next] = tok;
        st[S_SUM_LOGPROB] = __float_as_uint(__uint_as_float(st[S_SUM_LOGPROB]) + lp);
        st[S_N_GENERATED] = st[S_N_GENERATED] + 1u;
    }
    st[S_TOKEN] = tok;
    st[S_POS] = next;
    const bool stop = !forced && (tok == ARIA_EOS || tok >= ARIA_LATE_ONSET);
    if (stop || next + 1u >= st[S_MAX_LEN]) st[S_DONE] = 1u;
}
