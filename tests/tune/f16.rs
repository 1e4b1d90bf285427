//! Tuning for models stored as halves: f16-timed entries, kept apart from the f32 ones, and
//! the rules an f16 model follows when only f32-timed entries exist.

use super::*;

/// An f16 model on a device with cooperative matrices keeps `conv_coop` over a cached
/// (f32-timed) conv kernel; an f32 model takes the cached kernel. Played on lavapipe by a
/// context claiming 16 × 16 matrices (the choice only, nothing runs).
#[test]
fn f16_weights_keep_the_cooperative_matrix_tier_over_f32_tuned_entries() {
    let Some(_) = common::gpu() else { return };
    let _g = common::serial();
    let _class = common::force_class("discrete");
    let mut ctx = gconv::gpu::GpuContext::new().unwrap();
    ctx.cooperative_matrix = Some(16);
    let dir = TempDir::new("coop");
    let g = tiny();
    let mut cache = TuneCache::empty(dir.path("kernels.json"));
    let key = adapter_key(&ctx.info);
    let layers = tune::tunable_layers(&g, 1);
    cache.insert(&key, &layers[0].key, entry("conv_igemm"));
    let at = |half: bool| {
        let p = if half { Precision::F16 } else { Precision::F32 };
        tune::choice_at(&cache, &ctx, (&g, 1), (false, p))
    };
    assert_eq!(
        at(false).conv_of("conv").map(|k| k.name()).as_deref(),
        Some("conv_igemm")
    );
    assert_eq!(
        at(true).conv_of("conv"),
        None,
        "conv_coop stays the default"
    );
}

/// `gconv tune --precision f16` (`TuneOptions::precision`) times the layers as an f16 model
/// runs them and caches them apart: an f32 model finds none of those entries, an f16 model
/// takes every one (and a non-default one is what runs), and the tuned f16 model matches the
/// CPU reference within the f16 tolerance. Under the discrete class's lists on lavapipe.
#[test]
fn f16_tuning_is_cached_apart_and_drives_f16_models() {
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    let _class = common::force_class("discrete");
    let dir = TempDir::new("f16");
    let g = tiny();
    let w = Weights::init(&g, 5);
    let x = input(&g, 1);
    let mut cache = TuneCache::empty(dir.path("kernels.json"));
    let opts = TuneOptions {
        batch: 1,
        repeats: 1,
        precision: Precision::F16,
        save_each_layer: true,
        ..Default::default()
    };
    // The file holds each layer as soon as it is timed (a run cut short keeps them): when
    // the second layer starts, the first is on disk.
    let file = dir.path("kernels.json");
    let mut on_disk = Vec::new();
    let rows = tune::tune_graph(ctx, &g, &mut cache, &opts, &mut |_, n, _| {
        on_disk.push((n, TuneCache::load(&file).len_for(&adapter_key(&ctx.info))));
    })
    .unwrap();
    assert_eq!(on_disk[..3], [(0, 0), (1, 1), (2, 2)], "{on_disk:?}");
    let key = adapter_key(&ctx.info);
    let f32_layers = tune::tunable_layers(&g, 1);
    assert_eq!(rows.len(), f32_layers.len());
    for (r, l) in rows.iter().zip(&f32_layers) {
        assert_eq!(r.key, format!("{} f16", l.key));
        assert_eq!(r.key, tune::key_in(&l.key, Precision::F16));
        assert!(cache.get(&key, &r.key).is_some(), "{}", r.key);
        assert!(cache.get(&key, &l.key).is_none(), "f32 entry {}", l.key);
        assert!(r.candidates.iter().any(|c| c.kernel == r.chosen));
    }
    // The fully connected layer's candidates all read halves (an f16 model runs no other).
    let fc = rows.iter().find(|r| r.node == "fc").unwrap();
    for c in &fc.candidates {
        let k = choice::linear_named(&c.kernel).expect(&c.kernel);
        assert!(k.family.reads_f16(), "{} reads f32 weights", c.kernel);
    }
    // The default conv of an f16 model on this class reads halves and is timed first.
    let conv = rows.iter().find(|r| r.node == "conv").unwrap();
    assert_eq!(conv.default, "conv_igemm");
    // Timed as an f16 model runs them: the default and the fully connected candidates on
    // weights stored as halves.
    assert_eq!(conv.candidates[0].half_weights, Some(true));
    assert!(fc.candidates.iter().all(|c| c.half_weights == Some(true)));
    assert!(tune::choice_from(&cache, ctx, &g, 1, false).is_empty());
    let at = |c: &TuneCache| tune::choice_at(c, ctx, (&g, 1), (false, Precision::F16));
    assert_eq!(at(&cache).len(), rows.len());
    // A non-default f16 entry is what an f16 model runs, with the reference's output.
    cache.insert(&key, &rows[0].key, entry("conv_wgmem"));
    let choice = at(&cache).with_precision(Precision::F16);
    let mut m = GpuModel::with_choice(ctx.clone(), g.clone(), &w, choice).unwrap();
    let k = m.kernels(1).unwrap();
    assert_eq!(k.iter().find(|(l, _)| l == "conv").unwrap().1, "conv_wgmem");
    let want = gconv::cpu::run_graph(&g, &w, &x).unwrap();
    assert_close(
        "f16 tuned",
        m.run(&x).unwrap().data(),
        want.data(),
        Tolerance::F16_MODEL,
    );
}

