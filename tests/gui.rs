//! `gconv gui --suite … --screenshot PATH` in a real window: runs a tiny sweep, saves a PNG
//! of the window and exits 0; the PNG is a drawn picture of the window's size. Needs a
//! display: `DISPLAY`, or `xvfb-run` (Debian package `xvfb`, installed by `.ci/run`); with
//! neither it is skipped loudly, and fails when `GCONV_REQUIRE_GPU=1` (CI).

#![cfg(feature = "gui")]

use std::path::PathBuf;
use std::process::Command;

fn has(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd} >/dev/null")])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn screenshot_mode_runs_a_suite_saves_the_window_and_exits() {
    let display = std::env::var_os("DISPLAY").is_some();
    if !display && !has("xvfb-run") {
        assert!(
            std::env::var("GCONV_REQUIRE_GPU").is_err(),
            "GCONV_REQUIRE_GPU is set but there is no display and no xvfb-run"
        );
        eprintln!("SKIPPING GUI TEST: no DISPLAY and no xvfb-run (apt-get install xvfb)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("gconv-gui-shot-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let png: PathBuf = dir.join("window.png");
    let gconv = env!("CARGO_BIN_EXE_gconv");
    let args = [
        "gui",
        "--suite",
        "sweep",
        "--layers",
        "16x8:3",
        "--sweep-g",
        "1,2",
        "--warmup",
        "0",
        "--repeats",
        "1",
        "--no-tune",
        "--window-size",
        "1000x700",
        "--screenshot",
    ];
    let mut cmd = if display {
        Command::new(gconv)
    } else {
        let mut c = Command::new("xvfb-run");
        c.args(["-a", "-s", "-screen 0 1600x1000x24", gconv]);
        c
    };
    let out = cmd.args(args).arg(&png).output().unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("wrote"), "{text}");
    let img = image::open(&png).unwrap().to_rgb8();
    // The window's size in pixels: 1000×700 at the display's scale (1 under Xvfb).
    let (w, h) = img.dimensions();
    assert!(w >= 1000 && h >= 700 && w * 700 == h * 1000, "{w}×{h}");
    let mut colours: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    colours.sort_unstable();
    colours.dedup();
    assert!(
        colours.len() > 16,
        "{} colours: not a drawn window",
        colours.len()
    );
    std::fs::remove_dir_all(&dir).ok();
}
