//! The model's weights in one struct, whatever file or naming they came from.
//!
//! Loaders (`safetensors.rs`, `ct2.rs`) produce a [`TensorSource`]; a [`names::Naming`] maps the
//! struct's slots to that source's names; [`ModelWeights::load`] fetches every tensor and checks
//! its shape against [`ModelDims`], naming the tensor when something is missing or mis-shaped.
pub mod ct2;
pub mod names;
pub mod safetensors;

use crate::config::{ModelDims, Naming};
use crate::tensor::HostTensor;
use crate::{Error, Result};
use names::Names;

/// Something that can hand out tensors by name.
pub trait TensorSource {
    /// The tensor called `name`, or `Ok(None)` when the source has none by that name.
    fn get(&self, name: &str) -> Result<Option<HostTensor>>;
}

/// `y = x W^T + b` with `weight` `[out, in]` as PyTorch stores it.
#[derive(Clone, Debug)]
pub struct Linear {
    pub weight: HostTensor,
    pub bias: Option<HostTensor>,
}

#[derive(Clone, Debug)]
pub struct LayerNorm {
    pub weight: HostTensor,
    pub bias: HostTensor,
}

/// Multi-head attention projections. Whisper's key projection has no bias.
#[derive(Clone, Debug)]
pub struct Attention {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    pub out: Linear,
}

/// Kernel size 3, padding 1; `weight` `[out, in, 3]`.
#[derive(Clone, Debug)]
pub struct Conv1d {
    pub weight: HostTensor,
    pub bias: HostTensor,
}

#[derive(Clone, Debug)]
pub struct EncoderBlock {
    pub attn_ln: LayerNorm,
    pub attn: Attention,
    pub mlp_ln: LayerNorm,
    pub fc1: Linear,
    pub fc2: Linear,
}

#[derive(Clone, Debug)]
pub struct DecoderBlock {
    pub attn_ln: LayerNorm,
    pub attn: Attention,
    pub cross_ln: LayerNorm,
    pub cross: Attention,
    pub mlp_ln: LayerNorm,
    pub fc1: Linear,
    pub fc2: Linear,
}

#[derive(Clone, Debug)]
pub struct EncoderWeights {
    pub conv1: Conv1d,
    pub conv2: Conv1d,
    /// `[n_audio_ctx, n_audio_state]`; sinusoids computed here when the checkpoint has none.
    pub positional: HostTensor,
    pub blocks: Vec<EncoderBlock>,
    pub ln_post: LayerNorm,
}

#[derive(Clone, Debug)]
pub struct DecoderWeights {
    /// `[n_vocab, n_text_state]`; also the logits projection unless `output` is set.
    pub token_embedding: HostTensor,
    /// `[n_vocab, n_text_state]`: a logits projection of its own (aria-amt's
    /// `decoder.output`); `None` when it is tied to the token embedding (Whisper).
    pub output: Option<HostTensor>,
    /// `[n_text_ctx, n_text_state]`.
    pub positional: HostTensor,
    pub blocks: Vec<DecoderBlock>,
    pub ln: LayerNorm,
}

#[derive(Clone, Debug)]
pub struct ModelWeights {
    pub encoder: EncoderWeights,
    pub decoder: DecoderWeights,
}

/// Fetches tensors through a naming and checks each shape as it goes.
struct Loader<'a> {
    source: &'a dyn TensorSource,
}

impl Loader<'_> {
    fn tensor(&self, name: &str, shape: &[usize]) -> Result<HostTensor> {
        let t = self.source.get(name)?.ok_or_else(|| Error::tensor(name, "missing from the checkpoint"))?;
        if t.shape != shape {
            return Err(Error::tensor(name, format!("has shape {:?}, the config needs {:?}", t.shape, shape)));
        }
        if t.has_non_finite() {
            return Err(Error::tensor(name, "holds NaN or infinite values"));
        }
        Ok(t)
    }

    fn optional(&self, name: &str, shape: &[usize]) -> Result<Option<HostTensor>> {
        match self.source.get(name)? {
            None => Ok(None),
            Some(_) => self.tensor(name, shape).map(Some),
        }
    }

    /// A linear layer; its bias is optional (Whisper's key projections and every aria-amt
    /// linear have none), but checked when present.
    fn linear(&self, prefix: &str, n: &Names, out: usize, inp: usize) -> Result<Linear> {
        let weight = self.tensor(&n.weight(prefix), &[out, inp])?;
        let bias = self.optional(&n.bias(prefix), &[out])?;
        Ok(Linear { weight, bias })
    }

    fn layer_norm(&self, prefix: &str, n: &Names, dim: usize) -> Result<LayerNorm> {
        Ok(LayerNorm { weight: self.tensor(&n.weight(prefix), &[dim])?, bias: self.tensor(&n.bias(prefix), &[dim])? })
    }

    fn attention(&self, prefix: &str, n: &Names, dim: usize) -> Result<Attention> {
        Ok(Attention {
            query: self.linear(&n.query(prefix), n, dim, dim)?,
            key: self.linear(&n.key(prefix), n, dim, dim)?,
            value: self.linear(&n.value(prefix), n, dim, dim)?,
            out: self.linear(&n.attn_out(prefix), n, dim, dim)?,
        })
    }

    /// The logits projection when the checkpoint has one of its own (any of its names), `None`
    /// when it has none or it equals the token embedding.
    fn output_projection(&self, n: &Names, embedding: &HostTensor) -> Result<Option<HostTensor>> {
        for name in n.output_projections() {
            if let Some(t) = self.optional(name, &embedding.shape)? {
                return Ok((t != *embedding).then_some(t));
            }
        }
        Ok(None)
    }

    fn conv(&self, prefix: &str, n: &Names, out: usize, inp: usize) -> Result<Conv1d> {
        Ok(Conv1d {
            weight: self.tensor(&n.weight(prefix), &[out, inp, 3])?,
            bias: self.tensor(&n.bias(prefix), &[out])?,
        })
    }
}

