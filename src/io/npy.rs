//! NumPy `.npy` files (format versions 1.0, 2.0 and 3.0).
//!
//! [`read_npy`] accepts C-order little-endian `f4`, and converts `f8`, `f2` and `u1` to
//! `f32`. Anything else (Fortran order, big-endian, other dtypes, a truncated file) is an
//! [`Error::Format`] that says what was found. [`write_npy`] writes C-order `<f4`, format
//! 1.0 (2.0 only if the header would not fit), atomically.
//!
//! Hostile files are bounded: the header is at most
//! [`MAX_NPY_HEADER_BYTES`], its literal nests at most [`MAX_NESTING_DEPTH`] brackets (the
//! parser's recursion is capped), the shape passes [`check_shape`] (dimensions and
//! elements capped, checked products), and the file is at most [`MAX_NPY_FILE_BYTES`].

use crate::error::{Error, Result};
use crate::fs::{read_file, write_atomic};
use crate::limits::{check_shape, MAX_NESTING_DEPTH, MAX_NPY_FILE_BYTES, MAX_NPY_HEADER_BYTES};
use crate::tensor::Tensor;
use std::path::Path;

/// The magic string every `.npy` file starts with.
const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// numpy pads the header so that the data starts on a multiple of this.
const HEADER_ALIGN: usize = 64;

/// Reads a `.npy` array as an `f32` tensor of the same shape (a 0-d array gives shape `[]`).
///
/// Supported element types: `<f4` as is; `<f8`, `<f2` and `|u1` converted to `f32`.
/// Fortran-order arrays, big-endian data, other dtypes, bad magic, and a truncated header
/// or data section are [`Error::Format`] errors naming `path`; a file that cannot be read is
/// [`Error::Io`]. Special files and files over the caps of [`crate::limits`] are refused
/// (see the [module documentation](self)).
pub fn read_npy(path: impl AsRef<Path>) -> Result<Tensor> {
    let path = path.as_ref();
    let bytes = read_file(path, MAX_NPY_FILE_BYTES)?;
    npy_from_bytes(&bytes, path)
}

/// Parses the bytes of a `.npy` file, as [`read_npy`] does; `origin` names the bytes in
/// errors.
pub fn npy_from_bytes(bytes: &[u8], origin: impl AsRef<Path>) -> Result<Tensor> {
    parse(bytes)
        .map_err(|msg| Error::format(origin.as_ref(), format!("not a supported .npy file: {msg}")))
}

/// At most the first 120 characters of `s`, for error messages.
fn snippet(s: &str) -> String {
    match s.char_indices().nth(120) {
        Some((i, _)) => format!("{:?}…", &s[..i]),
        None => format!("{s:?}"),
    }
}

/// Writes `t` as a C-order little-endian `f4` `.npy` file (format 1.0), atomically: the
/// array goes to `<path>.tmp`, which is then renamed to `path`.
pub fn write_npy(path: impl AsRef<Path>, t: &Tensor) -> Result<()> {
    write_atomic(path, &encode(t))
}

