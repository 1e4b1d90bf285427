//! A zoo model with its variations, as the `models` suite takes it: a name (or a model
//! `.toml`) followed by `key=value` words, e.g. `vgg13bn scheme=E width=0.5` or
//! `resnet50-dsc-sgc groups=8 size=64`. Keys: `scheme` (A–E, a scheme file or stage groups
//! like `1,1,8,8,8`), `groups` (G of the grouped convolutions), `conv` (`dense`, `sgc`,
//! `flgc`), `width` (multiplier), `size` (input height = width).

use crate::error::{Error, Result};
use crate::zoo::{ConvKind, ModelSpec, Scheme};

/// The model `what` names, with its variations applied.
///
/// # Errors
///
/// [`Error::InvalidArgument`] naming the word for an unknown key or a bad value; the zoo's
/// errors for an unknown model or scheme.
pub fn zoo_spec(what: &str) -> Result<ModelSpec> {
    // A model file whose path has spaces is taken whole.
    if std::path::Path::new(what).is_file() {
        return ModelSpec::load(what);
    }
    let mut words = what.split_whitespace();
    let name = words.next().unwrap_or("");
    let mut spec = ModelSpec::load(name)?;
    let bad = |w: &str, msg: &str| Error::InvalidArgument(format!("model `{what}`: `{w}`: {msg}"));
    let mut groups = None;
    let mut conv = None;
    for w in words {
        let (k, v) = w
            .split_once('=')
            .ok_or_else(|| bad(w, "expected key=value (scheme, groups, conv, width, size)"))?;
        let num = |what: &str| bad(w, &format!("expected {what}"));
        match k {
            "scheme" => spec = spec.with_scheme(&Scheme::load(v)?)?,
            "groups" => {
                groups = Some(
                    v.parse::<usize>()
                        .ok()
                        .filter(|g| *g > 0)
                        .ok_or_else(|| num("a group count ≥ 1"))?,
                )
            }
            "conv" => {
                conv = Some(match v {
                    "dense" => ConvKind::Dense,
                    "sgc" => ConvKind::Sgc,
                    "flgc" => ConvKind::Flgc,
                    _ => return Err(bad(w, "expected dense, sgc or flgc")),
                })
            }
            "width" => {
                spec.width = v
                    .parse::<f32>()
                    .ok()
                    .filter(|x| x.is_finite() && *x > 0.0)
                    .ok_or_else(|| num("a width multiplier above 0"))?
            }
            "size" => {
                let s = v
                    .parse::<usize>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| num("an input size ≥ 1"))?;
                spec.input = [spec.input[0], s, s];
            }
            _ => return Err(bad(w, "unknown key (scheme, groups, conv, width, size)")),
        }
    }
    match (groups, conv) {
        (Some(g), c) => spec = spec.with_groups(g, c)?,
        (None, Some(c)) => {
            let g = spec.groups();
            spec = spec.with_groups(g, Some(c))?;
        }
        (None, None) => {}
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variations_apply_and_bad_words_are_named() {
        let plain = zoo_spec("vgg11bn").unwrap();
        let v = zoo_spec("vgg11bn scheme=E width=0.5 size=32").unwrap();
        assert_eq!(v.width, 0.5);
        assert_eq!(v.input, [3, 32, 32]);
        let (a, b) = (plain.build().unwrap().cost(), v.build().unwrap().cost());
        assert!(b.total_macs < a.total_macs);
        let g = zoo_spec("resnet50-dsc-sgc groups=8").unwrap();
        assert_eq!(g.groups(), 8);
        for bad in [
            "vgg11bn width=0",
            "vgg11bn size=x",
            "vgg11bn colour=red",
            "vgg11bn scheme",
            "resnet50-dsc-sgc conv=fancy",
        ] {
            let e = zoo_spec(bad).unwrap_err().to_string();
            assert!(e.contains(bad.split(' ').nth(1).unwrap()), "{bad}: {e}");
        }
        assert!(zoo_spec("no-such-model").is_err());
    }
}
