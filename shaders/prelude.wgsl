// gconv's WGSL prelude, prepended to every shader by its launcher declaration
// (`gpu::launch::shader!`): what every kernel repeats.

// The element type of activations in storage: f32 here, f16 in a shader's half-activation
// twin (`gpu::twin::halve`, `--precision f16` where the adapter has `SHADER_F16`). Kernels
// compute in f32: a kernel that stores activations as `act_t` converts at every load
// (`f32(x[i])`, `vec4<f32>(x4[i])`) and store (`act_t(v)`), identities here.
alias act_t = f32;
alias act4_t = vec4<f32>;

// The builtins every entry point takes.
struct Ids {
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
}

// The linear id of a workgroup in a grid folded into 2-D above 65 535 workgroups
// (`gpu::launch::fold_workgroups`); kernels skip ids past their real count.
fn linear_wg(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wg.x + wg.y * nwg.x;
}

// The flat index of invocation `id` in a folded grid of `size`-wide workgroups.
fn flat(id: Ids, size: u32) -> u32 {
    return linear_wg(id.wg, id.nwg) * size + id.li;
}

// What a gradient kernel stores: v, or old + v when it accumulates into a gradient shared by
// several uses (`accumulate` != 0).
fn accumulated(old: f32, v: f32, accumulate: u32) -> f32 {
    return select(v, old + v, accumulate != 0u);
}

// The activations (`act(x, e)`, `act4(x, e)` for epilogues, `act_grad_x` / `act_grad_y` for
// their backward) are generated from the table in src/ops/activation/mod.rs and follow the
// shared structs (gpu::prelude::activations_wgsl).