impl ModelWeights {
    /// Loads every tensor the dims call for from `source`, named by `naming`.
    pub fn load(source: &dyn TensorSource, dims: &ModelDims, naming: Naming) -> Result<ModelWeights> {
        let n = Names::new(naming);
        let l = Loader { source };
        let da = dims.n_audio_state;
        let dt = dims.n_text_state;

        // Computed sinusoids come last: by then the width is backed by tensors the file holds,
        // so a config alone cannot make this allocate (n_audio_ctx is capped by the config).
        let positional = l.optional(&n.encoder_positional(), &[dims.n_audio_ctx, da])?;
        let mut encoder = EncoderWeights {
            conv1: l.conv(&n.conv1(), &n, da, dims.n_mels)?,
            conv2: l.conv(&n.conv2(), &n, da, da)?,
            positional: HostTensor::f32(vec![0, da], Vec::new()),
            blocks: (0..dims.n_audio_layer)
                .map(|i| {
                    let b = n.encoder_block(i);
                    Ok(EncoderBlock {
                        attn_ln: l.layer_norm(&n.attn_ln(&b), &n, da)?,
                        attn: l.attention(&n.self_attn(&b), &n, da)?,
                        mlp_ln: l.layer_norm(&n.mlp_ln(&b), &n, da)?,
                        fc1: l.linear(&n.fc1(&b), &n, dims.n_audio_mlp, da)?,
                        fc2: l.linear(&n.fc2(&b), &n, da, dims.n_audio_mlp)?,
                    })
                })
                .collect::<Result<_>>()?,
            ln_post: l.layer_norm(&n.encoder_ln(), &n, da)?,
        };
        let token_embedding = l.tensor(&n.token_embedding(), &[dims.n_vocab, dt])?;
        let decoder = DecoderWeights {
            output: l.output_projection(&n, &token_embedding)?,
            token_embedding,
            positional: l.tensor(&n.decoder_positional(), &[dims.n_text_ctx, dt])?,
            blocks: (0..dims.n_text_layer)
                .map(|i| {
                    let b = n.decoder_block(i);
                    Ok(DecoderBlock {
                        attn_ln: l.layer_norm(&n.attn_ln(&b), &n, dt)?,
                        attn: l.attention(&n.self_attn(&b), &n, dt)?,
                        cross_ln: l.layer_norm(&n.cross_ln(&b), &n, dt)?,
                        cross: l.attention(&n.cross_attn(&b), &n, dt)?,
                        mlp_ln: l.layer_norm(&n.mlp_ln(&b), &n, dt)?,
                        fc1: l.linear(&n.fc1(&b), &n, dims.n_text_mlp, dt)?,
                        fc2: l.linear(&n.fc2(&b), &n, dt, dims.n_text_mlp)?,
                    })
                })
                .collect::<Result<_>>()?,
            ln: l.layer_norm(&n.decoder_ln(), &n, dt)?,
        };
        encoder.positional = positional.unwrap_or_else(|| sinusoids(dims.n_audio_ctx, da));
        Ok(ModelWeights { encoder, decoder })
    }
}

/// Whisper's encoder positional embedding: `[sin(t * f_i) | cos(t * f_i)]` with
/// `f_i = 10000^(-i / (channels/2 - 1))`, computed in f64 and rounded to f32.
pub fn sinusoids(length: usize, channels: usize) -> HostTensor {
    let half = channels / 2;
    let log_timescale = (10000f64).ln() / (half.max(2) - 1) as f64;
    let mut v = vec![0f32; length * channels];
    for t in 0..length {
        for i in 0..half {
            let angle = t as f64 * (-log_timescale * i as f64).exp();
            v[t * channels + i] = angle.sin() as f32;
            v[t * channels + half + i] = angle.cos() as f32;
        }
    }
    HostTensor::f32(vec![length, channels], v)
}
