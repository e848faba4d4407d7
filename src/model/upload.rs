//! Moving a checkpoint's weights onto a backend, packed for the kernels.
use super::pack::{chunk_layout, pack_conv, pack_linears, PackedChunk, WeightDtype};
use crate::backend::Backend;
use crate::config::ModelDims;
use crate::graph::{BFormat, BufId, Elem, EmbeddingChunk};
use crate::tensor::HostTensor;
use crate::weights::{LayerNorm, Linear, ModelWeights};
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
                BFormat::F16 | BFormat::F16Blocked => 2 * c.n_pad * self.k,
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
    /// The token embedding, packed `[n_text_state][n_vocab]`: the lookup table, and the
    /// logits weight unless `output` is set.
    pub token_embedding: DeviceLinear,
    /// A logits projection of its own (aria-amt), packed like the embedding; `None`: tied.
    pub output: Option<DeviceLinear>,
    /// `[n_text_ctx][n_text_state]` f32.
    pub decoder_positional: BufId,
    pub decoder: Vec<DeviceDecoderBlock>,
    pub decoder_ln: DeviceLayerNorm,
}

impl DeviceWeights {
    /// The weight of the logits projection.
    pub fn logits(&self) -> &DeviceLinear {
        self.output.as_ref().unwrap_or(&self.token_embedding)
    }

    /// Bytes of matmul weights and biases on the device.
    pub fn matmul_bytes(&self) -> usize {
        let mut all = vec![&self.conv1, &self.conv2, &self.token_embedding];
        all.extend(&self.output);
        for b in &self.encoder {
            all.extend([&b.qkv, &b.out, &b.fc1, &b.fc2]);
        }
        for b in &self.decoder {
            all.extend([&b.qkv, &b.out, &b.cross_q, &b.cross_kv, &b.cross_out, &b.fc1, &b.fc2]);
        }
        all.iter().map(|l| l.bytes()).sum()
    }
}

/// A weight of a transformer block, named as in the device labels.
#[derive(Clone, Copy, Debug)]
enum BlockLinear {
    Qkv,
    AttnOut,
    CrossQuery,
    CrossKv,
    CrossOut,
    Fc1,
    Fc2,
}

/// A layer norm of a transformer block.
#[derive(Clone, Copy, Debug)]
enum BlockNorm {
    Attn,
    Cross,
    Mlp,
}

/// Which encoder or decoder layer a block object belongs to.
#[derive(Clone, Copy, Debug)]
enum Stack {
    Encoder(usize),
    Decoder(usize),
}

/// One matmul weight of the model.
#[derive(Clone, Copy, Debug)]
enum LinearSlot {
    Conv1,
    Conv2,
    TokenEmbedding,
    /// An untied logits projection.
    Output,
    Block(Stack, BlockLinear),
}

/// One layer norm of the model.
#[derive(Clone, Copy, Debug)]
enum NormSlot {
    Block(Stack, BlockNorm),
    EncoderPost,
    DecoderFinal,
}

/// One positional-embedding table.
#[derive(Clone, Copy, Debug)]
enum TableSlot {
    Encoder,
    Decoder,
}

impl Stack {
    fn label(self) -> String {
        match self {
            Stack::Encoder(i) => format!("encoder.{i}"),
            Stack::Decoder(i) => format!("decoder.{i}"),
        }
    }
}

impl LinearSlot {
    fn label(self) -> String {
        let part = |p| match p {
            BlockLinear::Qkv => "qkv",
            BlockLinear::AttnOut => "attn.out",
            BlockLinear::CrossQuery => "cross.query",
            BlockLinear::CrossKv => "cross.kv",
            BlockLinear::CrossOut => "cross.out",
            BlockLinear::Fc1 => "fc1",
            BlockLinear::Fc2 => "fc2",
        };
        match self {
            LinearSlot::Conv1 => "encoder.conv1".into(),
            LinearSlot::Conv2 => "encoder.conv2".into(),
            LinearSlot::TokenEmbedding => "decoder.token_embedding".into(),
            LinearSlot::Output => "decoder.output".into(),
            LinearSlot::Block(s, p) => format!("{}.{}", s.label(), part(p)),
        }
    }

