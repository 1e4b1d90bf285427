//! The top-level items of a composed WGSL source and the source of one entry point: every
//! declaration that is not a function (directives, structs, overrides, constants, bindings),
//! the entry point itself and the functions it reaches by calls — no other entry point.
//!
//! Why: a generated shader file holds dozens of specialised entry points (`conv_fast.wgsl`
//! ≈ 0.8 MB, `conv_grad_fast.wgsl` ≈ 1.4 MB) and a model uses a few of them. naga parses and
//! validates a module whole, and wgpu re-validates it for every pipeline that sets override
//! constants, so one module per entry point is what makes a cold start cheap (README, "Cold
//! start"). The split is lexical (WGSL has no strings, no function values, no preprocessor):
//! items end at a `;` or at a `}` at brace depth 0, comments are skipped, and a function's
//! calls are the identifiers in its text that name a function — an identifier that only
//! shadows a function's name keeps that function too, which is harmless.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

/// One top-level item: its text (with the comments before it) and, for a function, its name,
/// whether it is an entry point and the identifiers it uses.
#[derive(Debug)]
struct Item {
    text: Range<usize>,
    function: Option<Function>,
}

#[derive(Debug)]
struct Function {
    name: String,
    entry: bool,
    idents: HashSet<String>,
}

/// A WGSL source split into its top-level items.
#[derive(Debug)]
pub struct Items {
    items: Vec<Item>,
    by_name: HashMap<String, usize>,
}

