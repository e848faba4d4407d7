//! Decoding: sessions that run the encoder and replay the decode step, and the greedy driver.
pub mod session;

pub use session::{RowPrompt, Session, SessionOptions};