    /// The storage of this weight in `format`: f16 weights that decode steps read as mat-vecs
    /// (the decoder's per-token linears and the logits projection) are blocked where the
    /// backend prefers it; the encoder's, the convolutions' and the cross-attention K/V
    /// projection's (GEMMs over the audio) stay k-major.
    fn device_format(self, format: BFormat, blocked_f16: bool) -> BFormat {
        let per_token = match self {
            LinearSlot::TokenEmbedding | LinearSlot::Output => true,
            LinearSlot::Block(Stack::Decoder(_), p) => !matches!(p, BlockLinear::CrossKv),
            LinearSlot::Block(Stack::Encoder(_), _) | LinearSlot::Conv1 | LinearSlot::Conv2 => false,
        };
        if format == BFormat::F16 && blocked_f16 && per_token {
            BFormat::F16Blocked
        } else {
            format
        }
    }
}

impl NormSlot {
    fn label(self) -> String {
        match self {
            NormSlot::Block(s, BlockNorm::Attn) => format!("{}.attn_ln", s.label()),
            NormSlot::Block(s, BlockNorm::Cross) => format!("{}.cross_ln", s.label()),
            NormSlot::Block(s, BlockNorm::Mlp) => format!("{}.mlp_ln", s.label()),
            NormSlot::EncoderPost => "encoder.ln_post".into(),
            NormSlot::DecoderFinal => "decoder.ln".into(),
        }
    }
}

impl TableSlot {
    fn label(self) -> &'static str {
        match self {
            TableSlot::Encoder => "encoder.positional",
            TableSlot::Decoder => "decoder.positional",
        }
    }
}

/// What makes the device objects: [`Uploader`] from a checkpoint, [`Layout`] from the dims
/// alone. [`assemble`] asks for every object once, in one order, for both.
trait Sink {
    /// Whether the model has a logits projection of its own.
    fn untied_output(&self) -> bool;
    fn linear(&mut self, slot: LinearSlot) -> Result<DeviceLinear>;
    fn layer_norm(&mut self, slot: NormSlot) -> Result<DeviceLayerNorm>;
    fn table(&mut self, slot: TableSlot) -> Result<BufId>;
}

/// The one walk over the model's objects.
fn assemble(s: &mut dyn Sink, format: BFormat, n_audio_layer: usize, n_text_layer: usize) -> Result<DeviceWeights> {
    use BlockLinear::*;
    let conv1 = s.linear(LinearSlot::Conv1)?;
    let conv2 = s.linear(LinearSlot::Conv2)?;
    let encoder_positional = s.table(TableSlot::Encoder)?;
    let mut encoder = Vec::new();
    for i in 0..n_audio_layer {
        let (at, ln) = (|p| LinearSlot::Block(Stack::Encoder(i), p), |p| NormSlot::Block(Stack::Encoder(i), p));
        encoder.push(DeviceEncoderBlock {
            attn_ln: s.layer_norm(ln(BlockNorm::Attn))?,
            qkv: s.linear(at(Qkv))?,
            out: s.linear(at(AttnOut))?,
            mlp_ln: s.layer_norm(ln(BlockNorm::Mlp))?,
            fc1: s.linear(at(Fc1))?,
            fc2: s.linear(at(Fc2))?,
        });
    }
    let ln_post = s.layer_norm(NormSlot::EncoderPost)?;
    let token_embedding = s.linear(LinearSlot::TokenEmbedding)?;
    let output = if s.untied_output() { Some(s.linear(LinearSlot::Output)?) } else { None };
    let decoder_positional = s.table(TableSlot::Decoder)?;
    let mut decoder = Vec::new();
    for i in 0..n_text_layer {
        let (at, ln) = (|p| LinearSlot::Block(Stack::Decoder(i), p), |p| NormSlot::Block(Stack::Decoder(i), p));
        decoder.push(DeviceDecoderBlock {
            attn_ln: s.layer_norm(ln(BlockNorm::Attn))?,
            qkv: s.linear(at(Qkv))?,
            out: s.linear(at(AttnOut))?,
            cross_ln: s.layer_norm(ln(BlockNorm::Cross))?,
            cross_q: s.linear(at(CrossQuery))?,
            cross_kv: s.linear(at(CrossKv))?,
            cross_out: s.linear(at(CrossOut))?,
            mlp_ln: s.layer_norm(ln(BlockNorm::Mlp))?,
            fc1: s.linear(at(Fc1))?,
            fc2: s.linear(at(Fc2))?,
        });
    }
    let decoder_ln = s.layer_norm(NormSlot::DecoderFinal)?;
    Ok(DeviceWeights {
        format,
        conv1,
        conv2,
        encoder_positional,
        encoder,
        ln_post,
        token_embedding,
        output,
        decoder_positional,
        decoder,
        decoder_ln,
    })
}

