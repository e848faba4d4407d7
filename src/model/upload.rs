//! Moving a checkpoint's weights onto a backend, packed for the kernels.
use super::pack::{chunk_layout, pack_conv, pack_linears, PackedChunk, WeightDtype};
use crate::backend::Backend;
use crate::config::ModelDims;
use crate::graph::{BFormat, BufId, Elem, EmbeddingChunk};
use crate::tensor::HostTensor;
use crate::weights::{Attention, LayerNorm, Linear, ModelWeights};
use crate::Result;

/// One column chunk of a packed weight on the device.
#[derive(Clone, Copy, Debug)]
pub struct WeightChunk {
    pub buf: BufId,
    pub col_start: usize,
    pub cols: usize,
    pub n_pad: usize,
    /// Int8: the word where the per-column scales start.
    pub scale_base: usize,
}

/// A matmul weight (`k` inputs, `n` outputs) and its bias.
#[derive(Clone, Debug)]
pub struct DeviceLinear {
    pub k: usize,
    pub n: usize,
    pub format: BFormat,
    pub chunks: Vec<WeightChunk>,
    pub bias: Option<BufId>,
}

impl DeviceLinear {
    /// The chunks seen as embedding-table chunks (the tied token embedding).
    pub fn as_embedding(&self) -> Vec<EmbeddingChunk> {
        self.chunks
            .iter()
            .map(|c| EmbeddingChunk {
                buf: c.buf,
                format: self.format,
                col_start: c.col_start,
                cols: c.cols,
                row_elems: c.n_pad,
                scale_base: c.scale_base,
            })
            .collect()
    }
    pub fn bytes(&self) -> usize {
        let weights: usize = self
            .chunks
            .iter()
            .map(|c| match self.format {
                BFormat::I8 => c.n_pad * self.k + 4 * c.n_pad,
                BFormat::F16 => 2 * c.n_pad * self.k,
                BFormat::F32 => 4 * c.n_pad * self.k,
            })
            .sum();
        weights + self.bias.map_or(0, |_| self.n * 4)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct DeviceLayerNorm {
    pub gamma: BufId,
    pub beta: BufId,
}

#[derive(Clone, Debug)]
pub struct DeviceEncoderBlock {
    pub attn_ln: DeviceLayerNorm,
    pub qkv: DeviceLinear,
    pub out: DeviceLinear,
    pub mlp_ln: DeviceLayerNorm,
    pub fc1: DeviceLinear,
    pub fc2: DeviceLinear,
}

#[derive(Clone, Debug)]
pub struct DeviceDecoderBlock {
    pub attn_ln: DeviceLayerNorm,
    pub qkv: DeviceLinear,
    pub out: DeviceLinear,
    pub cross_ln: DeviceLayerNorm,
    pub cross_q: DeviceLinear,
    pub cross_kv: DeviceLinear,
    pub cross_out: DeviceLinear,
    pub mlp_ln: DeviceLayerNorm,
    pub fc1: DeviceLinear,
    pub fc2: DeviceLinear,
}

/// Every weight of the model on the device.
#[derive(Clone, Debug)]
pub struct DeviceWeights {
    pub format: BFormat,
    pub conv1: DeviceLinear,
    pub conv2: DeviceLinear,
    /// `[n_audio_ctx][n_audio_state]` f32.
    pub encoder_positional: BufId,
    pub encoder: Vec<DeviceEncoderBlock>,
    pub ln_post: DeviceLayerNorm,
    /// The tied token embedding, packed `[n_text_state][n_vocab]`: logits weight and lookup table.
    pub token_embedding: DeviceLinear,
    /// `[n_text_ctx][n_text_state]` f32.
    pub decoder_positional: BufId,
    pub decoder: Vec<DeviceDecoderBlock>,
    pub decoder_ln: DeviceLayerNorm,
}

impl DeviceWeights {
    /// Bytes of matmul weights and biases on the device.
    pub fn matmul_bytes(&self) -> usize {
        let mut all = vec![&self.conv1, &self.conv2, &self.token_embedding];
        for b in &self.encoder {
            all.extend([&b.qkv, &b.out, &b.fc1, &b.fc2]);
        }
        for b in &self.decoder {
            all.extend([&b.qkv, &b.out, &b.cross_q, &b.cross_kv, &b.cross_out, &b.fc1, &b.fc2]);
        }
        all.iter().map(|l| l.bytes()).sum()
    }
}

struct Uploader<'a> {
    backend: &'a mut dyn Backend,
    dtype: WeightDtype,
    max_bytes: u64,
}

impl Uploader<'_> {
    fn f32_buffer(&mut self, label: &str, values: &[f32]) -> Result<BufId> {
        let id = self.backend.create_buffer(label, Elem::F32, values.len())?;
        self.backend.write(id, 0, bytemuck::cast_slice(values))?;
        Ok(id)
    }

