//! After a device loss the runtime reopens the adapter its device was opened on, not the one
//! the environment would pick now: a context opened from the adapter list (as the desktop app
//! does) stays on that adapter even when `WGPU_ADAPTER_NAME` names no adapter at all.
//!
//! Its own test binary with one test, because it sets an environment variable that every
//! context opened in the process reads.

mod common;

use gconv::gpu::adapters::{find_adapter, list_adapters};
use gconv::gpu::GpuContext;
use gconv::zoo::ModelSpec;
use gconv::{LoadOptions, Runtime, Tensor};
use std::sync::Arc;

#[test]
fn a_lost_device_is_recreated_on_the_adapter_it_was_opened_on() {
    if common::gpu().is_none() {
        return;
    }
    // The adapter the default pick opens, found in the list as the app finds it.
    let name = GpuContext::new().unwrap().info.name;
    let listed = list_adapters()
        .into_iter()
        .find(|a| a.name == name)
        .expect("the default adapter is listed");
    let ctx = Arc::new(GpuContext::from_adapter(find_adapter(&listed).unwrap()).unwrap());
    let rt = Runtime::with_context(ctx.clone());
    let mut spec = ModelSpec::load("vgg11bn").unwrap();
    spec.input = [3, 32, 32];
    spec.width = 0.125;
    spec.num_classes = 10;
    let mut model = rt.load(&spec, None, &LoadOptions::default()).unwrap();
    let x = Tensor::from_fn(&[1, 3, 32, 32], |i| ((i * 13 % 29) as f32 - 14.0) / 14.0);
    let want = model.run(&x).unwrap();

    // From now on the environment's pick finds nothing.
    std::env::set_var("WGPU_ADAPTER_NAME", "no adapter has this name (gconv test)");
    assert!(GpuContext::new().is_err(), "the environment picks nothing");
    ctx.device.destroy();
    assert!(ctx.lost().is_some());

    let got = model.run(&x).unwrap();
    assert_eq!(got.data(), want.data());
    assert_eq!(rt.recoveries(), 1);
    let now = rt.gpu().unwrap();
    assert!(!Arc::ptr_eq(now, &ctx), "a new context");
    assert_eq!(now.info.name, name);
    assert_eq!(now.info.backend, ctx.info.backend);
    std::env::remove_var("WGPU_ADAPTER_NAME");
}
