//! aria-amt's per-step token choice and the rule that ends a window's decoding
//! (`process_segments` with `recalculate_tok_ids` and `update_seq_end_idxs_`), on the CPU: the
//! reference a GPU kernel is checked against, and the bookkeeping around it.
use super::vocab::{EOS_ID, ONSET_BASE, PAD_ID, PEDAL_OFF_ID, VEL_BASE, VOCAB_SIZE};
use crate::{Error, Result};

/// The decoder's context: a window's sequence never gets longer.
pub const MAX_BLOCK_LEN: usize = 4096;
/// Upstream multiplies the pedal-release logit by this before choosing.
pub const PEDAL_OFF_SCALE: f32 = 1.05;
/// The id of onset 20000 ms: an onset at or past it ends the window (the next window covers it).
pub const LATE_ONSET_ID: u32 = ONSET_BASE + 2000;

/// One step's choice.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Selection {
    /// Argmax of the logits after the pedal-release scaling (the first on ties).
    pub argmax: u32,
    /// Probability-weighted id over the candidates, before rounding.
    pub expected: f32,
    /// `expected` rounded half to even: the chosen id.
    pub selected: u32,
}

/// Chooses the next id from one row of raw logits (3419 values), in f32 as upstream: scale
/// logit 389 (pedal release) by 1.05; a = argmax; softmax over all scaled logits; keep the
/// probabilities of ids in [a-2, a+2] within the velocity/onset ids 392..=3418, plus a itself;
/// the id is their probability-weighted mean (over their sum + 1e-9), rounded half to even.
/// For note, pedal and special ids only a survives, so the choice is the argmax; for velocity
/// and onset ids it smooths between neighbours (and can cross from velocity to onset ids).
/// Sums run in ascending id order, so `expected` can differ from PyTorch's in the last bits.
pub fn select(logits: &[f32]) -> Result<Selection> {
    if logits.len() != VOCAB_SIZE as usize {
        return Err(Error::InvalidArgument(format!("{} logits, expected {VOCAB_SIZE}", logits.len())));
    }
    if logits.iter().any(|x| x.is_nan()) {
        return Err(Error::InvalidArgument("NaN in logits".into()));
    }
    let mut scaled = logits.to_vec();
    scaled[PEDAL_OFF_ID as usize] *= PEDAL_OFF_SCALE;
    let mut argmax = 0;
    for (i, &x) in scaled.iter().enumerate() {
        if x > scaled[argmax] {
            argmax = i;
        }
    }
    let max = scaled[argmax];
    let total: f32 = scaled.iter().map(|&x| (x - max).exp()).sum();
    let smoothable = VEL_BASE as usize..VOCAB_SIZE as usize;
    let candidates = (argmax.saturating_sub(2)..=argmax + 2).filter(|i| *i == argmax || smoothable.contains(i));
    let (mut weight, mut weighted_id) = (0f32, 0f32);
    for i in candidates {
        let p = (scaled[i] - max).exp() * total.recip(); // PyTorch scales by 1/sum
        weight += p;
        weighted_id += p * i as f32;
    }
    let expected = weighted_id / (weight + 1e-9);
    Ok(Selection { argmax: argmax as u32, expected, selected: expected.round_ties_even() as u32 })
}

/// Why a window's decoding ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// `<E>` was chosen; it is the window's last token.
    Eos,
    /// An onset >= 20000 ms was chosen: it is not written, and the token before it (the
    /// note/pedal token the onset belonged to) is cut too.
    LateOnset,
    /// Position 4094 was filled without a stop: the whole 4096-long sequence is the result.
    ContextFull,
}

/// Where and why a window stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stop {
    pub reason: StopReason,
    /// Index of the result's last token: the `<E>`'s position, the late onset's position - 2
    /// (which can reach back into the prefix, or be -1 for an empty result), or 4096 (no cut).
    pub eos_idx: i64,
    /// Position of the last id chosen (None when the prefix left no room to choose any).
    pub last_step_idx: Option<usize>,
}

/// The running sequence of one window: the prefix, then each chosen id at the next position,
/// until the stop rule fires. The id to feed the decoder for the following step is always the
/// one just pushed.
#[derive(Clone, Debug)]
pub struct WindowSeq {
    seq: Vec<u32>,
    prefix_len: usize,
    stop: Option<Stop>,
}

impl WindowSeq {
    /// Starts from the prefix ids (at least one). A prefix of 4095 ids or more leaves no step
    /// (upstream's loop runs positions P..4094), so it stops at once with the prefix, padded
    /// or cut to 4096, as its result.
    pub fn new(prefix: &[u32]) -> Result<Self> {
        if prefix.is_empty() {
            return Err(Error::InvalidArgument("empty prefix".into()));
        }
        let mut w = WindowSeq { seq: prefix.to_vec(), prefix_len: prefix.len(), stop: None };
        if prefix.len() >= MAX_BLOCK_LEN - 1 {
            w.seq.resize(MAX_BLOCK_LEN, PAD_ID);
            w.stop = Some(Stop { reason: StopReason::ContextFull, eos_idx: MAX_BLOCK_LEN as i64, last_step_idx: None });
        }
        Ok(w)
    }

