//! Text from tokens (and back) through the `tokenizers` crate, with Whisper's special tokens
//! (end-of-text and everything above it: languages, tasks, timestamps) kept out of the text.
use crate::{Error, Result};
use std::path::Path;

pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// Ids at or above this are special (end-of-text, languages, tasks, timestamps).
    first_special: u32,
}

impl Tokenizer {
    /// Loads `tokenizer.json`; `first_special` is the end-of-text id (50256 for English-only
    /// Whisper, 50257 for multilingual).
    pub fn from_file(path: &Path, first_special: u32) -> Result<Tokenizer> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let inner = tokenizers::Tokenizer::from_bytes(&bytes)
            .map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))?;
        Ok(Tokenizer { inner, first_special })
    }

    /// The text of the ordinary tokens among `tokens`.
    pub fn decode(&self, tokens: &[u32]) -> Result<String> {
        let text: Vec<u32> = tokens.iter().copied().filter(|&t| t < self.first_special).collect();
        self.inner.decode(&text, false).map_err(|e| Error::Tokenizer(e.to_string()))
    }

    /// Tokens of `text` without special tokens (initial prompts, previous-window text).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, false).map_err(|e| Error::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The id of a token given by its text, such as `<|en|>`.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    pub fn first_special(&self) -> u32 {
        self.first_special
    }
}