    fn chunks(&mut self, label: &str, packed: Vec<PackedChunk>, format: BFormat, k: usize) -> Result<Vec<WeightChunk>> {
        let mut out = Vec::new();
        for c in packed {
            let buf = match format {
                BFormat::F16 => self.backend.create_buffer(label, Elem::F16, k * c.n_pad)?,
                BFormat::F32 => self.backend.create_buffer(label, Elem::F32, k * c.n_pad)?,
                BFormat::I8 => self.backend.create_buffer(label, Elem::U32, c.words.len())?,
            };
            self.backend.write(buf, 0, bytemuck::cast_slice(&c.words))?;
            let (col_start, cols, n_pad, scale_base) = (c.col_start, c.cols, c.n_pad, c.scale_base);
            out.push(WeightChunk { buf, col_start, cols, n_pad, scale_base });
        }
        Ok(out)
    }

    /// Several PyTorch linears fused along the output dimension; missing biases are zeros.
    fn linears(&mut self, label: &str, parts: &[&Linear]) -> Result<DeviceLinear> {
        self.linears_as(label, parts, self.dtype.resolve(&parts[0].weight))
    }

    /// [`Uploader::linears`] in a given format.
    fn linears_as(&mut self, label: &str, parts: &[&Linear], format: BFormat) -> Result<DeviceLinear> {
        let weights: Vec<&HostTensor> = parts.iter().map(|l| &l.weight).collect();
        let k = weights[0].shape[1];
        let n = weights.iter().map(|w| w.shape[0]).sum();
        let packed = pack_linears(&weights, format, self.max_bytes)?;
        let chunks = self.chunks(label, packed, format, k)?;
        let bias = if parts.iter().any(|l| l.bias.is_some()) {
            let mut b = Vec::with_capacity(n);
            for l in parts {
                match &l.bias {
                    Some(t) => b.extend(t.to_f32()),
                    None => b.extend(std::iter::repeat_n(0.0, l.weight.shape[0])),
                }
            }
            Some(self.f32_buffer(&format!("{label}.bias"), &b)?)
        } else {
            None
        };
        Ok(DeviceLinear { k, n, format, chunks, bias })
    }

    fn conv(&mut self, label: &str, w: &HostTensor, b: &HostTensor) -> Result<DeviceLinear> {
        let format = self.dtype.resolve_conv(w);
        let (n, k) = (w.shape[0], 3 * w.shape[1]);
        let packed = pack_conv(w, format, self.max_bytes)?;
        let chunks = self.chunks(label, packed, format, k)?;
        let bias = Some(self.f32_buffer(&format!("{label}.bias"), &b.to_f32())?);
        Ok(DeviceLinear { k, n, format, chunks, bias })
    }

    fn layer_norm(&mut self, label: &str, ln: &LayerNorm) -> Result<DeviceLayerNorm> {
        Ok(DeviceLayerNorm {
            gamma: self.f32_buffer(&format!("{label}.weight"), &ln.weight.to_f32())?,
            beta: self.f32_buffer(&format!("{label}.bias"), &ln.bias.to_f32())?,
        })
    }

    fn qkv(&mut self, label: &str, a: &Attention) -> Result<DeviceLinear> {
        self.linears(label, &[&a.query, &a.key, &a.value])
    }
}