/// Packs and writes a checkpoint's tensors.
struct Uploader<'a> {
    backend: &'a mut dyn Backend,
    w: &'a ModelWeights,
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
                BFormat::F16 | BFormat::F16Blocked => self.backend.create_buffer(label, Elem::F16, k * c.n_pad)?,
                BFormat::F32 => self.backend.create_buffer(label, Elem::F32, k * c.n_pad)?,
                BFormat::I8 => self.backend.create_buffer(label, Elem::U32, c.words.len())?,
            };
            self.backend.write(buf, 0, bytemuck::cast_slice(&c.words))?;
            let (col_start, cols, n_pad, scale_base) = (c.col_start, c.cols, c.n_pad, c.scale_base);
            out.push(WeightChunk { buf, col_start, cols, n_pad, scale_base });
        }
        Ok(out)
    }

    /// Several PyTorch linears fused along the output dimension, in `format`; missing biases
    /// are zeros.
    fn linears(&mut self, label: &str, parts: &[&Linear], format: BFormat) -> Result<DeviceLinear> {
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
}

impl Sink for Uploader<'_> {
    fn untied_output(&self) -> bool {
        self.w.decoder.output.is_some()
    }

    fn linear(&mut self, slot: LinearSlot) -> Result<DeviceLinear> {
        let label = slot.label();
        let (e, d) = (&self.w.encoder, &self.w.decoder);
        let parts: Vec<&Linear> = match slot {
            LinearSlot::Conv1 => return self.conv(&label, &e.conv1.weight, &e.conv1.bias),
            LinearSlot::Conv2 => return self.conv(&label, &e.conv2.weight, &e.conv2.bias),
            LinearSlot::TokenEmbedding => {
                let table = Linear { weight: d.token_embedding.clone(), bias: None };
                let format = self.dtype.resolve_embedding(&d.token_embedding);
                let format = slot.device_format(format, self.backend.prefers_blocked_f16());
                return self.linears(&label, &[&table], format);
            }
            LinearSlot::Output => {
                let Some(w) = &d.output else { unreachable!("asked for only when untied_output()") };
                let projection = Linear { weight: w.clone(), bias: None };
                let format = slot.device_format(self.dtype.resolve_embedding(w), self.backend.prefers_blocked_f16());
                return self.linears(&label, &[&projection], format);
            }
            LinearSlot::Block(Stack::Encoder(i), p) => {
                let b = &e.blocks[i];
                match p {
                    BlockLinear::Qkv => vec![&b.attn.query, &b.attn.key, &b.attn.value],
                    BlockLinear::AttnOut => vec![&b.attn.out],
                    BlockLinear::Fc1 => vec![&b.fc1],
                    BlockLinear::Fc2 => vec![&b.fc2],
                    BlockLinear::CrossQuery | BlockLinear::CrossKv | BlockLinear::CrossOut => {
                        unreachable!("encoder blocks have no cross-attention")
                    }
                }
            }
            LinearSlot::Block(Stack::Decoder(i), p) => {
                let b = &d.blocks[i];
                match p {
                    BlockLinear::Qkv => vec![&b.attn.query, &b.attn.key, &b.attn.value],
                    BlockLinear::AttnOut => vec![&b.attn.out],
                    BlockLinear::CrossQuery => vec![&b.cross.query],
                    BlockLinear::CrossKv => vec![&b.cross.key, &b.cross.value],
                    BlockLinear::CrossOut => vec![&b.cross.out],
                    BlockLinear::Fc1 => vec![&b.fc1],
                    BlockLinear::Fc2 => vec![&b.fc2],
                }
            }
        };
        let format = self.dtype.resolve(&parts[0].weight);
        let format = slot.device_format(format, self.backend.prefers_blocked_f16());
        self.linears(&label, &parts, format)
    }

    fn layer_norm(&mut self, slot: NormSlot) -> Result<DeviceLayerNorm> {
        let (e, d) = (&self.w.encoder, &self.w.decoder);
        let ln: &LayerNorm = match slot {
            NormSlot::Block(Stack::Encoder(i), BlockNorm::Attn) => &e.blocks[i].attn_ln,
            NormSlot::Block(Stack::Encoder(i), BlockNorm::Mlp) => &e.blocks[i].mlp_ln,
            NormSlot::Block(Stack::Encoder(_), BlockNorm::Cross) => {
                unreachable!("encoder blocks have no cross-attention")
            }
            NormSlot::Block(Stack::Decoder(i), BlockNorm::Attn) => &d.blocks[i].attn_ln,
            NormSlot::Block(Stack::Decoder(i), BlockNorm::Cross) => &d.blocks[i].cross_ln,
            NormSlot::Block(Stack::Decoder(i), BlockNorm::Mlp) => &d.blocks[i].mlp_ln,
            NormSlot::EncoderPost => &e.ln_post,
            NormSlot::DecoderFinal => &d.ln,
        };
        let label = slot.label();
        Ok(DeviceLayerNorm {
            gamma: self.f32_buffer(&format!("{label}.weight"), &ln.weight.to_f32())?,
            beta: self.f32_buffer(&format!("{label}.bias"), &ln.bias.to_f32())?,
        })
    }

    fn table(&mut self, slot: TableSlot) -> Result<BufId> {
        let t = match slot {
            TableSlot::Encoder => &self.w.encoder.positional,
            TableSlot::Decoder => &self.w.decoder.positional,
        };
        self.f32_buffer(slot.label(), &t.to_f32())
    }
}

