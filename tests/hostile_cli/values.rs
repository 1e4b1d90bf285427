//! Every numeric flag of every sub-command at zero, negative, NaN, infinite, huge and
//! empty-list values: each is an error (exit 2) that names the flag or the value and says
//! what is allowed — never a panic (exit 101), an abort or an allocation failure.

use super::*;

/// `(arguments, words the error must contain)`.
type Case<'a> = (Vec<&'a str>, &'a str);

#[track_caller]
fn check(cases: &[Case]) {
    for (args, needle) in cases {
        assert_fails(args, &[needle]);
    }
}

#[test]
fn bench_values() {
    let b = |extra: &[&'static str]| [&["bench", "--device", "cpu"][..], extra].concat();
    check(&[
        // Found by the issue: a divide by zero in the sweep, exit 101.
        (
            b(&["--suite", "sweep", "--sweep-g", "0"]),
            "--sweep-g: every group count must be at least 1",
        ),
        (
            b(&["--suite", "sweep", "--sweep-g", ""]),
            "invalid value '' for '--sweep-g",
        ),
        (
            b(&["--suite", "sweep", "--sweep-g", "1,,2"]),
            "invalid value '' for '--sweep-g",
        ),
        // A sweep whose G values all fail to divide the layer used to exit 0 saying nothing.
        (
            b(&["--suite", "sweep", "--layers", "16x8:3", "--sweep-g", "3,5"]),
            "none of the group counts [3, 5] divides its 16 channels, so nothing would be timed",
        ),
        (b(&["--suite", "sweep", "--layers", ""]), "expected CxS:K"),
        (
            b(&["--suite", "sweep", "--layers", "0x8:3"]),
            "expected CxS:K",
        ),
        (
            b(&["--suite", "sweep", "--layers", "16x8:9"]),
            "expected CxS:K",
        ),
        (
            b(&["--suite", "sweep", "--layers", "99999999x99999:3"]),
            "MAX_TENSOR_ELEMENTS",
        ),
        (b(&["--repeats", "0"]), "--repeats 0: expected 1 to 1000"),
        (b(&["--repeats", "1000000"]), "gconv::bench caps it at 1000"),
        (b(&["--repeats=-1"]), "invalid value '-1' for '--repeats"),
        (b(&["--warmup", "101"]), "--warmup 101: expected 0 to 100"),
        (b(&["--warmup", "99999999999999999999999"]), "invalid value"),
        (b(&["--batch", "0"]), "--batch 0: expected 1 to 4096"),
        (b(&["--batch", "4097"]), "--batch 4097"),
        (
            b(&["--suite", "paper1", "--large-batch", "5000"]),
            "--large-batch 5000",
        ),
        (
            b(&["--suite", "paper2", "--groups", "0"]),
            "--groups: every group count must be at least 1",
        ),
        (
            b(&["--suite", "paper2", "--groups", ""]),
            "invalid value '' for '--groups",
        ),
        // Built before anything is timed: fails at once, naming the layer.
        (
            b(&["--suite", "paper2", "--groups", "99999999999"]),
            "not divisible by groups 99999999999",
        ),
        (
            b(&["--suite", "paper2", "--width=nan"]),
            "width NaN must be in (0, 16]",
        ),
        (
            b(&["--suite", "paper2", "--width=-1"]),
            "width -1 must be in (0, 16]",
        ),
        (
            b(&["--suite", "paper2", "--width=inf"]),
            "width inf must be in (0, 16]",
        ),
        (
            b(&["--suite", "paper2", "--input-size", "0"]),
            "has a zero dimension",
        ),
        (
            b(&["--suite", "paper2", "--input-size", "99999999"]),
            "MAX_TENSOR_ELEMENTS",
        ),
        (
            b(&["--suite", "paper2", "--num-classes", "0"]),
            "num_classes must be at least 1",
        ),
        (
            b(&["--suite", "paper2", "--num-classes", "99999999999"]),
            "MAX_TENSOR_ELEMENTS",
        ),
        (
            b(&["--suite", "paper1", "--schemes", ""]),
            "unknown scheme ``",
        ),
        (b(&["--suite", "paper1", "--vgg", ""]), "unknown model"),
        (
            b(&["--model", "resnet50", "--groups", "0"]),
            "--groups: every group count must be at least 1",
        ),
        (
            b(&["--model", "resnet50", "--input-size", "0"]),
            "has a zero dimension",
        ),
    ]);
}

#[test]
fn info_infer_eval_values() {
    let d = scratch("values_infer");
    let m = file(&d, "tiny.toml", TINY_TOML);
    let x = d.join("x.npy");
    gconv::io::write_npy(&x, &Tensor::zeros(&[1, 1, 8, 8])).unwrap();
    let x = x.to_string_lossy().into_owned();
    let i = |extra: &[&'static str]| [&["info", "--model", "resnet50"][..], extra].concat();
    let inf = |extra: &[&'static str]| -> Vec<&str> {
        [
            &["infer", "--device", "cpu", "--model", &m, "--input", &x][..],
            extra,
        ]
        .concat()
    };
    check(&[
        (i(&["--groups", "0"]), "groups must be at least 1"),
        (
            i(&["--groups", "99999999999"]),
            "not divisible by groups 99999999999",
        ),
        (i(&["--width=nan"]), "width NaN must be in (0, 16]"),
        (i(&["--width", "0"]), "width 0 must be in (0, 16]"),
        (i(&["--num-classes", "0"]), "num_classes must be at least 1"),
        (
            i(&["--num-classes", "99999999999999"]),
            "MAX_TENSOR_ELEMENTS",
        ),
        (
            i(&["--input", "0x0x0"]),
            "expected CxHxW with positive sizes",
        ),
        (i(&["--input", ""]), "expected CxHxW"),
        (
            i(&["--input", "3x99999999x99999999"]),
            "MAX_TENSOR_ELEMENTS",
        ),
        (
            vec!["info", "--model", "vgg13bn", "--scheme", "0,0,0,0,0"],
            "groups must be at least 1",
        ),
        (
            vec!["info", "--model", "vgg13bn", "--scheme", ""],
            "unknown scheme ``",
        ),
        (
            inf(&["--num-classes", "0"]),
            "num_classes must be at least 1",
        ),
        (inf(&["--width=-0.5"]), "width -0.5 must be in (0, 16]"),
        (inf(&["--seed=-1"]), "invalid value '-1' for '--seed"),
        (
            vec!["eval", "--checkpoint", &m, "--batch", "0"],
            "--batch must be at least 1",
        ),
    ]);
}

#[test]
fn train_and_tune_values() {
    let d = scratch("values_train");
    let data = image_folder(&d.join("data"), 2);
    let ck = d.join("ck.safetensors").to_string_lossy().into_owned();
    let t = |extra: &[&'static str]| -> Vec<&str> {
        let base = [
            "train",
            "--device",
            "cpu",
            "--data",
            &data,
            "--checkpoint",
            &ck,
        ];
        [&base[..], extra].concat()
    };
    let tune = |extra: &[&'static str]| [&["tune", "resnet50"][..], extra].concat();
    check(&[
        (
            t(&["--epochs", "0"]),
            "--batch and --epochs must be at least 1",
        ),
        (t(&["--epochs", "100001"]), "100000 epochs"),
        (
            t(&["--batch", "0"]),
            "--batch and --epochs must be at least 1",
        ),
        (t(&["--batch", "4097"]), "at most a batch of 4096"),
        (t(&["--lr=nan"]), "learning rate NaN must be finite and ≥ 0"),
        (t(&["--lr=-1"]), "learning rate -1 must be finite and ≥ 0"),
        (t(&["--lr=inf"]), "learning rate inf must be finite and ≥ 0"),
        (t(&["--width=nan"]), "width NaN must be in (0, 16]"),
        (
            t(&["--conv", "sgc", "--groups", "0"]),
            "groups must be at least 1",
        ),
        (
            t(&["--conv", "sgc", "--groups", "99999999"]),
            "MAX_TENSOR_ELEMENTS",
        ),
        (t(&["--layers", "0,0,0,0"]), "expected four counts ≥ 1"),
        (t(&["--layers", ""]), "expected four counts"),
        (t(&["--layers", "1,1,1"]), "expected four counts ≥ 1"),
        (t(&["--input", "0x0x0"]), "expected CxHxW with C = 1 or 3"),
        (t(&["--input", "1x99999x99999"]), "do not fit in memory"),
        (t(&["--limit", "0"]), "--limit 0: an epoch needs data"),
        // Used to train a whole epoch, then fail validating on an empty set (no checkpoint).
        (
            t(&["--val", "0"]),
            "no validation images: --val 0 of 4 training images",
        ),
        (
            tune(&["--batch", "0"]),
            "--batch and --repeats must be at least 1",
        ),
        (
            tune(&["--repeats", "0"]),
            "--batch and --repeats must be at least 1",
        ),
        (tune(&["--repeats", "101"]), "at most 100 rounds"),
        // Was an abort: `memory allocation of 60211199397888 bytes failed`.
        (tune(&["--batch", "99999999"]), "a batch of 4096"),
    ]);
    // On a GPU: the input at the batch is checked before it is made.
    if common::gpu().is_some() {
        let _g = common::serial();
        check(&[(
            tune(&["--batch", "4096", "--image-size", "3x4096x4096"]),
            "at batch 4096: input: shape [4096, 3, 4096, 4096]",
        )]);
    }
}
