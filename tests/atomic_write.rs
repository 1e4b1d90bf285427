//! `gconv::fs::write_atomic` (under every writer of gconv): two writers of one path, in
//! threads or in processes, each leave a whole file — never a mixed one — and no temporary
//! file behind. Before, both wrote `<path>.tmp`, so one could rename the other's half-written
//! file into place.

use gconv::fs::write_atomic;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Size of each file written: large enough that writes take a while.
const LEN: usize = 1 << 20;

fn scratch(test: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("atomic-write")
        .join(test);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writer `id`'s content: `LEN` bytes, all equal to `id`, plus `id + 1` trailing bytes so
/// that lengths differ too.
fn content(id: u8) -> Vec<u8> {
    vec![id; LEN + id as usize + 1]
}

/// Asserts the file at `p` is whole: one writer's content exactly.
fn assert_whole(p: &Path) {
    let b = std::fs::read(p).unwrap();
    let id = b[0];
    assert!(
        b == content(id),
        "{} is mixed or cut ({} bytes)",
        p.display(),
        b.len()
    );
}

/// Asserts `dir` holds `out.bin` only (no temporary file left).
fn assert_no_leftovers(dir: &Path) {
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec!["out.bin".to_string()],
        "leftovers in {}",
        dir.display()
    );
}

#[test]
fn threads_writing_one_path_each_leave_a_whole_file() {
    let dir = scratch("threads");
    let p = dir.join("out.bin");
    write_atomic(&p, &content(0)).unwrap();
    std::thread::scope(|s| {
        for id in 1..=4u8 {
            let p = &p;
            s.spawn(move || {
                for _ in 0..20 {
                    write_atomic(p, &content(id)).unwrap();
                }
            });
        }
        // A reader never sees a partial file meanwhile.
        s.spawn(|| {
            for _ in 0..200 {
                assert_whole(&p);
            }
        });
    });
    assert_whole(&p);
    assert_no_leftovers(&dir);
}

/// The writer half of the two-process test (run by it, with `GCONV_ATOMIC_CHILD` set).
#[test]
#[ignore = "run as a child process by two_processes_writing_one_path_each_leave_a_whole_file"]
fn child_writer() {
    // Run by hand (`--ignored`), it writes a scratch file of its own.
    let spec = std::env::var("GCONV_ATOMIC_CHILD")
        .unwrap_or_else(|_| format!("{}:9", scratch("child").join("out.bin").display()));
    let (path, id) = spec.rsplit_once(':').unwrap();
    let id: u8 = id.parse().unwrap();
    for _ in 0..30 {
        write_atomic(path, &content(id)).unwrap();
    }
    assert_whole(Path::new(path));
}

#[test]
fn two_processes_writing_one_path_each_leave_a_whole_file() {
    let dir = scratch("processes");
    let p = dir.join("out.bin");
    write_atomic(&p, &content(0)).unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = [1u8, 2]
        .iter()
        .map(|id| {
            Command::new(&exe)
                .args(["--exact", "child_writer", "--ignored", "--test-threads=1"])
                .env("GCONV_ATOMIC_CHILD", format!("{}:{id}", p.display()))
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    // Read while they write: always one writer's whole file.
    let mut reads = 0;
    let mut children = children;
    while children.iter_mut().any(|c| c.try_wait().unwrap().is_none()) {
        assert_whole(&p);
        reads += 1;
    }
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a writer failed");
    }
    assert!(reads > 0);
    assert_whole(&p);
    assert_ne!(std::fs::read(&p).unwrap()[0], 0, "no child wrote");
    assert_no_leftovers(&dir);
}
