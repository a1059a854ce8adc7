//! The operands of the kernels: matrices at any strides, vectors gathered from one slice, how
//! a result is stored, and the checks every entry point makes before a kernel reads them.

/// A matrix operand: `data[i * rs + j * cs]` is element `(i, j)`.
#[derive(Clone, Copy, Debug)]
pub struct Mat<'a> {
    /// The elements.
    pub data: &'a [f32],
    /// Distance between rows.
    pub rs: usize,
    /// Distance between columns.
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// A row-major matrix with `cols` columns (or any row stride `cols`).
    pub const fn rows(data: &'a [f32], cols: usize) -> Self {
        Mat { data, rs: cols, cs: 1 }
    }

    /// The transpose of a row-major matrix with `cols` columns.
    pub const fn transposed(data: &'a [f32], cols: usize) -> Self {
        Mat { data, rs: 1, cs: cols }
    }

    /// Whether elements `(0..m, 0..n)` lie inside `data`.
    pub(super) fn holds(&self, m: usize, n: usize) -> bool {
        m == 0 || n == 0 || (m - 1) * self.rs + (n - 1) * self.cs < self.data.len()
    }
}

/// How the elements of a gathered vector lie from its start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spread {
    /// One after another.
    Contiguous,
    /// As the pixels of an image `width` wide (`width > 0`) whose rows are `stride` apart:
    /// element `e` at `(e / width) * stride + e % width`.
    Image {
        /// Pixels in a row.
        width: usize,
        /// Distance between the starts of rows.
        stride: usize,
    },
}

impl Spread {
    /// `(width, stride)` of the whole rows that a vector of `n` elements makes: one row of `n`
    /// when contiguous.
    #[inline]
    pub(super) fn rows(self, n: usize) -> (usize, usize) {
        match self {
            Spread::Contiguous => (n.max(1), 0),
            Spread::Image { width, stride } => (width.min(n).max(1), stride),
        }
    }

    /// Where the last of `len` elements lies, plus one: the elements a vector reaches.
    fn reach(self, len: usize) -> Option<usize> {
        match (self, len.checked_sub(1)) {
            (_, None) => Some(0),
            (Spread::Contiguous, Some(_)) => Some(len),
            (Spread::Image { width, stride }, Some(last)) => (last / width)
                .checked_mul(stride)
                .and_then(|r| r.checked_add(last % width + 1)),
        }
    }
}

/// A matrix whose rows are gathered from one slice: row `p` is `data[offsets[p]..]`, its
/// elements spread as `spread` says. The kernel taps of a stride-1 convolution are such rows,
/// each a shifted view of one padded image, so the convolution needs no unfolded copy of its
/// input.
#[derive(Clone, Copy, Debug)]
pub struct Gathered<'a> {
    /// The elements.
    pub data: &'a [f32],
    /// Where each gathered vector starts in `data`.
    pub offsets: &'a [usize],
    /// How a vector's elements lie from its start.
    pub spread: Spread,
}

impl<'a> Gathered<'a> {
    /// Contiguous vectors starting at `offsets` in `data`.
    pub const fn new(data: &'a [f32], offsets: &'a [usize]) -> Self {
        Gathered {
            data,
            offsets,
            spread: Spread::Contiguous,
        }
    }

    /// The same vectors read as images `width` wide (`width > 0`) whose rows are `stride`
    /// apart: the output pixels of a convolution on a padded image, whose rows are wider.
    pub const fn image(self, width: usize, stride: usize) -> Self {
        assert!(width > 0, "Gathered::image: the width must not be zero");
        Gathered {
            spread: Spread::Image { width, stride },
            ..self
        }
    }

    /// Whether `count` vectors of `len` elements lie inside `data`.
    pub(super) fn holds(&self, count: usize, len: usize) -> bool {
        self.offsets.len() >= count
            && self.spread.reach(len).is_some_and(|reach| {
                reach == 0
                    || self.offsets[..count]
                        .iter()
                        .all(|&o| o.checked_add(reach).is_some_and(|end| end <= self.data.len()))
            })
    }

    /// Whether vectors of `len` elements are whole image rows: one row, or several of `width`.
    pub(super) fn whole_rows(&self, len: usize) -> bool {
        match self.spread {
            Spread::Contiguous => true,
            Spread::Image { width, .. } => width >= len || len.is_multiple_of(width),
        }
    }

