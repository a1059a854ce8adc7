//! The few `f32` functions the kernels need that `core` lacks: the standard library's with
//! `std`, `libm`'s without (`sqrt` is exactly rounded either way; `exp`, `ln` and
//! `tanh` are not guaranteed to give the same last bit).

#[cfg(feature = "std")]
mod imp {
    #[inline]
    pub fn exp(x: f32) -> f32 {
        x.exp()
    }
    #[inline]
    pub fn ln(x: f32) -> f32 {
        x.ln()
    }
    #[inline]
    pub fn tanh(x: f32) -> f32 {
        x.tanh()
    }
    #[inline]
    pub fn sqrt(x: f32) -> f32 {
        x.sqrt()
    }
}

#[cfg(not(feature = "std"))]
mod imp {
    #[inline]
    pub fn exp(x: f32) -> f32 {
        libm::expf(x)
    }
    #[inline]
    pub fn ln(x: f32) -> f32 {
        libm::logf(x)
    }
    #[inline]
    pub fn tanh(x: f32) -> f32 {
        libm::tanhf(x)
    }
    #[inline]
    pub fn sqrt(x: f32) -> f32 {
        libm::sqrtf(x)
    }
}

#[allow(unused_imports)]
pub use imp::*;
