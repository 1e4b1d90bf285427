//! Files several gconv processes update: the tuning cache is read, merged and written under
//! an advisory lock (`gconv::fs::update_locked`), so concurrent writers lose no entry and a
//! writer killed by SIGKILL in the middle leaves a valid file and a free lock; the lock
//! itself (`gconv::fs::FileLock`) excludes other holders and dies with its process. Before,
//! two `gconv tune` runs at once kept only the last writer's entries.

mod common;

use gconv::fs::FileLock;
use gconv::gpu::tune::{CachedChoice, TuneCache};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn scratch(test: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("shared-files")
        .join(test);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn entry(kernel: &str) -> CachedChoice {
    CachedChoice {
        kernel: kernel.into(),
        default: "conv_fast".into(),
        speedup: 1.25,
        times_ms: vec![("conv_fast".into(), 2.5), (kernel.into(), 2.0)],
    }
}

/// Entries of `adapter` in the cache at `p`, read as a new process would.
fn count(p: &Path, adapter: &str) -> usize {
    TuneCache::load(p).len_for(adapter)
}

#[test]
fn two_caches_loaded_before_either_saves_keep_both_entries() {
    let p = scratch("interleaved").join("kernels.json");
    // Two processes: both load, both tune, both save (the lost update of the issue).
    let mut a = TuneCache::load(&p);
    let mut b = TuneCache::load(&p);
    a.insert("gpu", "layer a", entry("conv_co8"));
    b.insert("gpu", "layer b", entry("conv_tiled"));
    a.save().unwrap();
    b.save().unwrap();
    let back = TuneCache::load(&p);
    assert_eq!(back.get("gpu", "layer a"), Some(&entry("conv_co8")));
    assert_eq!(back.get("gpu", "layer b"), Some(&entry("conv_tiled")));
    // After saving, a cache holds what the others saved too.
    assert_eq!(b.get("gpu", "layer a"), Some(&entry("conv_co8")));
    // A re-tuned entry replaces the one on disk; entries it did not touch stay.
    a.insert("gpu", "layer b", entry("conv_fast"));
    a.save().unwrap();
    let back = TuneCache::load(&p);
    assert_eq!(back.get("gpu", "layer b"), Some(&entry("conv_fast")));
    assert_eq!(back.len_for("gpu"), 2);
}

/// The writer half of the multi-process tests (run by them with `GCONV_SHARED_CHILD` =
/// `path:id:rounds`; `rounds` 0 = until killed).
#[test]
#[ignore = "run as a child process by the tests of this file"]
fn child_cache_writer() {
    let spec = std::env::var("GCONV_SHARED_CHILD").unwrap_or_else(|_| {
        let p = scratch("child").join("kernels.json");
        format!("{}:0:3", p.display())
    });
    let mut it = spec.rsplitn(3, ':');
    let rounds: usize = it.next().unwrap().parse().unwrap();
    let id: usize = it.next().unwrap().parse().unwrap();
    let path = it.next().unwrap();
    let mut k = 0;
    while rounds == 0 || k < rounds {
        // Load, tune one layer, save: what one `gconv tune` of one layer does.
        let mut c = TuneCache::load(path);
        c.insert("gpu", &format!("writer {id} layer {k}"), entry("conv_co8"));
        if rounds == 0 {
            // Big entries, so that a kill often lands in the middle of a write.
            for j in 0..200 {
                c.insert(
                    "padding",
                    &format!("{id} {k} {j} {}", "x".repeat(200)),
                    entry("e"),
                );
            }
        }
        c.save().unwrap();
        k += 1;
    }
}

fn child(p: &Path, id: usize, rounds: usize) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_cache_writer",
            "--ignored",
            "--test-threads=1",
        ])
        .env(
            "GCONV_SHARED_CHILD",
            format!("{}:{id}:{rounds}", p.display()),
        )
        .env("RUST_LOG", "off")
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn four_processes_saving_one_cache_lose_no_entry() {
    let dir = scratch("processes");
    let p = dir.join("kernels.json");
    let (writers, rounds) = (4, 15);
    let children: Vec<_> = (0..writers).map(|id| child(&p, id, rounds)).collect();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a writer failed");
    }
    assert_eq!(count(&p, "gpu"), writers * rounds, "entries were lost");
    // Only the cache and its lock file: no temporary file left.
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["kernels.json", "kernels.json.lock"]);
}

