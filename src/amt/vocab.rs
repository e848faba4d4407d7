//! The aria-amt vocabulary: 3419 ids in the order `AmtTokenizer` builds it (aria-amt
//! `amt/tokenizer.py`), and the JSON form the reference files use for tokens.
use crate::{Error, Result};
use serde_json::Value;

/// Number of ids in the vocabulary.
pub const VOCAB_SIZE: u32 = 3419;
/// First id of each block, in vocabulary order.
pub const PREV_BASE: u32 = 5;
pub const ON_BASE: u32 = 133;
pub const OFF_BASE: u32 = 261;
pub const PEDAL_OFF_ID: u32 = 389;
pub const PEDAL_ON_ID: u32 = 390;
pub const PREV_PEDAL_ID: u32 = 391;
pub const VEL_BASE: u32 = 392;
pub const ONSET_BASE: u32 = 418;
pub const BOS_ID: u32 = 0;
pub const EOS_ID: u32 = 1;
pub const PAD_ID: u32 = 2;
pub const UNK_ID: u32 = 3;

/// Velocities are quantised to 0, 5, ..., 125; onsets to 0, 10, ..., 30000 ms.
pub const VEL_STEP: u32 = 5;
pub const VEL_MAX: u32 = 125;
pub const ONSET_STEP: u32 = 10;
pub const ONSET_MAX: u32 = 30000;

/// One token. Values are kept as written, so a sequence can hold tokens outside the
/// vocabulary (the stitched sequence shifts onsets past 30000 ms); [`Token::id`] says which
/// are in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Token {
    /// `<S>`, start of the events after the `prev` prefix.
    Bos,
    /// `<E>`, end of the piece.
    Eos,
    /// `<P>`, padding.
    Pad,
    /// `<U>`, unknown.
    Unk,
    /// `<D>`, aria-utils' dimension token (unused by aria-amt).
    Dim,
    /// A note already sounding when the window starts.
    Prev(u8),
    /// The sustain pedal already down when the window starts.
    PrevPedal,
    On(u8),
    Off(u8),
    /// Sustain pedal: `true` down (`["pedal", 1]`), `false` up (`["pedal", 0]`).
    Pedal(bool),
    Vel(u8),
    /// Time in ms from the window start.
    Onset(u32),
}

impl Token {
    /// The vocabulary id, or None for a token outside the vocabulary.
    pub fn id(&self) -> Option<u32> {
        let pitch = |base: u32, p: u8| (p < 128).then_some(base + p as u32);
        match *self {
            Token::Bos => Some(BOS_ID),
            Token::Eos => Some(EOS_ID),
            Token::Pad => Some(PAD_ID),
            Token::Unk => Some(UNK_ID),
            Token::Dim => Some(4),
            Token::Prev(p) => pitch(PREV_BASE, p),
            Token::On(p) => pitch(ON_BASE, p),
            Token::Off(p) => pitch(OFF_BASE, p),
            Token::Pedal(down) => Some(if down { PEDAL_ON_ID } else { PEDAL_OFF_ID }),
            Token::PrevPedal => Some(PREV_PEDAL_ID),
            Token::Vel(v) => {
                let v = v as u32;
                (v % VEL_STEP == 0 && v <= VEL_MAX).then(|| VEL_BASE + v / VEL_STEP)
            }
            Token::Onset(ms) => (ms % ONSET_STEP == 0 && ms <= ONSET_MAX).then(|| ONSET_BASE + ms / ONSET_STEP),
        }
    }

    /// The token of an id, or None past the vocabulary.
    pub fn from_id(id: u32) -> Option<Token> {
        Some(match id {
            0 => Token::Bos,
            1 => Token::Eos,
            2 => Token::Pad,
            3 => Token::Unk,
            4 => Token::Dim,
            5..=132 => Token::Prev((id - PREV_BASE) as u8),
            133..=260 => Token::On((id - ON_BASE) as u8),
            261..=388 => Token::Off((id - OFF_BASE) as u8),
            PEDAL_OFF_ID => Token::Pedal(false),
            PEDAL_ON_ID => Token::Pedal(true),
            PREV_PEDAL_ID => Token::PrevPedal,
            392..=417 => Token::Vel(((id - VEL_BASE) * VEL_STEP) as u8),
            418..=3418 => Token::Onset((id - ONSET_BASE) * ONSET_STEP),
            _ => return None,
        })
    }

    /// Special tokens are plain strings upstream; everything else is a (kind, value) tuple.
    pub fn is_special(&self) -> bool {
        matches!(self, Token::Bos | Token::Eos | Token::Pad | Token::Unk | Token::Dim)
    }

