use gconv::search::measure::load;
use gconv::zoo::{ModelSpec, Scheme};
use gconv::{Device, Runtime};
use std::time::Instant;
fn main() -> gconv::Result<()> {
    let rt = Runtime::new(Device::Gpu)?;
    let size: usize = std::env::args().nth(1).unwrap().parse().unwrap();
    let schemes: Vec<String> = std::env::args().skip(2).collect();
    let mut models = Vec::new();
    for s in &schemes {
        let mut spec = ModelSpec::load("vgg13bn")?;
        spec.input = [3, size, size];
        if s != "dense" {
            spec = spec.with_scheme(&Scheme::load(s)?)?;
        }
        models.push(load(&rt, &spec, 1)?);
    }
    let x = gconv::Tensor::zeros(&[1, 3, size, size]);
    let mut t = vec![vec![]; models.len()];
    let mut lay: Vec<Vec<(String, f64)>> = vec![vec![]; models.len()];
    for r in 0..8 {
        for (i, m) in models.iter_mut().enumerate() {
            let t0 = Instant::now();
            m.gpu_model().unwrap().run_no_readback(&x)?;
            if r > 0 {
                t[i].push(t0.elapsed().as_secs_f64() * 1e3);
            }
            if r == 7 {
                let lt = m.gpu_model().unwrap().time_layers(&x)?;
                lay[i] = lt
                    .layers
                    .into_iter()
                    .map(|(n, _, s)| (n, s * 1e3))
                    .collect();
            }
        }
    }
    for (i, s) in schemes.iter().enumerate() {
        let mut v = t[i].clone();
        v.sort_by(f64::total_cmp);
        println!(
            "{s}: median {:.2} min {:.2} max {:.2}",
            v[v.len() / 2],
            v[0],
            v[v.len() - 1]
        );
        let sum: f64 = lay[i].iter().map(|x| x.1).sum();
        println!(
            "  in-model layer sum {:.2}: {}",
            sum,
            lay[i]
                .iter()
                .filter(|x| x.1 > 0.3)
                .map(|(n, s)| format!("{n}={s:.2}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    Ok(())
}