    /// Whether each vector's elements are contiguous for `len` of them.
    pub(super) fn contiguous(&self, len: usize) -> bool {
        match self.spread {
            Spread::Contiguous => true,
            Spread::Image { width, .. } => width >= len,
        }
    }
}

/// What a kernel does with the result `C` it computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    /// `C = A x B`: what `C` held is overwritten (and never read).
    Overwrite,
    /// `C += A x B`.
    Accumulate,
}

impl Store {
    /// `Accumulate` when `yes`.
    #[inline]
    pub const fn accumulate_if(yes: bool) -> Store {
        if yes {
            Store::Accumulate
        } else {
            Store::Overwrite
        }
    }

    /// `value` as stored over `old`.
    #[inline(always)]
    pub(super) fn apply(self, old: f32, value: f32) -> f32 {
        match self {
            Store::Overwrite => value,
            Store::Accumulate => old + value,
        }
    }
}

/// What a broadcast product does to each entry of `C` after its sum, as it stores it: the
/// output pass of a convolution (bias, residual sum, ReLU) applied while the block is in
/// registers, in the order of `conv::Then`: `max(0, (sum + bias[i]) + residual)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Finish<'a> {
    /// `bias[i]` is added to every entry of row `i`.
    pub bias: Option<&'a [f32]>,
    /// Added entry by entry: laid out as `C` (the same strides, from the same start).
    pub residual: Option<&'a [f32]>,
    /// Whether negative entries become 0.
    pub relu: bool,
}

impl<'a> Finish<'a> {
    /// Nothing: each entry is the product's sum.
    pub const NONE: Finish<'static> = Finish {
        bias: None,
        residual: None,
        relu: false,
    };

    /// Whether it changes anything.
    #[inline(always)]
    pub(super) fn any(&self) -> bool {
        self.bias.is_some() || self.residual.is_some() || self.relu
    }

    /// The same for the rows of `C` from row `i` on, whose rows are `rs` apart.
    #[inline(always)]
    pub(super) fn rows_on(self, i: usize, rs: usize) -> Finish<'a> {
        Finish {
            bias: self.bias.map(|b| &b[i..]),
            residual: self.residual.map(|r| &r[(i * rs).min(r.len())..]),
            relu: self.relu,
        }
    }

    /// `value`, the entry of row `row` at `at` in `C`, finished.
    #[inline(always)]
    pub(super) fn scalar(&self, row: usize, at: usize, value: f32) -> f32 {
        let mut v = value;
        if let Some(bias) = self.bias {
            v += bias[row];
        }
        if let Some(residual) = self.residual {
            v += residual[at];
        }
        if self.relu {
            v = v.max(0.0);
        }
        v
    }
}

/// Panics unless `C` (`m x n`, row stride `ldc`) fits `c`; `what` names the caller.
#[track_caller]
pub(super) fn check_c(what: &str, m: usize, n: usize, c: &[f32], ldc: usize) {
    assert!(
        ldc >= n && Mat::rows(c, ldc).holds(m, n),
        "{what}: C ({m}x{n}, row stride {ldc}) does not fit its {} elements",
        c.len()
    );
}

/// Panics unless `A` (`m x k`, any strides) fits its elements.
#[track_caller]
pub(super) fn check_a(what: &str, a: Mat, m: usize, k: usize) {
    assert!(
        a.holds(m, k),
        "{what}: A ({m}x{k}, strides {}, {}) does not fit its {} elements",
        a.rs,
        a.cs,
        a.data.len()
    );
}

/// Panics unless `x`, operand `name` (`rows x cols`), has unit column stride and fits.
#[track_caller]
pub(super) fn check_rows(what: &str, name: &str, x: Mat, rows: usize, cols: usize) {
    assert!(
        x.cs == 1 && x.holds(rows, cols),
        "{what}: {name} ({rows}x{cols}, row stride {}) does not fit its {} elements",
        x.rs,
        x.data.len()
    );
}

/// Where row `p` of an operand starts: at a fixed stride, from a table, or as image pixels.
pub(super) trait RowAt: Copy {
    fn at(&self, p: usize) -> usize;

