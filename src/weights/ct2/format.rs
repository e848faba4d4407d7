//! The CTranslate2 `model.bin` container, little endian, binary versions 1..6:
//!
//! ```text
//! u32 binary_version
//! version >= 2: str spec_name, u32 spec_revision
//! u32 num_variables
//! per variable: str name, u8 rank, u32 dims[rank],
//!               version >= 4: u8 dtype_id, u32 num_bytes
//!               version <  4: u8 item_size, u32 num_elements
//!               raw values
//! version >= 3: u32 num_aliases, then (str alias, str target) pairs
//! str = u16 length (including a trailing NUL) + bytes
//! ```
//! dtype ids: 0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16. Before version 4 the item size alone
//! decides: 4 f32, 2 i16, 1 i8.
use super::{Ct2Data, Ct2File, Ct2Variable};
use crate::{Error, Result};
use bytemuck::Pod;
use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

pub(super) fn parse(reader: impl Read, len: u64, origin: &Path) -> Result<Ct2File> {
    let mut input = Input { inner: reader, remaining: len, offset: 0, origin: origin.to_path_buf() };
    let version = input.u32("binary version")?;
    if !(1..=6).contains(&version) {
        return Err(input.err(format!("unsupported CTranslate2 binary version {version} (expected 1..6)")));
    }
    let (spec, spec_revision) =
        if version >= 2 { (Some(input.string("spec name")?), input.u32("spec revision")?) } else { (None, 1) };
    let n_vars = input.u32("variable count")?;
    let mut variables = Vec::new();
    let mut names = HashSet::new();
    for i in 0..n_vars {
        let var = variable(&mut input, version, i)?;
        if !names.insert(var.name.clone()) {
            return Err(input.err(format!("variable `{}` is stored twice", var.name)));
        }
        variables.push(var);
    }
    let mut aliases = Vec::new();
    if version >= 3 {
        let n_aliases = input.u32("alias count")?;
        let mut seen = HashSet::new();
        for i in 0..n_aliases {
            let alias = input.string(&format!("name of alias {i}"))?;
            let target = input.string(&format!("target of alias `{alias}`"))?;
            if !seen.insert(alias.clone()) {
                return Err(input.err(format!("alias `{alias}` is defined twice")));
            }
            aliases.push((alias, target));
        }
    }
    input.finish()?;
    Ok(Ct2File { origin: origin.to_path_buf(), binary_version: version, spec, spec_revision, variables, aliases })
}

fn variable<R: Read>(input: &mut Input<R>, version: u32, index: u32) -> Result<Ct2Variable> {
    let name = input.string(&format!("name of variable {index}"))?;
    let rank = input.u8(&format!("rank of `{name}`"))?;
    let mut dims = Vec::with_capacity(usize::from(rank));
    for _ in 0..rank {
        dims.push(input.u32(&format!("dims of `{name}`"))? as usize);
    }
    let (kind, n_bytes) = if version >= 4 {
        let id = input.u8(&format!("dtype of `{name}`"))?;
        let kind = Kind::from_id(id).ok_or_else(|| input.err(format!("`{name}` has unknown dtype id {id}")))?;
        (kind, u64::from(input.u32(&format!("byte count of `{name}`"))?))
    } else {
        let item = input.u8(&format!("item size of `{name}`"))?;
        let kind = Kind::from_item_size(item)
            .ok_or_else(|| input.err(format!("`{name}` has unsupported item size {item}")))?;
        let count = u64::from(input.u32(&format!("element count of `{name}`"))?);
        // Cannot overflow: u32 * (1, 2 or 4).
        (kind, count * kind.size() as u64)
    };
    let n_items = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .ok_or_else(|| input.err(format!("`{name}`: the product of dims {dims:?} overflows")))?;
    let expected = n_items.checked_mul(kind.size() as u64);
    if expected != Some(n_bytes) {
        return Err(input.err(format!(
            "`{name}`: {n_bytes} bytes of {} do not match shape {dims:?} ({n_items} items of {} bytes)",
            kind.name(),
            kind.size()
        )));
    }
    // Checked against what is left before allocating: a lying size cannot make us allocate.
    input.need(n_bytes, &format!("values of `{name}`"))?;
    let n = usize::try_from(n_items).map_err(|_| input.err(format!("`{name}` is too large for this machine")))?;
    let what = format!("values of `{name}`");
    let data = match kind {
        Kind::F32 => Ct2Data::F32(input.values(n, &what)?),
        Kind::I8 => Ct2Data::I8(input.values(n, &what)?),
        Kind::I16 => Ct2Data::I16(input.values(n, &what)?),
        Kind::I32 => Ct2Data::I32(input.values(n, &what)?),
        Kind::F16 => Ct2Data::F16(input.values(n, &what)?),
        Kind::Bf16 => Ct2Data::Bf16(input.values(n, &what)?),
    };
    Ok(Ct2Variable { name, dims, data })
}

