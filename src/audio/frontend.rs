//! Picks the log-mel front end a model was trained with.
//!
//! Both produce `[n_mels][3000]` row-major f32 for one 30 s window, the layout the encoder
//! upload takes, so a caller only chooses which to build:
//! - [`FrontEndKind::Whisper`]: OpenAI Whisper's (n_fft 400, Slaney mels), any `n_mels`;
//! - [`FrontEndKind::AriaAmt`]: EleutherAI aria-amt's (two STFTs, HTK mels, 512 bands).
//!
//! A model config does not name its front end. aria-amt checkpoints converted with OpenAI-style
//! keys are recognisable by `n_mels == 512` (no Whisper-family model uses 512), but which rule
//! applies is the model loader's decision: [`FrontEndKind::from_config`] takes it as a flag.
use super::aria_mel::{AriaLogMel, ARIA_N_MELS};
use super::mel::LogMel;
use super::N_FRAMES;
use crate::{Error, Result};

/// Which front end, as a model config would record it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrontEndKind {
    Whisper { n_mels: usize },
    AriaAmt,
}

impl FrontEndKind {
    /// The kind for a model with `n_mels` mel bands; `aria_amt` selects aria-amt's front end,
    /// which needs `n_mels == 512`.
    pub fn from_config(n_mels: usize, aria_amt: bool) -> Result<Self> {
        match (aria_amt, n_mels) {
            (false, _) => Ok(FrontEndKind::Whisper { n_mels }),
            (true, ARIA_N_MELS) => Ok(FrontEndKind::AriaAmt),
            (true, _) => Err(Error::InvalidArgument(format!(
                "aria-amt's front end makes {ARIA_N_MELS} mel bands, the model expects {n_mels}"
            ))),
        }
    }

    pub fn n_mels(self) -> usize {
        match self {
            FrontEndKind::Whisper { n_mels } => n_mels,
            FrontEndKind::AriaAmt => ARIA_N_MELS,
        }
    }
}

/// A planned front end of either kind, reused across windows.
pub enum FrontEnd {
    Whisper(LogMel),
    AriaAmt(AriaLogMel),
}

impl FrontEnd {
    pub fn new(kind: FrontEndKind) -> Result<Self> {
        Ok(match kind {
            FrontEndKind::Whisper { n_mels } => FrontEnd::Whisper(LogMel::new(n_mels)?),
            FrontEndKind::AriaAmt => FrontEnd::AriaAmt(AriaLogMel::new()),
        })
    }

    pub fn kind(&self) -> FrontEndKind {
        match self {
            FrontEnd::Whisper(m) => FrontEndKind::Whisper { n_mels: m.n_mels() },
            FrontEnd::AriaAmt(_) => FrontEndKind::AriaAmt,
        }
    }

    pub fn n_mels(&self) -> usize {
        self.kind().n_mels()
    }

    /// Log-mel of one 30 s window of 16 kHz mono samples (at most 480 000, zero-padded to that):
    /// `[n_mels][3000]` row-major.
    pub fn compute(&self, samples: &[f32]) -> Result<Vec<f32>> {
        let mut out = vec![0.0; self.n_mels() * N_FRAMES];
        self.compute_into(samples, &mut out)?;
        Ok(out)
    }

    /// As [`FrontEnd::compute`], writing into `out` (length `n_mels * 3000`).
    pub fn compute_into(&self, samples: &[f32], out: &mut [f32]) -> Result<()> {
        match self {
            FrontEnd::Whisper(m) => m.compute_into(samples, out),
            FrontEnd::AriaAmt(m) => m.compute_into(samples, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_config() {
        assert_eq!(FrontEndKind::from_config(80, false).unwrap(), FrontEndKind::Whisper { n_mels: 80 });
        assert_eq!(FrontEndKind::from_config(512, true).unwrap(), FrontEndKind::AriaAmt);
        assert!(FrontEndKind::from_config(256, true).is_err());
        let fe = FrontEnd::new(FrontEndKind::AriaAmt).unwrap();
        assert_eq!((fe.kind(), fe.n_mels()), (FrontEndKind::AriaAmt, 512));
        assert!(fe.compute_into(&[0.0; 10], &mut [0.0; 80 * N_FRAMES]).is_err());
    }
}