/// Packs and uploads every weight. `dtype` picks the matmul weights' storage format.
pub fn upload(backend: &mut dyn Backend, w: &ModelWeights, dtype: WeightDtype) -> Result<DeviceWeights> {
    let max_bytes = backend.max_binding_bytes();
    let format = dtype.resolve_embedding(&w.decoder.token_embedding);
    let mut u = Uploader { backend, w, dtype, max_bytes };
    assemble(&mut u, format, w.encoder.blocks.len(), w.decoder.blocks.len())
}

/// Makes zero-filled buffers shaped as [`upload`] would fill them (see [`layout`]).
struct Layout<'a> {
    backend: &'a mut dyn Backend,
    dims: &'a ModelDims,
    format: BFormat,
    untied_output: bool,
    max_bytes: u64,
}

impl Layout<'_> {
    fn f32(&mut self, label: &str, len: usize) -> Result<BufId> {
        self.backend.create_buffer(label, Elem::F32, len)
    }
}

impl Sink for Layout<'_> {
    fn untied_output(&self) -> bool {
        self.untied_output
    }

    fn linear(&mut self, slot: LinearSlot) -> Result<DeviceLinear> {
        let dims = self.dims;
        let (d, dt) = (dims.n_audio_state, dims.n_text_state);
        // Convolutions are F16 when the linears are int8, as a half-precision checkpoint keeps them.
        let conv_format = if self.format == BFormat::I8 { BFormat::F16 } else { self.format };
        let block = |width: usize, mlp: usize, p| match p {
            BlockLinear::Qkv => (width, 3 * width),
            BlockLinear::AttnOut | BlockLinear::CrossQuery | BlockLinear::CrossOut => (width, width),
            BlockLinear::CrossKv => (width, 2 * width),
            BlockLinear::Fc1 => (width, mlp),
            BlockLinear::Fc2 => (mlp, width),
        };
        let ((k, n), format, bias) = match slot {
            LinearSlot::Conv1 => ((3 * dims.n_mels, d), conv_format, true),
            LinearSlot::Conv2 => ((3 * d, d), conv_format, true),
            LinearSlot::TokenEmbedding | LinearSlot::Output => ((dt, dims.n_vocab), self.format, false),
            LinearSlot::Block(Stack::Encoder(_), p) => (block(d, dims.n_audio_mlp, p), self.format, true),
            LinearSlot::Block(Stack::Decoder(_), p) => (block(dt, dims.n_text_mlp, p), self.format, true),
        };
        let format = slot.device_format(format, self.backend.prefers_blocked_f16());
        let label = slot.label();
        let mut chunks = Vec::new();
        for (col_start, cols) in chunk_layout(k, n, format, self.max_bytes)? {
            let n_pad = cols.next_multiple_of(16);
            let (buf, scale_base) = match format {
                BFormat::F16 | BFormat::F16Blocked => (self.backend.create_buffer(&label, Elem::F16, k * n_pad)?, 0),
                BFormat::F32 => (self.backend.create_buffer(&label, Elem::F32, k * n_pad)?, 0),
                // Bytes, then one f32 scale per column (as `quantize_i8` lays them out).
                BFormat::I8 => (self.backend.create_buffer(&label, Elem::U32, k * n_pad / 4 + n_pad)?, k * n_pad / 4),
            };
            chunks.push(WeightChunk { buf, col_start, cols, n_pad, scale_base });
        }
        let bias = if bias { Some(self.f32(&format!("{label}.bias"), n)?) } else { None };
        Ok(DeviceLinear { k, n, format, chunks, bias })
    }

    fn layer_norm(&mut self, slot: NormSlot) -> Result<DeviceLayerNorm> {
        let dim = match slot {
            NormSlot::Block(Stack::Encoder(_), _) | NormSlot::EncoderPost => self.dims.n_audio_state,
            NormSlot::Block(Stack::Decoder(_), _) | NormSlot::DecoderFinal => self.dims.n_text_state,
        };
        let label = slot.label();
        Ok(DeviceLayerNorm {
            gamma: self.f32(&format!("{label}.weight"), dim)?,
            beta: self.f32(&format!("{label}.bias"), dim)?,
        })
    }

    fn table(&mut self, slot: TableSlot) -> Result<BufId> {
        let len = match slot {
            TableSlot::Encoder => self.dims.n_audio_ctx * self.dims.n_audio_state,
            TableSlot::Decoder => self.dims.n_text_ctx * self.dims.n_text_state,
        };
        self.f32(slot.label(), len)
    }
}

/// Device buffers of the sizes and chunking [`upload`] would make for a model of `dims` with
/// linear weights in `format`, left zero: capacity planning without the weights (tests build
/// sessions of every Whisper size this way). Convolutions are F16 when `format` is int8, as a
/// half-precision checkpoint would keep them. `untied_output` adds a logits projection of its
/// own (aria-amt).
pub fn layout(
    backend: &mut dyn Backend,
    dims: &ModelDims,
    format: BFormat,
    untied_output: bool,
) -> Result<DeviceWeights> {
    let max_bytes = backend.max_binding_bytes();
    let mut l = Layout { backend, dims, format, untied_output, max_bytes };
    assemble(&mut l, format, dims.n_audio_layer, dims.n_text_layer)
}
