//! Tensor names of the two checkpoint conventions, slot by slot.
use crate::config::Naming;

/// Builds the checkpoint name of each weight slot for one naming convention.
pub struct Names {
    hf: bool,
}

impl Names {
    pub fn new(naming: Naming) -> Names {
        Names { hf: naming == Naming::HuggingFace }
    }
    fn pick(&self, hf: &str, openai: &str) -> String {
        if self.hf { hf } else { openai }.to_string()
    }
    pub fn weight(&self, prefix: &str) -> String {
        format!("{prefix}.weight")
    }
    pub fn bias(&self, prefix: &str) -> String {
        format!("{prefix}.bias")
    }
    pub fn conv1(&self) -> String {
        self.pick("model.encoder.conv1", "encoder.conv1")
    }
    pub fn conv2(&self) -> String {
        self.pick("model.encoder.conv2", "encoder.conv2")
    }
    pub fn encoder_positional(&self) -> String {
        self.pick("model.encoder.embed_positions.weight", "encoder.positional_embedding")
    }
    pub fn encoder_ln(&self) -> String {
        self.pick("model.encoder.layer_norm", "encoder.ln_post")
    }
    pub fn encoder_block(&self, i: usize) -> String {
        if self.hf {
            format!("model.encoder.layers.{i}")
        } else {
            format!("encoder.blocks.{i}")
        }
    }
    pub fn decoder_block(&self, i: usize) -> String {
        if self.hf {
            format!("model.decoder.layers.{i}")
        } else {
            format!("decoder.blocks.{i}")
        }
    }
    pub fn token_embedding(&self) -> String {
        self.pick("model.decoder.embed_tokens.weight", "decoder.token_embedding.weight")
    }
    pub fn decoder_positional(&self) -> String {
        self.pick("model.decoder.embed_positions.weight", "decoder.positional_embedding")
    }
    pub fn decoder_ln(&self) -> String {
        self.pick("model.decoder.layer_norm", "decoder.ln")
    }
    /// Names a separate logits projection goes by: Hugging Face's `proj_out`; aria-amt's
    /// `decoder.output` (and `decoder.proj_out` in some OpenAI-style exports).
    pub fn output_projections(&self) -> &'static [&'static str] {
        if self.hf {
            &["proj_out.weight"]
        } else {
            &["decoder.output.weight", "decoder.proj_out.weight"]
        }
    }
    pub fn self_attn(&self, block: &str) -> String {
        format!("{block}.{}", if self.hf { "self_attn" } else { "attn" })
    }
    pub fn cross_attn(&self, block: &str) -> String {
        format!("{block}.{}", if self.hf { "encoder_attn" } else { "cross_attn" })
    }
    pub fn attn_ln(&self, block: &str) -> String {
        format!("{block}.{}", if self.hf { "self_attn_layer_norm" } else { "attn_ln" })
    }
    pub fn cross_ln(&self, block: &str) -> String {
        format!("{block}.{}", if self.hf { "encoder_attn_layer_norm" } else { "cross_attn_ln" })
    }
    pub fn mlp_ln(&self, block: &str) -> String {
        format!("{block}.{}", if self.hf { "final_layer_norm" } else { "mlp_ln" })
    }
    pub fn fc1(&self, block: &str) -> String {
        format!("{block}.{}", if self.hf { "fc1" } else { "mlp.0" })
    }
    pub fn fc2(&self, block: &str) -> String {
        format!("{block}.{}", if self.hf { "fc2" } else { "mlp.2" })
    }
    pub fn query(&self, attn: &str) -> String {
        format!("{attn}.{}", if self.hf { "q_proj" } else { "query" })
    }
    pub fn key(&self, attn: &str) -> String {
        format!("{attn}.{}", if self.hf { "k_proj" } else { "key" })
    }
    pub fn value(&self, attn: &str) -> String {
        format!("{attn}.{}", if self.hf { "v_proj" } else { "value" })
    }
    pub fn attn_out(&self, attn: &str) -> String {
        format!("{attn}.{}", if self.hf { "out_proj" } else { "out" })
    }
}