/// Serialises a tensor into the bytes of a `.npy` file.
fn encode(t: &Tensor) -> Vec<u8> {
    let dims: Vec<String> = t.shape().iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    // Version 1.0 stores the header length in a u16; larger headers need 2.0.
    let v1 = header.len() + 1 + 10 <= u16::MAX as usize;
    let prefix = if v1 { 10 } else { 12 };
    let total = (prefix + header.len() + 1).next_multiple_of(HEADER_ALIGN);
    while prefix + header.len() + 1 < total {
        header.push(' ');
    }
    header.push('\n');

    let mut out = Vec::with_capacity(total + 4 * t.numel());
    out.extend_from_slice(MAGIC);
    if v1 {
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&[2, 0]);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    for v in t.data() {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Element types that can be read.
#[derive(Clone, Copy, Debug)]
enum Dtype {
    F4,
    F8,
    F2,
    U1,
}

impl Dtype {
    fn size(self) -> usize {
        match self {
            Dtype::F4 => 4,
            Dtype::F8 => 8,
            Dtype::F2 => 2,
            Dtype::U1 => 1,
        }
    }

    fn parse(descr: &str) -> Result<Self, String> {
        let supported = "supported: <f4, <f8, <f2, |u1";
        let (order, kind) = match descr.as_bytes().first() {
            Some(b'<' | b'>' | b'|' | b'=') => descr.split_at(1),
            _ => ("", descr),
        };
        let little = match order {
            "<" | "|" => true,
            "=" => cfg!(target_endian = "little"),
            ">" => false,
            _ => true,
        };
        let dt = match kind {
            "f4" => Dtype::F4,
            "f8" => Dtype::F8,
            "f2" => Dtype::F2,
            "u1" => return Ok(Dtype::U1),
            _ => return Err(format!("dtype `{descr}` is not supported ({supported})")),
        };
        if !little {
            return Err(format!(
                "big-endian data (dtype `{descr}`) is not supported; save it as little-endian, \
                 e.g. `np.save(path, a.astype('<{kind}'))`"
            ));
        }
        Ok(dt)
    }
}

/// Parses the bytes of a `.npy` file.
fn parse(bytes: &[u8]) -> Result<Tensor, String> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        let n = bytes.len().min(MAGIC.len());
        return Err(format!(
            "bad magic {:02x?} (expected {:02x?}, \"\\x93NUMPY\")",
            &bytes[..n],
            MAGIC
        ));
    }
    let (major, minor) = match bytes.get(6..8) {
        Some(v) => (v[0], v[1]),
        None => return Err("truncated header (no version)".into()),
    };
    let (len_bytes, start) = match major {
        1 => (2, 10),
        2 | 3 => (4, 12),
        _ => return Err(format!("unsupported format version {major}.{minor}")),
    };
    let Some(len) = bytes.get(8..8 + len_bytes) else {
        return Err("truncated header (no header length)".into());
    };
    let header_len = if len_bytes == 2 {
        u16::from_le_bytes([len[0], len[1]]) as usize
    } else {
        u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize
    };
    MAX_NPY_HEADER_BYTES.check("header length", header_len as u64)?;
    let Some(header) = bytes.get(start..start + header_len) else {
        return Err(format!(
            "truncated header: it claims {header_len} bytes, the file has {}",
            bytes.len().saturating_sub(start)
        ));
    };
    let header = String::from_utf8_lossy(header);
    let h = Header::parse(&header)?;
    if h.fortran_order {
        return Err(
            "Fortran-order arrays are not supported; save a C-order array, \
             e.g. `np.save(path, np.ascontiguousarray(a))`"
                .into(),
        );
    }
    let dtype = Dtype::parse(&h.descr)?;
    let numel = check_shape(&h.shape)?;
    let need = numel
        .checked_mul(dtype.size())
        .ok_or_else(|| format!("shape {:?} overflows", h.shape))?;
    let data = &bytes[start + header_len..];
    if data.len() != need {
        let what = if data.len() < need {
            "truncated data"
        } else {
            "trailing bytes"
        };
        return Err(format!(
            "{what}: shape {:?} of `{}` needs {need} bytes, the file has {}",
            h.shape,
            h.descr,
            data.len()
        ));
    }
    let values: Vec<f32> = match dtype {
        Dtype::F4 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F8 => data
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                f64::from_le_bytes(b) as f32
            })
            .collect(),
        Dtype::F2 => data
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::U1 => data.iter().map(|&b| f32::from(b)).collect(),
    };
    Tensor::new(h.shape, values).map_err(|e| e.to_string())
}

/// The three keys of a `.npy` header.
#[derive(Debug)]
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// A Python literal as found in `.npy` headers.
#[derive(Debug)]
enum Lit {
    Str(String),
    Bool(bool),
    Int(usize),
    Seq(Vec<Lit>),
}

impl Header {
    /// Parses `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`.
    fn parse(s: &str) -> Result<Self, String> {
        let mut p = LitParser {
            s: s.as_bytes(),
            i: 0,
            depth: 0,
        };
        let dict = p
            .dict()
            .map_err(|e| format!("malformed header {}: {e}", snippet(s)))?;
        let get = |k: &str| {
            dict.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v)
                .ok_or_else(|| format!("header {} has no `{k}`", snippet(s.trim_end())))
        };
        let descr = match get("descr")? {
            Lit::Str(d) => d.clone(),
            _ => return Err("structured dtypes are not supported".into()),
        };
        let fortran_order = match get("fortran_order")? {
            Lit::Bool(b) => *b,
            v => {
                return Err(format!(
                    "`fortran_order` is {}, not True/False",
                    v.describe()
                ))
            }
        };
        let shape = match get("shape")? {
            Lit::Seq(items) => items
                .iter()
                .map(|v| match v {
                    Lit::Int(d) => Ok(*d),
                    v => Err(format!("shape entry {} is not an integer", v.describe())),
                })
                .collect::<Result<Vec<_>, _>>()?,
            v => return Err(format!("`shape` is {}, not a tuple", v.describe())),
        };
        Ok(Header {
            descr,
            fortran_order,
            shape,
        })
    }
}

impl Lit {
    /// A short description for error messages (never the whole, possibly huge, value).
    fn describe(&self) -> String {
        match self {
            Lit::Str(s) => snippet(s),
            Lit::Bool(b) => if *b { "True" } else { "False" }.into(),
            Lit::Int(n) => n.to_string(),
            Lit::Seq(v) => format!("a sequence of {} items", v.len()),
        }
    }
}

