//! PyTorch's default initialization, reproducible from a seed.

use crate::ParamInfo;
use rand_core::{RngCore, SeedableRng};
use rand_pcg::Pcg64Mcg;

/// Fills `params` as PyTorch initializes `Conv2d` and `Linear` by default: every weight and
/// bias uniform in `±1/sqrt(fan_in)`, where `fan_in` is the product of the weight's shape after
/// its first axis (`in*kh*kw` or `in`). A bias uses the fan-in of the weight before it.
///
/// The stream comes from PCG-64 (MCG variant) seeded with `seed`, so the same seed always gives
/// the same parameters. It is not torch's stream: to reproduce a PyTorch network, load its
/// weights.
///
/// # Panics
///
/// If `params` is shorter than the layout says.
///
/// ```
/// use cnn_runtime::{init::pytorch_default, ParamInfo};
/// const LAYOUT: &[ParamInfo] = &[
///     ParamInfo { name: "fc.weight", shape: &[3, 4], offset: 0 },
///     ParamInfo { name: "fc.bias", shape: &[3], offset: 12 },
/// ];
/// let mut p = [0.0f32; 15];
/// pytorch_default(&mut p, LAYOUT, 7);
/// assert!(p.iter().all(|x| x.abs() <= 0.5)); // 1/sqrt(4)
/// ```
pub fn pytorch_default(params: &mut [f32], layout: &[ParamInfo], seed: u64) {
    let mut rng = Pcg64Mcg::seed_from_u64(seed);
    let mut fan_in = 1;
    for info in layout {
        if info.shape.len() > 1 {
            fan_in = info.shape[1..].iter().product::<usize>().max(1);
        }
        let bound = 1.0 / crate::math::sqrt(fan_in as f32);
        for p in &mut params[info.range()] {
            // 24 random bits give every float in [0, 1) on an even grid.
            let unit = (rng.next_u32() >> 8) as f32 * (1.0 / (1u32 << 24) as f32);
            *p = (2.0 * unit - 1.0) * bound;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAYOUT: &[ParamInfo] = &[
        ParamInfo {
            name: "conv.weight",
            shape: &[4, 2, 3, 3],
            offset: 0,
        },
        ParamInfo {
            name: "conv.bias",
            shape: &[4],
            offset: 72,
        },
        ParamInfo {
            name: "fc.weight",
            shape: &[2, 100],
            offset: 76,
        },
    ];

    #[test]
    fn bounds_follow_fan_in_and_seed_is_reproducible() {
        let mut a = vec![0.0; 276];
        let mut b = vec![0.0; 276];
        pytorch_default(&mut a, LAYOUT, 1);
        pytorch_default(&mut b, LAYOUT, 1);
        assert_eq!(a, b);
        let conv_bound = 1.0 / 18f32.sqrt();
        assert!(a[..76].iter().all(|x| x.abs() <= conv_bound));
        // Not degenerate: the conv values spread over most of their range.
        assert!(a[..72].iter().cloned().fold(0.0, f32::max) > 0.8 * conv_bound);
        assert!(a[76..].iter().all(|x| x.abs() <= 0.1));
        pytorch_default(&mut b, LAYOUT, 2);
        assert_ne!(a, b);
    }
}