fn ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Where the comment starting at `i` ends (`i` itself when none starts there); block
/// comments nest, as in WGSL.
fn skip_comment(s: &[u8], i: usize) -> usize {
    match (s.get(i), s.get(i + 1)) {
        (Some(b'/'), Some(b'/')) => s[i..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(s.len(), |n| i + n),
        (Some(b'/'), Some(b'*')) => {
            let (mut j, mut depth) = (i + 2, 1);
            while j < s.len() && depth > 0 {
                if s[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if s[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            j
        }
        _ => i,
    }
}

/// The identifiers of `s` outside comments, in order.
fn idents(s: &str) -> Vec<&str> {
    let b = s.as_bytes();
    let (mut out, mut i) = (Vec::new(), 0);
    while i < b.len() {
        let j = skip_comment(b, i);
        if j != i {
            i = j;
        } else if ident_start(b[i]) {
            let start = i;
            while i < b.len() && ident_char(b[i]) {
                i += 1;
            }
            out.push(&s[start..i]);
        } else if b[i].is_ascii_digit() {
            // A number with its suffix (`1u`, `0x1f`, `1e-3f`) is not an identifier.
            while i < b.len() && ident_char(b[i]) {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The function an item declares, if it is one: `[@attr…] fn name(…`.
fn function(text: &str) -> Option<Function> {
    let words = idents(text);
    let fn_at = words.iter().position(|&w| w == "fn")?;
    // Only attributes may come before `fn`: every earlier word is an attribute name or an
    // attribute argument, so a non-function item (`const`, `struct`, …) never gets here
    // unless its first word is `fn`.
    let head = &words[..fn_at];
    if head.iter().any(|w| {
        matches!(
            *w,
            "const" | "struct" | "var" | "override" | "alias" | "enable"
        )
    }) {
        return None;
    }
    let name = words.get(fn_at + 1)?.to_string();
    let entry = head
        .iter()
        .any(|w| matches!(*w, "compute" | "vertex" | "fragment"));
    let idents = words[fn_at + 2..].iter().map(|w| w.to_string()).collect();
    Some(Function {
        name,
        entry,
        idents,
    })
}

impl Items {
    /// Splits `src` into its top-level items.
    pub fn split(src: &str) -> Self {
        let b = src.as_bytes();
        let (mut items, mut start, mut depth, mut i) = (Vec::new(), 0, 0usize, 0);
        while i < b.len() {
            let j = skip_comment(b, i);
            if j != i {
                i = j;
                continue;
            }
            let end = match b[i] {
                b'{' => {
                    depth += 1;
                    false
                }
                b'}' => {
                    depth = depth.saturating_sub(1);
                    depth == 0
                }
                b';' => depth == 0,
                _ => false,
            };
            i += 1;
            if end {
                let text = start..i;
                let function = function(&src[text.clone()]);
                items.push(Item { text, function });
                start = i;
            }
        }
        if !idents(&src[start..]).is_empty() {
            // An unterminated tail (a syntax error naga will report): keep it whole.
            items.push(Item {
                text: start..src.len(),
                function: None,
            });
        }
        let by_name = items
            .iter()
            .enumerate()
            .filter_map(|(i, it)| it.function.as_ref().map(|f| (f.name.clone(), i)))
            .collect();
        Self { items, by_name }
    }

    /// The names of the entry points, in source order.
    pub fn entry_points(&self) -> Vec<&str> {
        self.items
            .iter()
            .filter_map(|it| it.function.as_ref().filter(|f| f.entry))
            .map(|f| f.name.as_str())
            .collect()
    }

    /// `src` (the text this was split from) with only `entry` and the functions it reaches
    /// by calls; every other item in its place. `None` when `entry` is not an entry point.
    pub fn entry_source(&self, src: &str, entry: &str) -> Option<String> {
        let first = *self.by_name.get(entry)?;
        self.items[first].function.as_ref().filter(|f| f.entry)?;
        let mut keep = HashSet::from([first]);
        let mut todo = vec![first];
        while let Some(i) = todo.pop() {
            let Some(f) = &self.items[i].function else {
                continue;
            };
            for id in &f.idents {
                if let Some(&callee) = self.by_name.get(id) {
                    let is_entry = self.items[callee]
                        .function
                        .as_ref()
                        .is_some_and(|f| f.entry);
                    if !is_entry && keep.insert(callee) {
                        todo.push(callee);
                    }
                }
            }
        }
        let mut out = String::new();
        for (i, it) in self.items.iter().enumerate() {
            if it.function.is_none() || keep.contains(&i) {
                out.push_str(&src[it.text.clone()]);
            }
        }
        out.push('\n');
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "enable f16;\n// a comment with fn fake() { and ; inside\n\
        struct S { a: u32, }\noverride WG: u32 = 8u;\n/* nested /* block */ fn no() {} */\n\
        fn helper(x: u32) -> u32 { return x + 1u; }\nfn unused() -> u32 { return 2u; }\n\
        fn deep() -> u32 { return helper(3u); }\n\
        @compute @workgroup_size(WG)\nfn a(@builtin(local_invocation_index) i: u32) { let v = deep(); }\n\
        @compute @workgroup_size(64)\nfn b() { let helper2 = 1u; let u = unused(); }\n";

    #[test]
    fn entry_source_keeps_declarations_and_reached_functions_only() {
        let items = Items::split(SRC);
        assert_eq!(items.entry_points(), vec!["a", "b"]);
        let a = items.entry_source(SRC, "a").unwrap();
        for kept in [
            "enable f16;",
            "struct S",
            "override WG",
            "fn helper",
            "fn deep",
            "fn a(",
        ] {
            assert!(a.contains(kept), "{kept} missing from\n{a}");
        }
        for gone in ["fn unused", "fn b("] {
            assert!(!a.contains(gone), "{gone} kept in\n{a}");
        }
        let b = items.entry_source(SRC, "b").unwrap();
        assert!(b.contains("fn unused") && !b.contains("fn helper") && !b.contains("fn a("));
    }

    #[test]
    fn unknown_or_non_entry_names_are_none() {
        let items = Items::split(SRC);
        assert!(items.entry_source(SRC, "helper").is_none());
        assert!(items.entry_source(SRC, "nope").is_none());
    }
}
