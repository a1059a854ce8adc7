//! Which instruction set the kernels run on: decided once per process from what the CPU has,
//! or forced with the `CNN_KERNELS` environment variable.

/// A path through the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// Plain Rust, for any CPU.
    Portable,
    /// 256-bit AVX2 with FMA.
    Avx2,
    /// 512-bit AVX-512F (with AVX2 and FMA, which every AVX-512 CPU has; the kernels not
    /// rewritten for 512 bits run their AVX2 version).
    Avx512,
}

impl Path {
    /// Every path, slowest first.
    const ALL: [Path; 3] = [Path::Portable, Path::Avx2, Path::Avx512];

    /// The name `CNN_KERNELS` takes.
    pub const fn name(self) -> &'static str {
        match self {
            Path::Portable => "portable",
            Path::Avx2 => "avx2",
            Path::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run the path.
    fn runs_here(self) -> bool {
        match self {
            Path::Portable => true,
            Path::Avx2 => has_avx2(),
            Path::Avx512 => has_avx2() && has_avx512(),
        }
    }
}

/// A path this CPU can run. Only [`Isa::current`] and [`Isa::supported`] make values other
/// than [`Isa::PORTABLE`], after checking the CPU: the kernels' dispatch relies on it when it
/// calls a path's `unsafe` functions, whose one contract is that the CPU has the instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Isa(Path);

impl Isa {
    /// The portable path, which every CPU runs.
    #[cfg(test)]
    pub const PORTABLE: Isa = Isa(Path::Portable);

    /// The path of this path.
    #[inline(always)]
    pub fn path(self) -> Path {
        self.0
    }

    /// The path the kernels take: the widest this CPU has, or the one `CNN_KERNELS` names
    /// (`portable`, `avx2` or `avx512`). Decided on the first call; later calls are one load.
    ///
    /// # Panics
    ///
    /// If `CNN_KERNELS` names an unknown path or one this CPU cannot run; the message lists
    /// those it can.
    #[inline]
    pub fn current() -> Isa {
        #[cfg(test)]
        if let Some(isa) = FORCED.with(|f| f.get()) {
            return isa;
        }
        current_uncached()
    }

    /// Every path this CPU can run, slowest first.
    #[cfg(test)]
    pub fn supported() -> impl Iterator<Item = Isa> {
        Path::ALL.into_iter().filter(|p| p.runs_here()).map(Isa)
    }
}

#[cfg(feature = "std")]
#[inline]
fn current_uncached() -> Isa {
    static CHOSEN: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
    *CHOSEN.get_or_init(|| match std::env::var("CNN_KERNELS") {
        Ok(name) => Isa(forced(&name)),
        Err(_) => Isa(widest()),
    })
}

/// Without std there is neither an environment nor run-time detection: the widest path the
/// build's target features allow.
#[cfg(not(feature = "std"))]
#[inline]
fn current_uncached() -> Isa {
    Isa(widest())
}

fn widest() -> Path {
    Path::ALL
        .into_iter()
        .rev()
        .find(|p| p.runs_here())
        .unwrap_or(Path::Portable)
}

#[cfg(feature = "std")]
fn forced(name: &str) -> Path {
    let here = || {
        Path::ALL
            .into_iter()
            .filter(|p| p.runs_here())
            .map(Path::name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match Path::ALL.into_iter().find(|p| p.name() == name.trim()) {
        Some(p) if p.runs_here() => p,
        Some(p) => panic!(
            "CNN_KERNELS={name}: this CPU cannot run the {} kernels; it runs {}",
            p.name(),
            here()
        ),
        None => panic!("CNN_KERNELS={name}: unknown kernels; expected one of {}", here()),
    }
}

#[cfg(all(target_arch = "x86_64", feature = "std"))]
fn has_avx2() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

#[cfg(all(target_arch = "x86_64", feature = "std"))]
fn has_avx512() -> bool {
    std::is_x86_feature_detected!("avx512f")
}

#[cfg(all(target_arch = "x86_64", not(feature = "std")))]
fn has_avx2() -> bool {
    cfg!(all(target_feature = "avx2", target_feature = "fma"))
}

#[cfg(all(target_arch = "x86_64", not(feature = "std")))]
fn has_avx512() -> bool {
    cfg!(target_feature = "avx512f")
}

#[cfg(not(target_arch = "x86_64"))]
fn has_avx2() -> bool {
    false
}

#[cfg(not(target_arch = "x86_64"))]
fn has_avx512() -> bool {
    false
}

#[cfg(test)]
std::thread_local! {
    static FORCED: core::cell::Cell<Option<Isa>> = const { core::cell::Cell::new(None) };
}

/// Runs `f` with this thread's kernels on `isa`: how the tests cover every path the CPU has.
#[cfg(test)]
pub fn with<T>(isa: Isa, f: impl FnOnce() -> T) -> T {
    let before = FORCED.with(|c| c.replace(Some(isa)));
    let out = f();
    FORCED.with(|c| c.set(before));
    out
}

/// Runs `check` once per path this CPU has, with that path's name.
#[cfg(test)]
pub fn on_every_path(check: impl Fn(&str)) {
    for isa in Isa::supported() {
        with(isa, || check(isa.path().name()));
    }
}

/// The name of the kernels this process runs (`"portable"`, `"avx2"` or `"avx512"`): the
/// widest this CPU has, unless the `CNN_KERNELS` environment variable names another.
///
/// # Panics
///
/// If `CNN_KERNELS` names an unknown path or one this CPU cannot run (decided on the first call).
///
/// ```
/// let name = cnn_runtime::kernels();
/// assert!(["portable", "avx2", "avx512"].contains(&name));
/// ```
pub fn kernels() -> &'static str {
    Isa::current().path().name()
}