/// On a device with cooperative matrices an f16-timed entry beats the rule that keeps
/// `conv_coop` over f32-timed ones (it was timed against `conv_coop`), and the f16 candidates
/// of a conv are `conv_coop` first, then its other tiles. The choice only, nothing runs.
#[test]
fn f16_entries_decide_over_the_cooperative_matrix_default() {
    let Some(_) = common::gpu() else { return };
    let _g = common::serial();
    let _class = common::force_class("discrete");
    let mut ctx = gconv::gpu::GpuContext::new().unwrap();
    ctx.cooperative_matrix = Some(16);
    let dir = TempDir::new("coop16");
    let g = tiny();
    let mut cache = TuneCache::empty(dir.path("kernels.json"));
    let key = adapter_key(&ctx.info);
    let half = tune::tunable_layers_in(&g, 1, Precision::F16);
    let at = |c: &TuneCache| tune::choice_at(c, &ctx, (&g, 1), (false, Precision::F16));
    cache.insert(
        &key,
        &tune::tunable_layers(&g, 1)[0].key,
        entry("conv_wgmem"),
    );
    assert_eq!(at(&cache).conv_of("conv"), None, "conv_coop kept");
    cache.insert(&key, &half[0].key, entry("conv_igemm"));
    assert_eq!(
        at(&cache).conv_of("conv").map(|k| k.name()).as_deref(),
        Some("conv_igemm")
    );
    let a = gconv::gpu::choice::Adapter::of(&ctx);
    let names: Vec<String> = tune::candidates(&half[0].problem, &a, Precision::F16)
        .into_iter()
        .map(|k| k.name())
        .collect();
    assert_eq!(names[0], "conv_coop", "{names:?}");
    assert!(
        names.iter().any(|n| n.starts_with("conv_coop[16_coop_")),
        "{names:?}"
    );
    assert!(names.iter().all(|n| !n.contains("[8_coop_")), "{names:?}");
    // Timed in f32 the same layer never offers the tier.
    let f32_names: Vec<String> =
        tune::candidates(&tune::tunable_layers(&g, 1)[0].problem, &a, Precision::F32)
            .into_iter()
            .map(|k| k.name())
            .collect();
    assert!(
        f32_names.iter().all(|n| !n.starts_with("conv_coop")),
        "{f32_names:?}"
    );
}

/// Without cooperative matrices an f16 model follows an f32-timed entry only where its kernel
/// stores halves too: one naming a kernel that reads f32 (`conv_wgmem`, `gemv`) would keep
/// that layer f32 against the model's precision, so the half-reading default stays; an f32
/// model follows every entry. Under the discrete class's lists on lavapipe (the choice only).
#[test]
fn f16_models_follow_f32_timed_entries_only_to_half_reading_kernels() {
    let Some(ctx) = common::gpu() else { return };
    let _g = common::serial();
    let _class = common::force_class("discrete");
    assert_eq!(ctx.cooperative_matrix, None, "lavapipe has no matrices");
    let dir = TempDir::new("f16-f32-entries");
    let g = tiny();
    let key = adapter_key(&ctx.info);
    let layers = tune::tunable_layers(&g, 1);
    let conv = layers.iter().find(|l| l.node == "conv").unwrap();
    let fc = layers.iter().find(|l| l.node == "fc").unwrap();
    let at = |c: &TuneCache, p: Precision| tune::choice_at(c, ctx, (&g, 1), (false, p));
    let mut cache = TuneCache::empty(dir.path("kernels.json"));
    cache.insert(&key, &conv.key, entry("conv_wgmem"));
    cache.insert(&key, &fc.key, entry("gemv"));
    let f32_choice = at(&cache, Precision::F32);
    assert_eq!(f32_choice.conv_of("conv").unwrap().name(), "conv_wgmem");
    assert_eq!(f32_choice.linear_of("fc").unwrap().name(), "gemv");
    let f16_choice = at(&cache, Precision::F16);
    assert_eq!(
        f16_choice.conv_of("conv"),
        None,
        "conv_igemm (halves) stays"
    );
    assert_eq!(f16_choice.linear_of("fc"), None, "gemv_wide (halves) stays");
    // An f32-timed entry naming a half-reading kernel is followed.
    let igemm = "conv_igemm[igemm_m64n64]";
    assert!(
        choice::conv_named(igemm).is_some(),
        "{igemm} names a kernel"
    );
    cache.insert(&key, &conv.key, entry(igemm));
    let f16_choice = at(&cache, Precision::F16);
    assert_eq!(f16_choice.conv_of("conv").unwrap().name(), igemm);
    // The model loaded with that choice stores both layers as halves.
    let w = Weights::init(&g, 3);
    let choice = f16_choice.with_precision(Precision::F16);
    let m = GpuModel::with_choice(ctx.clone(), g.clone(), &w, choice).unwrap();
    let halves = m.half_weight_layers();
    assert!(
        halves.iter().any(|l| l == "conv") && halves.iter().any(|l| l == "fc"),
        "{halves:?}"
    );
}