/// A tiny parser for the Python dict literal of a `.npy` header. Sequences nest at most
/// [`MAX_NESTING_DEPTH`] deep, which bounds the parser's recursion.
struct LitParser<'a> {
    s: &'a [u8],
    i: usize,
    /// Open brackets around the current position.
    depth: u64,
}

impl LitParser<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.i).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        match self.peek() {
            Some(x) if x == c => {
                self.i += 1;
                Ok(())
            }
            Some(x) => Err(format!(
                "expected `{}` at byte {}, found `{}`",
                c as char, self.i, x as char
            )),
            None => Err(format!("expected `{}`, found the end", c as char)),
        }
    }

    fn dict(&mut self) -> Result<Vec<(String, Lit)>, String> {
        self.expect(b'{')?;
        let mut out = Vec::new();
        loop {
            if self.peek() == Some(b'}') {
                self.i += 1;
                return Ok(out);
            }
            let key = match self.value()? {
                Lit::Str(k) => k,
                v => return Err(format!("dict key {} is not a string", v.describe())),
            };
            self.expect(b':')?;
            let v = self.value()?;
            out.push((key, v));
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {}
                _ => return Err(format!("expected `,` or `}}` at byte {}", self.i)),
            }
        }
    }

    fn seq(&mut self, close: u8) -> Result<Vec<Lit>, String> {
        self.depth += 1;
        MAX_NESTING_DEPTH.check(&format!("nesting at byte {}", self.i), self.depth)?;
        self.i += 1; // the opening bracket
        let mut out = Vec::new();
        loop {
            if self.peek() == Some(close) {
                self.i += 1;
                self.depth -= 1;
                return Ok(out);
            }
            out.push(self.value()?);
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(c) if c == close => {}
                _ => {
                    return Err(format!(
                        "expected `,` or `{}` at byte {}",
                        close as char, self.i
                    ))
                }
            }
        }
    }

    fn value(&mut self) -> Result<Lit, String> {
        match self.peek() {
            None => Err("unexpected end".into()),
            Some(q @ (b'\'' | b'"')) => {
                let start = self.i + 1;
                let end = self.s[start..]
                    .iter()
                    .position(|&c| c == q)
                    .ok_or("unterminated string")?;
                self.i = start + end + 1;
                Ok(Lit::Str(
                    String::from_utf8_lossy(&self.s[start..start + end]).into_owned(),
                ))
            }
            Some(b'(') => Ok(Lit::Seq(self.seq(b')')?)),
            Some(b'[') => Ok(Lit::Seq(self.seq(b']')?)),
            Some(c) if c.is_ascii_digit() => {
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                    self.i += 1;
                }
                let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                let n = digits
                    .parse::<usize>()
                    .map_err(|_| format!("integer {digits} out of range"))?;
                // Python 2 wrote longs as `3L`.
                if self.s.get(self.i) == Some(&b'L') {
                    self.i += 1;
                }
                Ok(Lit::Int(n))
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.i;
                while self.i < self.s.len() && self.s[self.i].is_ascii_alphanumeric() {
                    self.i += 1;
                }
                match &self.s[start..self.i] {
                    b"True" => Ok(Lit::Bool(true)),
                    b"False" => Ok(Lit::Bool(false)),
                    w => Err(format!("unexpected `{}`", String::from_utf8_lossy(w))),
                }
            }
            Some(c) => Err(format!("unexpected `{}` at byte {}", c as char, self.i)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_shapes() {
        let h = Header::parse("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }  \n")
            .unwrap();
        assert_eq!(h.shape, vec![2, 3]);
        assert_eq!(h.descr, "<f4");
        assert!(!h.fortran_order);
        let h = Header::parse("{'descr': '|u1', 'fortran_order': True, 'shape': (5,)}").unwrap();
        assert_eq!(h.shape, vec![5]);
        assert!(h.fortran_order);
        let h =
            Header::parse("{\"shape\": (), \"fortran_order\": False, \"descr\": \"<f8\"}").unwrap();
        assert!(h.shape.is_empty());
        assert!(Header::parse("{'descr': '<f4', 'shape': (2,").is_err());
        assert!(Header::parse("").is_err());
    }

    #[test]
    fn encode_is_aligned_and_parses_back() {
        for shape in [vec![], vec![3], vec![2, 3, 4]] {
            let t = Tensor::from_fn(&shape, |i| i as f32 * 0.25 - 1.0);
            let b = encode(&t);
            let hl = u16::from_le_bytes([b[8], b[9]]) as usize;
            assert_eq!((10 + hl) % HEADER_ALIGN, 0);
            assert_eq!(b[10 + hl - 1], b'\n');
            assert_eq!(parse(&b).unwrap(), t);
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        let t = Tensor::from_fn(&[2, 2], |i| i as f32);
        let b = encode(&t);
        for n in 0..b.len() {
            assert!(parse(&b[..n]).is_err(), "prefix of {n} bytes parsed");
        }
    }
}