/// Packs and uploads every weight. `dtype` picks the matmul weights' storage format.
pub fn upload(backend: &mut dyn Backend, w: &ModelWeights, dtype: WeightDtype) -> Result<DeviceWeights> {
    let max_bytes = backend.max_binding_bytes();
    let mut u = Uploader { backend, dtype, max_bytes };
    let e = &w.encoder;
    let d = &w.decoder;
    let format = dtype.resolve_embedding(&d.token_embedding);
    let conv1 = u.conv("encoder.conv1", &e.conv1.weight, &e.conv1.bias)?;
    let conv2 = u.conv("encoder.conv2", &e.conv2.weight, &e.conv2.bias)?;
    let encoder_positional = u.f32_buffer("encoder.positional", &e.positional.to_f32())?;
    let mut encoder = Vec::new();
    for (i, b) in e.blocks.iter().enumerate() {
        let p = format!("encoder.{i}");
        encoder.push(DeviceEncoderBlock {
            attn_ln: u.layer_norm(&format!("{p}.attn_ln"), &b.attn_ln)?,
            qkv: u.qkv(&format!("{p}.qkv"), &b.attn)?,
            out: u.linears(&format!("{p}.attn.out"), &[&b.attn.out])?,
            mlp_ln: u.layer_norm(&format!("{p}.mlp_ln"), &b.mlp_ln)?,
            fc1: u.linears(&format!("{p}.fc1"), &[&b.fc1])?,
            fc2: u.linears(&format!("{p}.fc2"), &[&b.fc2])?,
        });
    }
    let ln_post = u.layer_norm("encoder.ln_post", &e.ln_post)?;
    let token_embedding = u.linears_as(
        "decoder.token_embedding",
        &[&Linear { weight: d.token_embedding.clone(), bias: None }],
        dtype.resolve_embedding(&d.token_embedding),
    )?;
    let decoder_positional = u.f32_buffer("decoder.positional", &d.positional.to_f32())?;
    let mut decoder = Vec::new();
    for (i, b) in d.blocks.iter().enumerate() {
        let p = format!("decoder.{i}");
        decoder.push(DeviceDecoderBlock {
            attn_ln: u.layer_norm(&format!("{p}.attn_ln"), &b.attn_ln)?,
            qkv: u.qkv(&format!("{p}.qkv"), &b.attn)?,
            out: u.linears(&format!("{p}.attn.out"), &[&b.attn.out])?,
            cross_ln: u.layer_norm(&format!("{p}.cross_ln"), &b.cross_ln)?,
            cross_q: u.linears(&format!("{p}.cross.query"), &[&b.cross.query])?,
            cross_kv: u.linears(&format!("{p}.cross.kv"), &[&b.cross.key, &b.cross.value])?,
            cross_out: u.linears(&format!("{p}.cross.out"), &[&b.cross.out])?,
            mlp_ln: u.layer_norm(&format!("{p}.mlp_ln"), &b.mlp_ln)?,
            fc1: u.linears(&format!("{p}.fc1"), &[&b.fc1])?,
            fc2: u.linears(&format!("{p}.fc2"), &[&b.fc2])?,
        });
    }
    let decoder_ln = u.layer_norm("decoder.ln", &d.ln)?;
    Ok(DeviceWeights {
        format,
        conv1,
        conv2,
        encoder_positional,
        encoder,
        ln_post,
        token_embedding,
        decoder_positional,
        decoder,
        decoder_ln,
    })
}

/// Makes zero-filled buffers shaped as [`upload`] would fill them (see [`layout`]).
struct Layout<'a> {
    backend: &'a mut dyn Backend,
    max_bytes: u64,
}

impl Layout<'_> {
    fn linear(&mut self, label: &str, k: usize, n: usize, format: BFormat, bias: bool) -> Result<DeviceLinear> {
        let mut chunks = Vec::new();
        for (col_start, cols) in chunk_layout(k, n, format, self.max_bytes)? {
            let n_pad = cols.next_multiple_of(16);
            let (buf, scale_base) = match format {
                BFormat::F16 => (self.backend.create_buffer(label, Elem::F16, k * n_pad)?, 0),
                BFormat::F32 => (self.backend.create_buffer(label, Elem::F32, k * n_pad)?, 0),
                // Bytes, then one f32 scale per column (as `quantize_i8` lays them out).
                BFormat::I8 => (self.backend.create_buffer(label, Elem::U32, k * n_pad / 4 + n_pad)?, k * n_pad / 4),
            };
            chunks.push(WeightChunk { buf, col_start, cols, n_pad, scale_base });
        }
        let bias = if bias { Some(self.f32(&format!("{label}.bias"), n)?) } else { None };
        Ok(DeviceLinear { k, n, format, chunks, bias })
    }

    fn f32(&mut self, label: &str, len: usize) -> Result<BufId> {
        self.backend.create_buffer(label, Elem::F32, len)
    }

    fn layer_norm(&mut self, label: &str, dim: usize) -> Result<DeviceLayerNorm> {
        Ok(DeviceLayerNorm { gamma: self.f32(label, dim)?, beta: self.f32(label, dim)? })
    }
}