#[derive(Clone, Copy)]
enum Kind {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl Kind {
    fn from_id(id: u8) -> Option<Kind> {
        Some(match id {
            0 => Kind::F32,
            1 => Kind::I8,
            2 => Kind::I16,
            3 => Kind::I32,
            4 => Kind::F16,
            5 => Kind::Bf16,
            _ => return None,
        })
    }
    fn from_item_size(size: u8) -> Option<Kind> {
        Some(match size {
            4 => Kind::F32,
            2 => Kind::I16,
            1 => Kind::I8,
            _ => return None,
        })
    }
    fn size(self) -> usize {
        match self {
            Kind::I8 => 1,
            Kind::I16 | Kind::F16 | Kind::Bf16 => 2,
            Kind::F32 | Kind::I32 => 4,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Kind::F32 => "float32",
            Kind::I8 => "int8",
            Kind::I16 => "int16",
            Kind::I32 => "int32",
            Kind::F16 => "float16",
            Kind::Bf16 => "bfloat16",
        }
    }
}

/// A reader that knows how many bytes the file has left, so that every declared size can be
/// checked before it is trusted.
struct Input<R> {
    inner: R,
    remaining: u64,
    offset: u64,
    origin: PathBuf,
}

impl<R: Read> Input<R> {
    fn err(&self, msg: String) -> Error {
        self.err_at(self.offset, msg)
    }

    fn err_at(&self, offset: u64, msg: String) -> Error {
        Error::ModelFile { path: self.origin.clone(), msg: format!("{msg} (at byte {offset})") }
    }

    fn need(&self, n: u64, what: &str) -> Result<()> {
        if n > self.remaining {
            return Err(self.err(format!("truncated: {what} needs {n} bytes but only {} remain", self.remaining)));
        }
        Ok(())
    }

    fn fill(&mut self, buf: &mut [u8], what: &str) -> Result<()> {
        self.need(buf.len() as u64, what)?;
        if let Err(e) = self.inner.read_exact(buf) {
            return Err(if e.kind() == std::io::ErrorKind::UnexpectedEof {
                self.err(format!("truncated: the data ends inside {what}"))
            } else {
                Error::io(&self.origin, e)
            });
        }
        self.remaining -= buf.len() as u64;
        self.offset += buf.len() as u64;
        Ok(())
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        self.fill(&mut b, what)?;
        Ok(b)
    }

    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    /// A u16 length (counting the trailing NUL), then the bytes.
    fn string(&mut self, what: &str) -> Result<String> {
        let n = u16::from_le_bytes(self.array(what)?);
        self.need(u64::from(n), what)?;
        let mut raw = vec![0u8; usize::from(n)];
        let start = self.offset;
        self.fill(&mut raw, what)?;
        while raw.last() == Some(&0) {
            raw.pop();
        }
        String::from_utf8(raw).map_err(|e| self.err_at(start, format!("{what} is not UTF-8: {e}")))
    }

    /// `n` little-endian values, read straight into their final buffer. The caller has checked
    /// that `n` values fit in what remains.
    fn values<T: Pod>(&mut self, n: usize, what: &str) -> Result<Vec<T>> {
        let mut v = vec![T::zeroed(); n];
        self.fill(bytemuck::cast_slice_mut(&mut v), what)?;
        if cfg!(target_endian = "big") {
            let size = std::mem::size_of::<T>();
            for item in bytemuck::cast_slice_mut::<T, u8>(&mut v).chunks_exact_mut(size) {
                item.reverse();
            }
        }
        Ok(v)
    }

    /// Everything declared must have been consumed, and the stream must end there too (reading to
    /// the end also lets a zip member reader verify its checksum).
    fn finish(&mut self) -> Result<()> {
        if self.remaining != 0 {
            return Err(self.err(format!("{} trailing bytes after the aliases", self.remaining)));
        }
        let mut probe = [0u8; 1];
        loop {
            match self.inner.read(&mut probe) {
                Ok(0) => return Ok(()),
                Ok(_) => return Err(self.err("the data goes on past its declared length".into())),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(&self.origin, e)),
            }
        }
    }
}