    pub fn prefix_len(&self) -> usize {
        self.prefix_len
    }

    /// The position the next chosen id fills (the step index upstream calls `idx`).
    pub fn next_idx(&self) -> usize {
        self.seq.len()
    }

    pub fn stop(&self) -> Option<Stop> {
        self.stop
    }

    /// Records the id chosen for position [`WindowSeq::next_idx`]; returns the stop when this
    /// id ends the window. Pushing after the stop is an error.
    pub fn push(&mut self, id: u32) -> Result<Option<Stop>> {
        if self.stop.is_some() {
            return Err(Error::InvalidArgument("the window has already stopped".into()));
        }
        let idx = self.seq.len();
        let (reason, eos_idx) = if id == EOS_ID {
            self.seq.push(id);
            (StopReason::Eos, idx as i64)
        } else if id >= LATE_ONSET_ID {
            (StopReason::LateOnset, idx as i64 - 2)
        } else {
            self.seq.push(id);
            if idx + 1 < MAX_BLOCK_LEN - 1 {
                return Ok(None);
            }
            self.seq.push(PAD_ID); // position 4095 is never chosen; upstream returns its padding
            (StopReason::ContextFull, MAX_BLOCK_LEN as i64)
        };
        self.stop = Some(Stop { reason, eos_idx, last_step_idx: Some(idx) });
        Ok(self.stop)
    }

    /// Once stopped, the window's result: the sequence up to `eos_idx` inclusive.
    pub fn result(&self) -> Option<&[u32]> {
        let stop = self.stop?;
        let len = (stop.eos_idx + 1).clamp(0, self.seq.len() as i64) as usize;
        Some(&self.seq[..len])
    }
}

/// Runs the stop rule over a recorded list of chosen ids (one per step from position P on);
/// returns the result ids, the stop and how many ids it used. Running out of ids before a
/// stop is an error.
pub fn apply_stop_rule(prefix: &[u32], chosen: &[u32]) -> Result<(Vec<u32>, Stop, usize)> {
    let mut w = WindowSeq::new(prefix)?;
    let mut used = 0;
    let stop = loop {
        if let Some(stop) = w.stop() {
            break stop;
        }
        let &id = chosen.get(used).ok_or_else(|| Error::InvalidArgument(format!("no stop after {used} ids")))?;
        w.push(id)?;
        used += 1;
    };
    Ok((w.result().unwrap_or_default().to_vec(), stop, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amt_stop_rule_cuts_as_upstream() {
        // <E> is kept at its position.
        let (ids, stop, used) = apply_stop_rule(&[0], &[200, 418, 400, EOS_ID, 7]).unwrap();
        assert_eq!((ids, stop.reason, stop.eos_idx, used), (vec![0, 200, 418, 400, 1], StopReason::Eos, 4, 4));
        // A late onset drops itself and the token before it, even back into the prefix.
        let (ids, stop, _) = apply_stop_rule(&[5, 0], &[LATE_ONSET_ID]).unwrap();
        assert_eq!((ids, stop.eos_idx), (vec![5], 0));
        let (ids, stop, _) = apply_stop_rule(&[0], &[LATE_ONSET_ID]).unwrap();
        assert_eq!((ids, stop.eos_idx), (vec![], -1));
        // No stop by position 4094: the padded 4096-long sequence is the result.
        let chosen = vec![400; MAX_BLOCK_LEN];
        let (ids, stop, used) = apply_stop_rule(&[0], &chosen).unwrap();
        assert_eq!(
            (ids.len(), ids[MAX_BLOCK_LEN - 1], stop.reason, used),
            (4096, PAD_ID, StopReason::ContextFull, 4094)
        );
        assert!(apply_stop_rule(&[0], &[400, 401]).is_err());
    }

    #[test]
    fn amt_selection_smooths_only_velocity_and_onset_ids() {
        let mut logits = vec![-10.0f32; VOCAB_SIZE as usize];
        logits[500] = 5.0;
        logits[501] = 5.0;
        let s = select(&logits).unwrap();
        assert_eq!((s.argmax, s.selected), (500, 500)); // 500.5 rounds half to even
        logits[PEDAL_OFF_ID as usize] = 4.9; // x1.05 makes it the argmax; no neighbours kept
        assert_eq!(select(&logits).unwrap().selected, PEDAL_OFF_ID);
    }
}