/// Device buffers of the sizes and chunking [`upload`] would make for a model of `dims` with
/// linear weights in `format`, left zero: capacity planning without the weights (tests build
/// sessions of every Whisper size this way). Convolutions are F16 when `format` is int8, as a
/// half-precision checkpoint would keep them.
pub fn layout(backend: &mut dyn Backend, dims: &ModelDims, format: BFormat) -> Result<DeviceWeights> {
    let max_bytes = backend.max_binding_bytes();
    let mut l = Layout { backend, max_bytes };
    let (d, nm) = (dims.n_audio_state, dims.n_mels);
    let conv_format = if format == BFormat::I8 { BFormat::F16 } else { format };
    let conv1 = l.linear("encoder.conv1", 3 * nm, d, conv_format, true)?;
    let conv2 = l.linear("encoder.conv2", 3 * d, d, conv_format, true)?;
    let encoder_positional = l.f32("encoder.positional", dims.n_audio_ctx * d)?;
    let mut encoder = Vec::new();
    for i in 0..dims.n_audio_layer {
        let p = format!("encoder.{i}");
        encoder.push(DeviceEncoderBlock {
            attn_ln: l.layer_norm(&format!("{p}.attn_ln"), d)?,
            qkv: l.linear(&format!("{p}.qkv"), d, 3 * d, format, true)?,
            out: l.linear(&format!("{p}.attn.out"), d, d, format, true)?,
            mlp_ln: l.layer_norm(&format!("{p}.mlp_ln"), d)?,
            fc1: l.linear(&format!("{p}.fc1"), d, dims.n_audio_mlp, format, true)?,
            fc2: l.linear(&format!("{p}.fc2"), dims.n_audio_mlp, d, format, true)?,
        });
    }
    let ln_post = l.layer_norm("encoder.ln_post", d)?;
    let dt = dims.n_text_state;
    let token_embedding = l.linear("decoder.token_embedding", dt, dims.n_vocab, format, false)?;
    let decoder_positional = l.f32("decoder.positional", dims.n_text_ctx * dt)?;
    let mut decoder = Vec::new();
    for i in 0..dims.n_text_layer {
        let p = format!("decoder.{i}");
        decoder.push(DeviceDecoderBlock {
            attn_ln: l.layer_norm(&format!("{p}.attn_ln"), dt)?,
            qkv: l.linear(&format!("{p}.qkv"), dt, 3 * dt, format, true)?,
            out: l.linear(&format!("{p}.attn.out"), dt, dt, format, true)?,
            cross_ln: l.layer_norm(&format!("{p}.cross_ln"), dt)?,
            cross_q: l.linear(&format!("{p}.cross.query"), dt, dt, format, true)?,
            cross_kv: l.linear(&format!("{p}.cross.kv"), dt, 2 * dt, format, true)?,
            cross_out: l.linear(&format!("{p}.cross.out"), dt, dt, format, true)?,
            mlp_ln: l.layer_norm(&format!("{p}.mlp_ln"), dt)?,
            fc1: l.linear(&format!("{p}.fc1"), dt, dims.n_text_mlp, format, true)?,
            fc2: l.linear(&format!("{p}.fc2"), dims.n_text_mlp, dt, format, true)?,
        });
    }
    let decoder_ln = l.layer_norm("decoder.ln", dt)?;
    Ok(DeviceWeights {
        format,
        conv1,
        conv2,
        encoder_positional,
        encoder,
        ln_post,
        token_embedding,
        decoder_positional,
        decoder,
        decoder_ln,
    })
}