    /// Where rows `0..k` start, in order: what the kernels' inner loops walk (a table is
    /// bounds-checked once, not per row).
    #[inline(always)]
    fn first(&self, k: usize) -> impl Iterator<Item = usize> {
        (0..k).map(|p| self.at(p))
    }

    /// Rows come in runs of this many one element apart, if they do (an image's rows of
    /// pixels): blocks of rows that keep to a run need one pointer to reach them all.
    #[inline(always)]
    fn run(&self) -> Option<usize> {
        None
    }

    /// Whether rows `i0..i0 + count` lie one element apart: inside one [`run`](Self::run).
    #[inline(always)]
    fn consecutive(&self, i0: usize, count: usize) -> bool {
        self.run().is_some_and(|run| i0 % run + count <= run)
    }

    /// `starts`, the starts of `R` consecutive rows, as a kernel's block reads them: where
    /// rows lie at distances known when compiling, each is derived from the first, so that
    /// the block holds one pointer in a register rather than `R`.
    #[inline(always)]
    fn block<const R: usize>(&self, starts: [*const f32; R]) -> [*const f32; R] {
        starts
    }
}

/// Rows one element apart: the kernels reach a block's rows from one pointer at constant
/// offsets, where rows at distances known only at run time take a register each.
#[derive(Clone, Copy)]
pub(super) struct Unit;

impl RowAt for Unit {
    #[inline(always)]
    fn at(&self, p: usize) -> usize {
        p
    }

    /// One run of every row.
    #[inline(always)]
    fn run(&self) -> Option<usize> {
        Some(usize::MAX)
    }

    #[inline(always)]
    fn block<const R: usize>(&self, starts: [*const f32; R]) -> [*const f32; R] {
        core::array::from_fn(|r| starts[0].wrapping_add(r))
    }
}

#[derive(Clone, Copy)]
pub(super) struct Strided(pub usize);

impl RowAt for Strided {
    #[inline(always)]
    fn at(&self, p: usize) -> usize {
        p * self.0
    }

    #[inline(always)]
    fn first(&self, k: usize) -> impl Iterator<Item = usize> {
        (0..k).map(|p| p * self.0)
    }
}

#[derive(Clone, Copy)]
pub(super) struct Table<'a>(pub &'a [usize]);

impl RowAt for Table<'_> {
    #[inline(always)]
    fn at(&self, p: usize) -> usize {
        self.0[p]
    }

    #[inline(always)]
    fn first(&self, k: usize) -> impl Iterator<Item = usize> {
        self.0[..k].iter().copied()
    }
}

/// Rows laid out as the pixels of an image `width` wide with rows `stride` apart.
#[derive(Clone, Copy)]
pub(super) struct Pixels {
    width: usize,
    stride: usize,
}

impl Pixels {
    /// The pixels of vectors spread as `spread`; contiguous ones are a single row wider than
    /// any index.
    pub(super) fn of(spread: Spread) -> Pixels {
        match spread {
            Spread::Contiguous => Pixels {
                width: usize::MAX,
                stride: 0,
            },
            Spread::Image { width, stride } => Pixels { width, stride },
        }
    }
}

impl RowAt for Pixels {
    #[inline(always)]
    fn at(&self, i: usize) -> usize {
        (i / self.width) * self.stride + i % self.width
    }

    #[inline(always)]
    fn run(&self) -> Option<usize> {
        Some(self.width)
    }
}

/// The `A` operand of the broadcast kernels: element `(i, p)` is
/// `data[row.at(i) + col.at(p)]`.
#[derive(Clone, Copy)]
pub(super) struct Lhs<'a, R, C> {
    pub data: &'a [f32],
    pub row: R,
    pub col: C,
}

impl<'a> Lhs<'a, Strided, Strided> {
    pub(super) fn of(a: Mat<'a>) -> Self {
        Lhs {
            data: a.data,
            row: Strided(a.rs),
            col: Strided(a.cs),
        }
    }
}

/// The `B` operand of the broadcast kernels: row `p` starts at `data[row.at(p)]`, its `n`
/// columns in whole image rows as `spread` says.
#[derive(Clone, Copy)]
pub(super) struct Rhs<'a, R> {
    pub data: &'a [f32],
    pub row: R,
    pub spread: Spread,
}

/// Where `C(i, j)` lies: `c[i * strides[0] + j * strides[1]]`.
pub(super) type Strides = [usize; 2];