    /// The tuple's second element when it is an integer: what upstream reads as `tok[1]`
    /// without checking the kind (None for the specials and for `["prev", "pedal"]`).
    pub(crate) fn int_value(&self) -> Option<i64> {
        match *self {
            Token::Prev(p) | Token::On(p) | Token::Off(p) | Token::Vel(p) => Some(p as i64),
            Token::Pedal(down) => Some(down as i64),
            Token::Onset(ms) => Some(ms as i64),
            _ => None,
        }
    }

    /// The reference files' JSON form: `"<S>"` or `["on", 60]`, `["prev", "pedal"]`.
    pub fn to_json(&self) -> Value {
        let pair = |kind: &str, v: i64| Value::from(vec![Value::from(kind), Value::from(v)]);
        match *self {
            Token::Bos => "<S>".into(),
            Token::Eos => "<E>".into(),
            Token::Pad => "<P>".into(),
            Token::Unk => "<U>".into(),
            Token::Dim => "<D>".into(),
            Token::PrevPedal => Value::from(vec!["prev", "pedal"]),
            Token::Prev(p) => pair("prev", p as i64),
            Token::On(p) => pair("on", p as i64),
            Token::Off(p) => pair("off", p as i64),
            Token::Pedal(down) => pair("pedal", down as i64),
            Token::Vel(v) => pair("vel", v as i64),
            Token::Onset(ms) => pair("onset", ms as i64),
        }
    }

    /// Parses the JSON form; an unknown kind or an out-of-range value is an error.
    pub fn from_json(v: &Value) -> Result<Token> {
        let bad = || Error::Tokenizer(format!("not an aria-amt token: {v}"));
        if let Some(s) = v.as_str() {
            return match s {
                "<S>" => Ok(Token::Bos),
                "<E>" => Ok(Token::Eos),
                "<P>" => Ok(Token::Pad),
                "<U>" => Ok(Token::Unk),
                "<D>" => Ok(Token::Dim),
                _ => Err(bad()),
            };
        }
        let [kind, value] = v.as_array().map(Vec::as_slice).ok_or_else(bad)? else { return Err(bad()) };
        if kind == "prev" && value == "pedal" {
            return Ok(Token::PrevPedal);
        }
        let n = value.as_u64().ok_or_else(bad)?;
        let small = || u8::try_from(n).ok().filter(|&p| p < 128).ok_or_else(bad);
        match kind.as_str().ok_or_else(bad)? {
            "prev" => Ok(Token::Prev(small()?)),
            "on" => Ok(Token::On(small()?)),
            "off" => Ok(Token::Off(small()?)),
            "vel" => Ok(Token::Vel(small()?)),
            "pedal" if n <= 1 => Ok(Token::Pedal(n == 1)),
            "onset" => Ok(Token::Onset(u32::try_from(n).map_err(|_| bad())?)),
            _ => Err(bad()),
        }
    }
}

/// Ids of a token sequence; a token outside the vocabulary is an error naming it.
pub fn encode(tokens: &[Token]) -> Result<Vec<u32>> {
    tokens
        .iter()
        .enumerate()
        .map(|(i, t)| t.id().ok_or_else(|| Error::Tokenizer(format!("token {i} {t:?} is not in the vocabulary"))))
        .collect()
}

/// Ids as upstream's `Tokenizer.encode` gives them: a token outside the vocabulary (such as a
/// stitched onset past 30000 ms) becomes `<U>`.
pub fn encode_lossy(tokens: &[Token]) -> Vec<u32> {
    tokens.iter().map(|t| t.id().unwrap_or(UNK_ID)).collect()
}

/// Tokens of an id sequence; an id past the vocabulary is an error naming it.
pub fn decode(ids: &[u32]) -> Result<Vec<Token>> {
    ids.iter()
        .enumerate()
        .map(|(i, &id)| {
            Token::from_id(id).ok_or_else(|| Error::Tokenizer(format!("id {id} at {i} is past the vocabulary")))
        })
        .collect()
}

/// A token sequence from its JSON array.
pub fn tokens_from_json(v: &Value) -> Result<Vec<Token>> {
    let items = v.as_array().ok_or_else(|| Error::Tokenizer(format!("not a token list: {v}")))?;
    items.iter().map(Token::from_json).collect()
}

/// A token sequence as a JSON array.
pub fn tokens_to_json(tokens: &[Token]) -> Value {
    Value::Array(tokens.iter().map(Token::to_json).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amt_every_id_round_trips() {
        for id in 0..VOCAB_SIZE {
            let t = Token::from_id(id).unwrap();
            assert_eq!(t.id(), Some(id));
            assert_eq!(Token::from_json(&t.to_json()).unwrap(), t);
        }
        assert_eq!(Token::from_id(VOCAB_SIZE), None);
        assert_eq!(Token::Onset(30010).id(), None);
        assert_eq!(Token::Onset(15).id(), None);
        assert_eq!(Token::Vel(127).id(), None);
    }
}