#[cfg(unix)]
#[test]
fn a_writer_killed_mid_save_leaves_a_valid_cache_and_a_free_lock() {
    let dir = scratch("sigkill");
    let p = dir.join("kernels.json");
    let mut saved_before = 0;
    for round in 0..5 {
        let mut c = child(&p, 100 + round, 0);
        // Let it write a few times, then SIGKILL it wherever it is.
        while count(&p, "gpu") < saved_before + 2 {
            assert!(c.try_wait().unwrap().is_none(), "the writer died by itself");
        }
        std::thread::sleep(std::time::Duration::from_millis(7 * round as u64));
        c.kill().unwrap();
        c.wait().unwrap();
        // The file parses (every entry it ever saved is either there or was never saved)...
        let text = std::fs::read(&p).unwrap();
        gconv::gpu::tune::cache::parse_cache_file(&text).expect("a whole cache file");
        let now = count(&p, "gpu");
        assert!(
            now >= saved_before + 2,
            "{now} entries after {saved_before}"
        );
        saved_before = now;
        // ... and the lock died with its holder: a save goes through at once.
        assert!(
            FileLock::try_exclusive(&p).unwrap().is_some(),
            "lock still held"
        );
        let mut after = TuneCache::load(&p);
        after.insert("gpu", &format!("after kill {round}"), entry("conv_tiled"));
        after.save().unwrap();
        saved_before += 1;
        assert_eq!(count(&p, "gpu"), saved_before);
    }
}

#[test]
fn a_file_lock_excludes_other_holders_until_dropped() {
    let p = scratch("lock").join("checkpoint.safetensors");
    let held = FileLock::try_exclusive(&p).unwrap().expect("free at first");
    assert!(held.path().ends_with("checkpoint.safetensors.lock"));
    assert!(FileLock::try_exclusive(&p).unwrap().is_none(), "held");
    // A waiting holder gets it once the first lets go.
    let waiter = std::thread::spawn({
        let p = p.clone();
        move || FileLock::exclusive(&p).map(drop)
    });
    drop(held);
    waiter.join().unwrap().unwrap();
    assert!(FileLock::try_exclusive(&p).unwrap().is_some());
}

/// `gconv tune` of a one-stage VGG whose conv has `channels` filters, into `cache`.
#[cfg(feature = "app")]
fn tune(dir: &Path, channels: usize) -> std::process::Child {
    let model = dir.join(format!("vgg{channels}.toml"));
    std::fs::write(
        &model,
        format!(
            "name = \"v{channels}\"\ndescription = \"t\"\nnum_classes = 2\ninput = [1, 8, 8]\n\
             [arch]\nfamily = \"vgg\"\nstages = [[{channels}], [{channels}]]\nclassifier = [8]\ndropout = 0.0\n"
        ),
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_gconv"))
        .arg("tune")
        .arg(&model)
        .args(["--repeats", "1", "--json"])
        .env("GCONV_CACHE_DIR", dir)
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

#[cfg(feature = "app")]
#[test]
fn two_gconv_tune_runs_at_once_store_what_they_store_one_after_the_other() {
    let _g = common::serial();
    let Some(ctx) = common::gpu() else { return };
    let adapter = gconv::gpu::tune::adapter_key(&ctx.info);
    let (alone, both) = (scratch("tune-alone"), scratch("tune-both"));
    for c in [4, 6] {
        assert!(tune(&alone, c).wait().unwrap().success());
    }
    let want = count(&alone.join("kernels.json"), &adapter);
    assert!(want >= 4, "{want} entries");
    let runs = [tune(&both, 4), tune(&both, 6)];
    for mut r in runs {
        assert!(r.wait().unwrap().success());
    }
    assert_eq!(count(&both.join("kernels.json"), &adapter), want);
}
