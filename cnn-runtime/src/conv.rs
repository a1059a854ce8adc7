//! 2-D convolution (PyTorch's `Conv2d`: cross-correlation, zero padding), forward and backward.
//!
//! Layouts, per sample: input `[C, H, W]`, output `[OC, OH, OW]`, weight `[OC, C, KH, KW]`,
//! bias `[OC]`. The parameters of one layer are contiguous: weight, then bias. The output of a
//! batch is channel-major, `[OC, batch, OH, OW]` ([`Layout::ChannelMajor`]): the layout every
//! image after the first convolution keeps, so no transposes are needed between layers.
//!
//! Stride-1 convolutions (the common case) read their input in place: each sample is copied
//! into a zero-padded image `[C, H+2PH, W+2PW]`, and every kernel tap `(c, u, v)` is then a
//! contiguous, shifted view of it, so the product `weight [OC, C*KH*KW] x taps` runs on
//! gathered rows (`simd::gather_gemm`) with no unfolded copy; its columns, the output pixels,
//! are read as rows of `OW` lying a padded row apart (`Gathered::image`). The backward pass:
//! the weight gradient is the output gradient times the taps (dot products along "wide" rows,
//! the output gradient copied into rows of the padded width, `simd::gather_gemm_nt`, or tap
//! by tap, `simd::gather_rows_gemm`, whichever wastes fewer lanes); the input gradient of a
//! channel-major input is the forward pass of the output gradient through the kernels turned
//! by 180 degrees (input and output channels swapped, padding `K-1-P`), otherwise
//! `weight^T x dy`, one row per kernel tap, folded back onto the padded image by summing
//! shifted windows (`simd::sum_shifted`: each pixel written once).
//!
//! A stride no larger than the kernel reads its input in place too, both ways: the padded
//! sample is split into one image per phase of the stride (`(row % SH, column % SW)`), each tap
//! is a shifted view of one phase image, and the input gradient is summed phase image by phase
//! image from the taps that read it (ResNet-8's stride-2 3x3 layers' backward passes at batch
//! 64, against unfolding: 8.4-12.2 ms -> 4.8-5.8 ms and 5.5-5.6 -> 4.7-4.8 ms in two
//! interleaved runs of `CNN_BENCH_CPU_TIME=1 cargo run --release --example bench -- --layers
//! --net resnet8 --threads 1`, Intel Xeon with AVX-512).
//! Other strides unfold each sample into columns (im2col, `[C*KH*KW, OH*OW]`) and multiply;
//! long patches on small images ([`Conv2d::packed`]) multiply forward with matrixmultiply's
//! packed sgemm.
//! Where a sample's output is one product by output channels (and on the unfolded route), the
//! kernel writes each block of it straight into the channel-major output's planes, applying the
//! bias and what [`Then`] says (a ReLU, a residual sum) as it stores the block
//! (`simd::Finish`); otherwise (by pixels, or channels in several products) the output is
//! computed in a contiguous buffer, then written to the output with the same applied. At
//! inference an eval-mode BatchNorm can be folded into the weights, once
//! ([`Conv2d::prepare_batchnorm`], [`Conv2d::forward_prepared`]) or on every call
//! ([`Conv2d::forward_batchnorm`]); a layer without one is laid out the same way where that
//! saves work ([`Conv2d::prepare`], [`Conv2d::forward_as_prepared`]).
//! Where a batch is too small to split across threads, the in-place forward pass of a large
//! layer splits each sample in two bands of its output rows, one on a helper thread, each
//! padding the input rows it reads into memory of its own and writing its rows of the output
//! (`split`; Winograd's layers split their tiles by rows too): a layer's band is read by the
//! next layer's on the same core, but for a row or two. ResNet-8's batch-1 inference with two
//! threads went 276 -> 215 us with halves of the output channels (the `bench` example's `--net
//! resnet8 --only b1 --threads 2` before and after, medians of 5 interleaved runs, AMD EPYC
//! with AVX-512), and 180.7 -> 166.1 us with bands of rows instead (10 interleaved rounds,
//! the two cores far apart).

use crate::batchnorm::BatchNorm;
use crate::layout::Layout;
use crate::shape::conv_out;
use crate::simd::{
    finished_gemm, gather_cols_gemm, gather_gemm, gather_gemm_nt, gather_rows_gemm, small_gemm, small_gemm_nt,
    split_columns, sum, sum_shifted, transpose, zero, Columns, Finish, Gathered, Mat, Store,
};
use crate::split;
use crate::winograd::{self, Tiles};
use core::ops::Range;

/// The geometry of one convolution layer, all sizes known when the network is declared.
///
/// ```
/// use cnn_runtime::{conv::Conv2d, layout::Layout};
/// // LeNet-5's conv1: 1 -> 6 channels, 5x5 kernel, padding 2, on 28x28.
/// const G: Conv2d = Conv2d::new([1, 28, 28], 6, [5, 5], [1, 1], [2, 2], true);
/// assert_eq!((G.oh, G.ow), (28, 28));
/// assert_eq!(G.param_len(), 6 * 25 + 6);
///
/// let x = vec![1.0; G.in_len()];
/// let mut p = vec![0.0; G.param_len()];
/// p[..25].fill(1.0); // first output channel sums its window
/// let mut y = vec![0.0; G.out_len()];
/// let mut scratch = vec![0.0; G.forward_scratch_len()];
/// G.forward(1, &x, Layout::SampleMajor, &p, &mut y, &mut scratch);
/// assert_eq!(y[14 * 28 + 14], 25.0); // a window fully inside the image
/// assert_eq!(y[0], 9.0);             // the corner sees 3x3 of the image
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub oc: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Vertical stride.
    pub sh: usize,
    /// Horizontal stride.
    pub sw: usize,
    /// Zero padding, top and bottom.
    pub ph: usize,
    /// Zero padding, left and right.
    pub pw: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
    /// Whether the layer has a bias.
    pub bias: bool,
}

impl Conv2d {
    /// The geometry for input `[c, h, w]`, `oc` output channels, kernel `[kh, kw]`, stride
    /// `[sh, sw]` and padding `[ph, pw]`.
    ///
    /// # Panics
    ///
    /// If the kernel does not fit the padded input or a size is zero (the `cnn!` macro rejects
    /// such declarations at compile time).
    pub const fn new(
        input: [usize; 3],
        oc: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        bias: bool,
    ) -> Self {
        let [c, h, w] = input;
        let (Some(oh), Some(ow)) = (
            conv_out(h, kernel[0], stride[0], padding[0]),
            conv_out(w, kernel[1], stride[1], padding[1]),
        ) else {
            panic!("Conv2d: the kernel does not fit the padded input");
        };
        Conv2d {
            c,
            h,
            w,
            oc,
            kh: kernel[0],
            kw: kernel[1],
            sh: stride[0],
            sw: stride[1],
            ph: padding[0],
            pw: padding[1],
            oh,
            ow,
            bias,
        }
    }

    /// Elements of one input sample, `C*H*W`.
    pub const fn in_len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// Elements of one output sample, `OC*OH*OW`.
    pub const fn out_len(&self) -> usize {
        self.oc * self.oh * self.ow
    }

    /// Rows of the unfolded input and columns of the weight matrix, `C*KH*KW`.
    pub const fn patch_len(&self) -> usize {
        self.c * self.kh * self.kw
    }

    /// Elements of the weight, `OC*C*KH*KW`.
    pub const fn weight_len(&self) -> usize {
        self.oc * self.patch_len()
    }

    /// Elements of weight and bias together.
    pub const fn param_len(&self) -> usize {
        self.weight_len() + if self.bias { self.oc } else { 0 }
    }

    /// Multiply-adds of one sample's forward pass (bias not counted).
    pub const fn macs(&self) -> usize {
        self.out_len() * self.patch_len()
    }

    /// Elements of one unfolded sample, `C*KH*KW*OH*OW`: the scratch
    /// [`forward`](Self::forward) needs.
    pub const fn cols_len(&self) -> usize {
        self.patch_len() * self.oh * self.ow
    }

    /// Scratch [`forward`](Self::forward) needs: a padded sample (split into phases when
    /// strided), one sample's output and a transposed weight where the input is read in place
    /// (and two bands' memory where a sample may split), an unfolded sample and one sample's
    /// output otherwise.
    pub const fn forward_scratch_len(&self) -> usize {
        let unfolded = self.cols_len() + self.out_len();
        if !self.in_place() {
            // With a second unfolded sample and output (`forward_by`'s bands) for the helper's
            // half where a sample may split.
            return unfolded + split::spare_len(split::MIN_UNFOLDED_MACS, self.macs(), unfolded);
        }
        // With two bands' memory where a sample may split (`band_len`).
        let spare = split::spare_len(split::MIN_MACS, self.macs(), 2 * self.band_len());
        let in_place = self.padded_len() + self.out_len() + self.weight_len() + spare;
        let in_place = if self.winograd() {
            // With a second phases, V and M for a helper's half where a sample may split.
            let work = self.tiles().work_len();
            larger(in_place, work + split::spare_len(split::MIN_MACS, self.macs(), work))
        } else {
            in_place
        };
        // Whether or not std (and with it matrixmultiply) is there: the same sizes for the
        // macro, which builds this crate without std, and for the code it generates.
        if self.packed() && unfolded > in_place {
            unfolded
        } else {
            in_place
        }
    }

    /// Whether the geometry is one where matrixmultiply's packed sgemm, on each unfolded
    /// sample, beats our kernels: long patches (`C*KH*KW >= 1024`) on small images (at most 256
    /// output pixels), the deep layers of a ResNet-18 (`CNN_BENCH_CPU_TIME=1 bench --layers
    /// --net resnet18`: its 512-channel 3x3 layer on 7x7 at 67 GFLOP/s against 35 at batch 1,
    /// Intel Xeon with AVX-512). Taken with std only; without, our kernels.
    ///
    /// ```
    /// use cnn_runtime::conv::Conv2d;
    /// // ResNet-18's layer4: 512 channels, 3x3, on 7x7. ResNet-8's last layer: 64 on 8x8.
    /// assert!(Conv2d::new([512, 7, 7], 512, [3, 3], [1, 1], [1, 1], false).packed());
    /// assert!(!Conv2d::new([64, 8, 8], 64, [3, 3], [1, 1], [1, 1], false).packed());
    /// ```
    pub const fn packed(&self) -> bool {
        self.patch_len() >= 1024 && self.oh * self.ow <= 256
    }

    /// Scratch [`backward`](Self::backward) needs, which is also enough for
    /// [`forward`](Self::forward): where the input is read in place a padded sample (as phase
    /// images when strided) and its gradient,
    /// the output gradient in wide rows, pixel-major and (after a ReLU) masked, the weight
    /// gradient transposed, and the input gradient's columns (a row per kernel tap, see
    /// `grad_row`), or, where the input gradient is a forward pass through the flipped kernels
    /// (`flips`), those kernels and that pass's scratch; otherwise two unfolded
    /// samples, one sample's output gradient and a weight gradient.
    pub const fn scratch_len(&self) -> usize {
        let forward = self.forward_scratch_len();
        if !self.in_place() {
            return larger(2 * self.cols_len() + self.out_len() + self.weight_len(), forward);
        }
        let backward = 2 * self.padded_len()
            + self.oc * self.wide_len()
            + 2 * self.out_len()
            + self.weight_len()
            + self.patch_len() * self.grad_row();
        // Used after the weight gradient, so in the same space.
        let flipped = if self.flips() {
            let back = self.input_grad_conv();
            self.weight_len()
                + larger(
                    back.padded_len() + back.out_len() + back.weight_len(),
                    back.winograd_len(),
                )
        } else {
            0
        };
        larger(larger(larger(backward, forward), flipped), self.winograd_len())
    }

    /// Scratch the forward pass of a call of [`WINOGRAD_BATCH`] samples or more takes by
    /// Winograd's algorithm ([`winograd`](Self::winograd)) from the declared weight: its
    /// transform, a zero bias, and a sample's phases and transforms; 0 for other layers.
    const fn winograd_len(&self) -> usize {
        if self.winograd() {
            self.tiles().u_len() + self.oc + self.tiles().work_len()
        } else {
            0
        }
    }

    /// Whether the stride-1 path, which reads the input in place, computes this layer: stride 1
    /// and a kernel of at most [`TAPS`] taps.
    pub const fn direct(&self) -> bool {
        self.sh == 1 && self.sw == 1 && self.kh * self.kw <= TAPS
    }

    /// Whether inference from prepared parameters ([`forward_prepared`](Self::forward_prepared))
    /// and forward passes of at least [`WINOGRAD_BATCH`] samples (a training step's, its input
    /// gradient's) compute this layer by Winograd's F(2x2, 3x3), on CPUs with AVX2 or AVX-512
    /// (on the portable path directly): a 3x3 kernel at stride 1 with padding 1, an even output whose rows
    /// of 2x2 tiles fill or divide a vector of 16 (1, 2, 4, 8 or a multiple of 16 tiles), and
    /// at least [`WINOGRAD_CHANNELS`] input and output channels.
    ///
    /// ```
    /// use cnn_runtime::conv::Conv2d;
    /// // ResNet-8's stride-1 layers; not a stem on 3 channels.
    /// assert!(Conv2d::new([16, 32, 32], 16, [3, 3], [1, 1], [1, 1], false).winograd());
    /// assert!(Conv2d::new([64, 8, 8], 64, [3, 3], [1, 1], [1, 1], false).winograd());
    /// assert!(!Conv2d::new([3, 32, 32], 16, [3, 3], [1, 1], [1, 1], false).winograd());
    /// // Strided, or a row of 7 tiles: directly.
    /// assert!(!Conv2d::new([32, 16, 16], 64, [3, 3], [2, 2], [1, 1], false).winograd());
    /// assert!(!Conv2d::new([64, 14, 14], 64, [3, 3], [1, 1], [1, 1], false).winograd());
    /// ```
    pub const fn winograd(&self) -> bool {
        self.kh == 3
            && self.kw == 3
            && self.sh == 1
            && self.sw == 1
            && self.ph == 1
            && self.pw == 1
            && Tiles::fit(self.oh, self.ow)
            && self.c >= WINOGRAD_CHANNELS
            && self.oc >= WINOGRAD_CHANNELS
    }

    /// The tiling of a [`winograd`](Self::winograd) layer.
    const fn tiles(&self) -> Tiles {
        Tiles {
            c: self.c,
            oc: self.oc,
            th: self.oh / 2,
            tw: self.ow / 2,
        }
    }

    /// The forward pass by Winograd's F(2x2, 3x3), `u` the transformed weight
    /// (`winograd::weights`): `winograd::forward_sample` for each sample, which has it split
    /// into the four phases of its padded image (as a stride-2 layer's input,
    /// [`winograd_phases`](Self::winograd_phases)), half of its tiles or output channels on a
    /// helper thread where the sample splits (`split`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn forward_winograd(
        &self,
        batch: usize,
        x: &[f32],
        layout: Layout,
        u: &[f32],
        bias: &[f32],
        then: Then,
        y: &mut [f32],
        scratch: &mut [f32],
    ) {
        let t = self.tiles();
        let (work, rest) = scratch.split_at_mut(t.work_len());
        // A helper thread's half of the tiles in memory of its own, where the sample splits
        // and `forward_scratch_len` left room.
        let split = rest.len() >= t.work_len() && split::worth(self.macs(), 2);
        let mut spare = split.then(|| &mut rest[..t.work_len()]);
        for b in 0..batch {
            let fill = |phases: &mut [f32], rows| self.winograd_phases(x, layout, batch, b, phases, rows);
            let spare = spare.as_deref_mut();
            winograd::forward_sample(t, u, fill, work, spare, bias, then, batch, b, y);
        }
    }

    /// Rows `rows` of the phases of sample `b` of `x`, as `winograd::forward_sample` reads
    /// them: the four phases of its image padded by 1 ([`pad_sample`](Self::pad_sample) at
    /// stride 2), every element of those rows written, the padding too, so that the memory
    /// needs no clearing first. Each thread of a split sample so fills phases of its own,
    /// which the other thread never reads: clearing memory the other core had read took the
    /// caller 7% of ResNet-8's batch 1 at two threads (perf), each cache line taken back from
    /// the other core. A half of the tiles fills only the rows its tiles read, so that it
    /// reads of the input only its rows and the next.
    fn winograd_phases(
        &self,
        x: &[f32],
        layout: Layout,
        batch: usize,
        b: usize,
        phases: &mut [f32],
        rows: Range<usize>,
    ) {
        let phased = Conv2d { sh: 2, sw: 2, ..*self };
        phased.pad_phase_rows(x, layout, batch, b, phases, rows.clone());
        // Row phase 0 holds the padding's top row as its first, row phase 1 the bottom one as
        // its last (the image's sides are even); the column phases alike.
        let [gh, gw] = phased.grid();
        for (i, plane) in phases[..phased.padded_len()].chunks_exact_mut(gh * gw).enumerate() {
            let (pr, pc) = (i / (2 * self.c), i / self.c % 2);
            let row = if pr == 0 { 0 } else { gh - 1 };
            if rows.contains(&row) {
                plane[row * gw..][..gw].fill(0.0);
            }
            let col = if pc == 0 { 0 } else { gw - 1 };
            let lines = &mut plane[rows.start * gw..rows.end * gw];
            lines.iter_mut().skip(col).step_by(gw).for_each(|v| *v = 0.0);
        }
    }

    /// Whether the forward pass reads the input in place: stride 1 ([`direct`](Self::direct)),
    /// or a stride no larger than the kernel, whose padded input is split into one image per
    /// phase of the stride (`(row % SH, column % SW)`): every kernel tap then reads a shifted
    /// view of one phase, as at stride 1; the backward pass too.
    ///
    /// ```
    /// use cnn_runtime::conv::Conv2d;
    /// let down = Conv2d::new([16, 32, 32], 32, [3, 3], [2, 2], [1, 1], false);
    /// assert!(down.in_place() && !down.direct());
    /// // A 1x1 kernel at stride 2 skips pixels: it unfolds.
    /// assert!(!Conv2d::new([16, 32, 32], 32, [1, 1], [2, 2], [0, 0], false).in_place());
    /// ```
    pub const fn in_place(&self) -> bool {
        self.kh * self.kw <= TAPS && self.kh >= self.sh && self.kw >= self.sw
    }

    /// The route of the backward pass: in place ([`in_place`](Self::in_place)) or unfolded.
    const fn route(&self) -> Route {
        if self.in_place() {
            Route::Direct
        } else {
            Route::Unfolded
        }
    }

    /// The route of the forward pass: matrixmultiply where [`packed`](Self::packed) (with std),
    /// else [`in_place`](Self::in_place), else unfolded.
    const fn forward_route(&self) -> Route {
        if cfg!(feature = "std") && self.packed() {
            Route::Packed
        } else if self.in_place() {
            Route::Direct
        } else {
            Route::Unfolded
        }
    }

    /// Whether the stride-1 forward pass goes a row of output pixels at a time, with the output
    /// channels along the vector lanes, rather than an output channel at a time with the wide
    /// rows along the lanes: the order with fewer vector multiply-adds per kernel tap, the first
    /// wasting lanes on output channels past a multiple of 16 (and scattering its results), the
    /// second on output rows past a multiple of 16 pixels.
    const fn by_pixels(&self) -> bool {
        // Vector multiply-adds per kernel tap: the kernels work on 16 columns (two vectors) at
        // a time, an output row's pixels or the output channels.
        let by_channels = self.oc * self.oh * self.ow.div_ceil(16) * 2;
        let by_pixels = self.oh * self.ow * self.oc.div_ceil(16) * 2;
        5 * by_pixels < 4 * by_channels
    }

    /// How far into its phase image (the padded image at stride 1) the farthest kernel tap
    /// reaches: the left margin of a row of the input gradient's columns.
    const fn grad_margin(&self) -> usize {
        (self.kh - 1) / self.sh * self.grid()[1] + (self.kw - 1) / self.sw
    }

    /// Length of a row of the input gradient's columns in the in-place backward pass: a margin
    /// as long as the farthest kernel tap reaches into its phase image ([`grad_margin`](
    /// Self::grad_margin)), then one phase image (the padded image at stride 1).
    /// Rounded up to a multiple of 8 that is not one of 64: rows a power of two apart (LeNet-5's
    /// conv2 has 60 + 196 = 256) alias in the cache and cost a third more time.
    const fn grad_row(&self) -> usize {
        let [gh, gw] = self.grid();
        let row = (self.grad_margin() + gh * gw).next_multiple_of(8);
        if row.is_multiple_of(64) {
            row + 8
        } else {
            row
        }
    }

    /// Whether the stride-1 weight gradient goes kernel tap by kernel tap, with the output
    /// channels along the vector lanes, rather than as dot products along the wide rows: the
    /// order with fewer vector multiply-adds (the first wastes lanes past a multiple of 16
    /// channels, the second on the padding columns of the wide rows). With AVX-512, by taps
    /// from 64 output channels on, and from 16 on rows of at least 16 pixels: each dot product
    /// ends in a sum across 16 lanes. Measured at batch 64 (`CNN_BENCH_CPU_TIME=1 bench --layers
    /// --net resnet8` and `--net lenet5`, Intel Xeon, builds with each order forced, 3 rounds):
    /// ResNet-8's 64-channel layer's backward pass 12.5 ms by taps against 18.5 ms by rows, its
    /// 32-channel 16x16 layer's 5.5-6.1 ms against 7.6-9.8, its 16-channel 32x32 layer's
    /// 6.6-10.7 against 7.3-10.6; LeNet-5's conv2 (16 channels, rows of 10) no faster by taps
    /// (0.93-1.39 ms against 0.87-1.49), so it stays by rows.
    fn dweight_by_taps(&self) -> bool {
        let by_rows = self.oc * self.wide_len().div_ceil(8);
        let by_taps = self.oh * self.ow * self.oc.div_ceil(16) * 2;
        let avx512 = crate::simd::Isa::current().path() == crate::simd::Path::Avx512;
        let wide = avx512 && (self.oc >= 64 || (self.oc >= 16 && self.ow >= 16));
        wide || 5 * by_taps < 4 * by_rows
    }

    /// Height and width of the zero-padded input.
    const fn padded(&self) -> [usize; 2] {
        [self.h + 2 * self.ph, self.w + 2 * self.pw]
    }

    /// Height and width of each phase image of the padded input: the padded image itself at
    /// stride 1.
    const fn grid(&self) -> [usize; 2] {
        let [hp, wp] = self.padded();
        [hp.div_ceil(self.sh), wp.div_ceil(self.sw)]
    }

    /// Elements of one zero-padded input sample, as phase images `[SH*SW, C, GH, GW]` (one
    /// image `[C, HP, WP]` at stride 1).
    const fn padded_len(&self) -> usize {
        let [gh, gw] = self.grid();
        self.sh * self.sw * self.c * gh * gw
    }

    /// Columns of a wide output row block: `OH` rows of a phase image's width (the padded
    /// width at stride 1), the last one cut to `OW`.
    const fn wide_len(&self) -> usize {
        (self.oh - 1) * self.grid()[1] + self.ow
    }

    /// The offsets of the kernel taps `(c, u, v)`, in weight order, in a padded image with
    /// planes of `plane` elements and rows of `row` (strided: in the phase image of
    /// `(u % SH, v % SW)`, at `(u / SH, v / SW)`); the table covers as many whole channels as
    /// fit in [`TAPS`] entries, whose count it returns: further channels use the same table
    /// from their own plane on. Written into the caller's `table`: returned, the 4 KB array was
    /// copied once more, at 4 KB from itself on the stack (every load of the copy waiting on the
    /// store to the same page offset), 16% of LeNet-5's batch-1 inference in perf.
    fn tap_table(&self, plane: usize, row: usize, channels: usize, table: &mut [usize; TAPS]) -> usize {
        let taps = self.kh * self.kw;
        let chunk = (TAPS / taps).min(channels);
        // The first channel's taps; each further channel's lie a plane further on. Tap
        // `(u, v)` lies in phase `(u % SH, v % SW)` at `(u / SH, v / SW)`, counted up here
        // without a division: a call's divisions by the geometry cost 2.2-2.8% of LeNet-5's
        // batch-1 inference, 0.6-0.9% without (`perf record` of `cargo run --release --example
        // bench -- --net lenet5 --threads 1 --only b1`, AMD EPYC Zen 4).
        let (first, rest) = table.split_at_mut(taps);
        let phases = self.c * plane;
        let mut at = first.iter_mut();
        let [mut pu, mut qu] = [0, 0];
        for _ in 0..self.kh {
            let [mut pv, mut qv] = [0, 0];
            for _ in 0..self.kw {
                if let Some(at) = at.next() {
                    *at = (pu * self.sw + pv) * phases + qu * row + qv;
                }
                (pv, qv) = if pv + 1 == self.sw { (0, qv + 1) } else { (pv + 1, qv) };
            }
            (pu, qu) = if pu + 1 == self.sh { (0, qu + 1) } else { (pu + 1, qu) };
        }
        // chunk * taps <= TAPS entries in all.
        for (ch, taps_of) in rest.chunks_exact_mut(taps).take(chunk.saturating_sub(1)).enumerate() {
            for (at, &f) in taps_of.iter_mut().zip(first.iter()) {
                *at = f + (ch + 1) * plane;
            }
        }
        chunk
    }

    /// Where input row `r` of channel `ch` lies in the padded sample (its phase images when
    /// strided): `at(pc, gc)` is the offset of column `gc` of its row in the phase image of
    /// column phase `pc`. The layout [`pad_sample`](Self::pad_sample) writes and
    /// [`unpad_sample`](Self::unpad_sample) reads.
    fn padded_row(&self, ch: usize, r: usize) -> impl Fn(usize, usize) -> usize {
        let [gh, gw] = self.grid();
        let (pr, gr) = ((r + self.ph) % self.sh, (r + self.ph) / self.sh);
        let (sw, c) = (self.sw, self.c);
        move |pc, gc| ((pr * sw + pc) * c + ch) * gh * gw + gr * gw + gc
    }

    /// At stride 2 across, where a row's even and odd columns start, `(pc, gc)` for
    /// [`padded_row`](Self::padded_row): column 2j goes to phase (pw % 2) at (2j + pw) / 2,
    /// column 2j + 1 to the other phase at (2j + 1 + pw) / 2.
    fn pair_starts(&self) -> [(usize, usize); 2] {
        let pc = self.pw % 2;
        [(pc, self.pw / 2), (1 - pc, self.pw.div_ceil(2))]
    }

    /// The first column of the row that goes to column phase `pc`, and where it lands in that
    /// phase's row.
    fn phase_start(&self, pc: usize) -> (usize, usize) {
        let first = (pc + self.sw - self.pw % self.sw) % self.sw;
        (first, (first + self.pw) / self.sw)
    }

    /// Copies sample `b` of `x` into the interior of `pad` (`[C, HP, WP]`, or when strided its
    /// phase images `[SH*SW, C, GH, GW]`; borders already zero).
    fn pad_sample(&self, x: &[f32], layout: Layout, batch: usize, b: usize, pad: &mut [f32]) {
        let [gh, gw] = self.grid();
        let hw = self.h * self.w;
        if self.sw == 2 {
            return self.pad_phase_rows(x, layout, batch, b, pad, 0..gh);
        }
        for ch in 0..self.c {
            let src = &x[layout.plane(ch, b, self.c, batch) * hw..][..hw];
            if self.sh == 1 && self.sw == 1 {
                let dst = &mut pad[ch * gh * gw..][..gh * gw];
                for (r, row) in src.chunks_exact(self.w).enumerate() {
                    dst[(r + self.ph) * gw + self.pw..][..self.w].copy_from_slice(row);
                }
                continue;
            }
            for (r, row) in src.chunks_exact(self.w).enumerate() {
                let at = self.padded_row(ch, r);
                for pc in 0..self.sw {
                    let (first, gc) = self.phase_start(pc);
                    let phase = row.get(first..).unwrap_or_default().iter().step_by(self.sw);
                    pad[at(pc, gc)..].iter_mut().zip(phase).for_each(|(d, &v)| *d = v);
                }
            }
        }
    }

    /// Whether a sample's forward pass splits by bands of output rows ([`forward_direct`](
    /// Self::forward_direct)): strides of 1 or 2, alike across and down, whose padded rows
    /// [`pad_band`](Self::pad_band) writes (and two rows or more, which `split::worth` asks).
    const fn bands(&self) -> bool {
        self.sh == self.sw && self.sh <= 2
    }

    /// Scratch a band of [`bands`](Self::bands) works in: a padded sample, its product and
    /// that transposed.
    const fn band_len(&self) -> usize {
        self.padded_len() + 2 * self.out_len()
    }

    /// Each sample split in two bands of its output rows, on this thread and the helper
    /// (`split::halves`), each in memory of its own `band_len` long (`memory` holds this
    /// thread's and then the helper's room): `band(b, rows, memory)` computes rows `rows` of
    /// sample `b`'s product, `[OC, rows.len() * OW]`, in `memory` and says where it starts
    /// there; each band writes it to its rows of the sample's planes of `y`, with the bias and
    /// what `then` says.
    #[allow(clippy::too_many_arguments)]
    fn forward_bands(
        &self,
        batch: usize,
        memory: &mut [f32],
        band_len: usize,
        bias: Option<&[f32]>,
        then: Then,
        y: &mut [f32],
        band: impl Fn(usize, Range<usize>, &mut [f32]) -> usize + Sync,
    ) {
        let ohw = self.oh * self.ow;
        assert!(y.len() >= self.oc * batch * ohw, "conv2d: y is shorter than its batch");
        let (mine, spare) = memory.split_at_mut(band_len);
        let (out, half) = (split::Shared(y.as_mut_ptr()), self.oh / 2);
        for b in 0..batch {
            let memory = [&mut *mine, &mut spare[..band_len]];
            split::halves(2, 0, &mut [], memory, |side, _, memory| {
                let rows = if side.start == 0 { 0..half } else { half..self.oh };
                let n = rows.len() * self.ow;
                let at = band(b, rows.clone(), memory);
                for (o, src) in memory[at..].chunks_exact(n).take(self.oc).enumerate() {
                    let at = (o * batch + b) * ohw + rows.start * self.ow;
                    // SAFETY: y holds every sample's planes (asserted above), and rows `rows`
                    // of sample b's planes are this band's alone.
                    let dst = unsafe { core::slice::from_raw_parts_mut(out.get().add(at), n) };
                    then.write(dst, Some(src), bias.map_or(0.0, |bias| bias[o]), at);
                }
            });
        }
    }

    /// The rows of `pad` (laid out as [`pad_sample`](Self::pad_sample) writes it) that output
    /// rows `rows` read, zeroed, then filled from sample `b` of `x`: rows `rows.start..rows.end
    /// + (KH - 1) / SH` of each padded image or phase image (strides of [`bands`](Self::bands)).
    fn pad_band(&self, x: &[f32], layout: Layout, batch: usize, b: usize, pad: &mut [f32], rows: Range<usize>) {
        let [gh, gw] = self.grid();
        let grid = rows.start..(rows.end + (self.kh - 1) / self.sh).min(gh);
        for plane in pad[..self.padded_len()].chunks_exact_mut(gh * gw) {
            plane[grid.start * gw..grid.end * gw].fill(0.0);
        }
        if self.sw == 2 {
            return self.pad_phase_rows(x, layout, batch, b, pad, grid);
        }
        // Input row r is padded row r + PH.
        let inputs = grid.start.saturating_sub(self.ph)..grid.end.saturating_sub(self.ph).min(self.h);
        let hw = self.h * self.w;
        for ch in 0..self.c {
            let src = &x[layout.plane(ch, b, self.c, batch) * hw..][..hw];
            let dst = &mut pad[ch * gh * gw..][..gh * gw];
            for r in inputs.clone() {
                dst[(r + self.ph) * gw + self.pw..][..self.w].copy_from_slice(&src[r * self.w..][..self.w]);
            }
        }
    }

    /// [`pad_sample`](Self::pad_sample) at stride 2 across, only rows `phase_rows` of the
    /// phase images: the input rows those hold. A row phase of every channel is one call of
    /// the SIMD kernel that splits columns: rows r0, r0 + SH, ... of each input plane are
    /// consecutive rows of the phase images of row phase `(r0 + PH) % SH`.
    fn pad_phase_rows(
        &self,
        x: &[f32],
        layout: Layout,
        batch: usize,
        b: usize,
        pad: &mut [f32],
        phase_rows: Range<usize>,
    ) {
        debug_assert_eq!(self.sw, 2);
        let [gh, gw] = self.grid();
        let hw = self.h * self.w;
        let first = layout.plane(0, b, self.c, batch) * hw;
        let planes = layout.plane(1, b, self.c, batch) * hw - first;
        let [(pe, ge), (po, go)] = self.pair_starts();
        for pr in 0..self.sh {
            let r0 = (pr + self.sh - self.ph % self.sh) % self.sh;
            if r0 >= self.h {
                continue;
            }
            // Input rows r0 + SH i go to phase row (r0 + PH) / SH + i.
            let g0 = (r0 + self.ph) / self.sh;
            let skip = phase_rows.start.saturating_sub(g0);
            let end = (self.h - r0).div_ceil(self.sh).min(phase_rows.end.saturating_sub(g0));
            if skip >= end {
                continue;
            }
            let (r, rows) = (r0 + self.sh * skip, end - skip);
            let at = self.padded_row(0, r);
            let n = (self.c - 1) * gh * gw + (rows - 1) * gw + self.w.div_ceil(2);
            let (even, odd) = two_mut(pad, at(pe, ge), at(po, go), n);
            let (src, dst) = ([self.sh * self.w, planes], [gw, gh * gw]);
            let columns = Columns {
                planes: self.c,
                rows,
                w: self.w,
                src,
                dst,
            };
            split_columns(&x[first + r * self.w..], even, odd, columns);
        }
    }

    /// Copies the interior of `pad` (laid out as [`pad_sample`](Self::pad_sample) writes it)
    /// to sample `b` of `x`, every pixel: the inverse of `pad_sample`.
    fn unpad_sample(&self, pad: &[f32], layout: Layout, batch: usize, b: usize, x: &mut [f32]) {
        let hw = self.h * self.w;
        for ch in 0..self.c {
            let dst = &mut x[layout.plane(ch, b, self.c, batch) * hw..][..hw];
            for (r, row) in dst.chunks_exact_mut(self.w).enumerate() {
                let at = self.padded_row(ch, r);
                if self.sw == 1 {
                    row.copy_from_slice(&pad[at(0, self.pw)..][..self.w]);
                } else if self.sw == 2 {
                    // Pairs from the two phases, as pad_sample splits them.
                    let [(pe, ge), (po, go)] = self.pair_starts();
                    let even = &pad[at(pe, ge)..][..self.w.div_ceil(2)];
                    let odd = &pad[at(po, go)..][..self.w / 2];
                    for ((pair, &e), &o) in row.chunks_exact_mut(2).zip(even).zip(odd) {
                        (pair[0], pair[1]) = (e, o);
                    }
                    if self.w % 2 == 1 {
                        row[self.w - 1] = even[self.w / 2];
                    }
                } else {
                    for pc in 0..self.sw {
                        let (first, gc) = self.phase_start(pc);
                        let from = &pad[at(pc, gc)..];
                        row.iter_mut()
                            .skip(first)
                            .step_by(self.sw)
                            .zip(from)
                            .for_each(|(d, &v)| *d = v);
                    }
                }
            }
        }
    }

    /// The forward pass that reads the input in place ([`in_place`](Self::in_place)): stride 1,
    /// or strided from phase images. Where each sample's output is one product by channels,
    /// the kernel writes it to the sample's planes of the channel-major `y` and applies the
    /// bias and what `then` says as it stores each block, with no pass of its own (ResNet-8
    /// with and without, `CNN_BENCH_CPU_TIME=1 bench --json --net resnet8 --threads 1 --only
    /// b64|b1`, medians of 8 interleaved runs, Intel Xeon with AVX-512: 3,562 -> 3,673 img/s,
    /// 389 -> 382 us). Otherwise (by pixels, or channels in several
    /// products) it is computed in `scratch`, contiguous and in cache, then written to `y` in
    /// one pass, whose planes lie `batch` planes apart (writing them while accumulating would
    /// evict them from the cache in turn).
    #[allow(clippy::too_many_arguments)]
    fn forward_direct(
        &self,
        batch: usize,
        x: &[f32],
        layout: Layout,
        weight: Weight,
        bias: Option<&[f32]>,
        y: &mut [f32],
        scratch: &mut [f32],
        then: Then,
    ) {
        // Calls of at least `WINOGRAD_BATCH` samples (a training step's forward pass and
        // input gradient; inference runs groups of 4) go by Winograd's F(2x2, 3x3) where the
        // layer and the kernels take it and `scratch_len` left room, the weight transformed
        // once a call.
        if let Weight::Rows(weight) = weight {
            if batch >= WINOGRAD_BATCH
                && self.winograd()
                && winograd::available()
                && scratch.len() >= self.winograd_len()
            {
                let t = self.tiles();
                let (u, rest) = scratch.split_at_mut(t.u_len());
                let (zeros, rest) = rest.split_at_mut(self.oc);
                winograd::weights(t, weight, u);
                zeros.fill(0.0);
                return self.forward_winograd(batch, x, layout, u, bias.unwrap_or(zeros), then, y, rest);
            }
        }
        let ([gh, gw], k, ohw) = (self.grid(), self.patch_len(), self.oh * self.ow);
        let taps = self.kh * self.kw;
        let (pad, rest) = scratch.split_at_mut(self.padded_len());
        let (out, rest) = rest.split_at_mut(self.out_len());
        let (wt_memory, rest) = rest.split_at_mut(self.weight_len());
        let mut table = [0; TAPS];
        let chunk = self.tap_table(gh * gw, gw, self.c, &mut table);
        // The taps of a chunk of channels, each a view of the padded sample (of one of its
        // phase images when strided) whose OH*OW pixels are rows of OW, GW apart.
        let taps_of = |c0: usize| (c0 * gh * gw, &table[..chunk.min(self.c - c0) * taps]);
        let by_pixels = self.by_pixels();
        // The product by pixels reads the weight transposed, `[C*KH*KW, OC]`.
        let (weight, wt): (&[f32], &[f32]) = match weight {
            Weight::Rows(weight) if by_pixels => {
                transpose(self.oc, k, Mat::rows(weight, k), wt_memory, self.oc);
                (weight, wt_memory)
            }
            Weight::Rows(weight) => (weight, &[]),
            Weight::Transposed(wt) => {
                assert!(by_pixels, "conv2d: a transposed weight is for the product by pixels");
                (&[], wt)
            }
        };
        // With one product per sample, by channels, the product goes straight to the sample's
        // planes of y, the bias, the residual and the ReLU applied as the kernel stores it:
        // each plane is written once, and there is no pass of its own.
        let straight = !by_pixels && chunk >= self.c;
        // Rows `rows` of sample `b`'s product into `c` (from its first row), the sample padded
        // in `pad`: image rows of output pixels by pixels, output channels otherwise.
        let product = |b: usize, rows: Range<usize>, c: &mut [f32], pad: &[f32]| {
            for c0 in (0..self.c).step_by(chunk) {
                let (at, offsets) = taps_of(c0);
                let (kk, store) = (offsets.len(), Store::accumulate_if(c0 > 0));
                if by_pixels {
                    // out [OH*OW, OC] (+)= taps seen from each pixel [OH*OW, C*KH*KW] x weight^T.
                    let views = Gathered::new(&pad[at + rows.start * gw..], offsets).image(self.ow, gw);
                    let (m, wt) = (rows.len() * self.ow, Mat::rows(&wt[c0 * taps * self.oc..], self.oc));
                    gather_cols_gemm(m, kk, self.oc, views, wt, c, [self.oc, 1], store);
                    continue;
                }
                let views = Gathered::new(&pad[at..], offsets).image(self.ow, gw);
                let w = Mat::rows(&weight[rows.start * k + c0 * taps..], k);
                if straight {
                    // y_b [OC, OH*OW] = then(weight [OC, C*KH*KW] x taps [C*KH*KW, OH*OW] + bias).
                    let ldy = batch * ohw;
                    let bias = bias.map(|bias| &bias[rows.start..]);
                    let finish = then.finish(bias, b * ohw + rows.start * ldy);
                    gather_gemm(rows.len(), kk, ohw, w, views, c, ldy, store, finish);
                } else {
                    // out [OC, OH*OW] (+)= weight [OC, C*KH*KW] x taps [C*KH*KW, OH*OW].
                    gather_gemm(rows.len(), kk, ohw, w, views, c, ohw, store, Finish::NONE);
                }
            }
        };
        // A large sample splits in two bands of its output rows on two threads where worth it
        // (`split`, `bands`), each padding only the input rows its band reads, into memory of
        // its own, and writing its rows of every output plane: the next layer's band (split
        // by rows too: these, and Winograd's tiles) then reads what the same core wrote, but
        // for a row or two.
        let band_len = self.band_len();
        if self.bands() && rest.len() >= 2 * band_len && split::worth(self.macs(), self.oh) {
            return self.forward_bands(batch, rest, band_len, bias, then, y, |b, rows, memory| {
                let n = rows.len() * self.ow;
                let (pad, memory) = memory.split_at_mut(self.padded_len());
                let (band, memory) = memory.split_at_mut(self.out_len());
                self.pad_band(x, layout, batch, b, pad, rows.clone());
                if by_pixels {
                    // [n, OC], then transposed.
                    product(b, rows, band, pad);
                    transpose(n, self.oc, Mat::rows(band, self.oc), memory, n);
                    return self.padded_len() + self.out_len();
                }
                for c0 in (0..self.c).step_by(chunk) {
                    let (at, offsets) = taps_of(c0);
                    let views = Gathered::new(&pad[at + rows.start * gw..], offsets).image(self.ow, gw);
                    let (w, store) = (Mat::rows(&weight[c0 * taps..], k), Store::accumulate_if(c0 > 0));
                    gather_gemm(self.oc, offsets.len(), n, w, views, band, n, store, Finish::NONE);
                }
                self.padded_len()
            });
        }
        let (rows, stride) = match (by_pixels, straight) {
            (true, _) => (self.oh, self.ow * self.oc),
            (false, true) => (self.oc, batch * ohw),
            (false, false) => (self.oc, ohw),
        };
        // Strides other than those of `bands`: a large sample splits in two halves of its
        // output channels (or rows of pixels) on two threads where worth it (`split`), each
        // padding the sample into memory of its own: the helper's after the weight, where
        // `forward_scratch_len` leaves room (the backward pass's scratch, which calls this for
        // the input gradient, has none; neither split then).
        let split = rest.len() >= self.padded_len() && split::worth(self.macs(), rows);
        if !split {
            zero(pad);
        }
        for b in 0..batch {
            let c = if straight { &mut y[b * ohw..] } else { &mut *out };
            if split {
                let spare = &mut rest[..self.padded_len()];
                split::halves(rows, stride, c, [&mut *pad, spare], |rows, c, pad| {
                    zero(pad);
                    self.pad_sample(x, layout, batch, b, pad);
                    product(b, rows, c, pad)
                });
            } else {
                self.pad_sample(x, layout, batch, b, pad);
                product(b, 0..rows, c, pad);
            }
            if by_pixels {
                transpose(ohw, self.oc, Mat::rows(out, self.oc), &mut y[b * ohw..], batch * ohw);
                self.finish_sample(batch, b, bias, then, y);
            } else if !straight {
                self.write_sample(batch, b, out, bias, then, y);
            }
        }
    }

    /// Adds the bias to sample `b`'s planes of the channel-major output `y`, in place, and
    /// applies what `then` says.
    fn finish_sample(&self, batch: usize, b: usize, bias: Option<&[f32]>, then: Then, y: &mut [f32]) {
        let ohw = self.oh * self.ow;
        if bias.is_none() && then == Then::Nothing {
            return;
        }
        for o in 0..self.oc {
            let at = (o * batch + b) * ohw;
            let bias = bias.map_or(0.0, |bias| bias[o]);
            then.write(&mut y[at..][..ohw], None, bias, at);
        }
    }

    /// The backward pass that reads the input in place ([`in_place`](Self::in_place)): stride
    /// 1, or strided from phase images, whose input gradient is summed phase by phase and then
    /// interleaved into `dx`. Accumulates into `dweight` and, when given, overwrites `dx`.
    /// With `relu = Some((y, dbias))` the layer is `relu(conv(x))` with output `y`: the output
    /// gradient is masked sample by sample, and the bias gradient (zeroed by the caller) summed
    /// from the masked one.
    #[allow(clippy::too_many_arguments)]
    fn backward_direct(
        &self,
        batch: usize,
        x: &[f32],
        layout: Layout,
        weight: &[f32],
        relu: Option<(&[f32], &mut [f32])>,
        dy: &[f32],
        dweight: &mut [f32],
        mut dx: Option<&mut [f32]>,
        scratch: &mut [f32],
    ) {
        let [gh, gw] = self.grid();
        let plane = gh * gw;
        let (k, taps, ohw, n) = (self.patch_len(), self.kh * self.kw, self.oh * self.ow, self.wide_len());
        let (pad, rest) = scratch.split_at_mut(self.padded_len());
        let (dpad, rest) = rest.split_at_mut(self.padded_len());
        let (dyw, rest) = rest.split_at_mut(self.oc * n);
        // The output gradient pixel-major, and the weight gradient transposed, for the weight
        // gradient by taps.
        let (dyt, rest) = rest.split_at_mut(self.out_len());
        let (dym, rest) = rest.split_at_mut(self.out_len());
        let (dwt, rest) = rest.split_at_mut(self.weight_len());
        let mut relu = relu;
        // Rows of the input gradient's columns: a left margin as long as the farthest tap
        // reaches, then a phase image's length.
        let (margin, row) = (self.grad_margin(), self.grad_row());
        let dcols = &mut rest[..k * row];
        let by_taps = self.dweight_by_taps();
        // The input gradient of a channel-major input, without a ReLU's mask, as the forward
        // pass of the output gradient through the flipped kernels, after the samples' weight
        // gradients; otherwise as columns per sample, below.
        let flipped = relu.is_none() && layout == Layout::ChannelMajor && self.flips();
        zero(pad);
        zero(dyw);
        zero(dwt);
        if dx.is_some() && !flipped {
            zero(dcols);
        }
        let mut table = [0; TAPS];
        let chunk = self.tap_table(plane, gw, self.c, &mut table);
        // Where tap t's window starts in its row of dcols, for a channel's taps, grouped by the
        // phase image the tap reads (one group at stride 1): phase p's are
        // `starts[bounds[p]..bounds[p + 1]]`.
        let phases = self.sh * self.sw;
        let (mut starts, mut bounds) = ([0; TAPS], [0; TAPS + 1]);
        for p in 0..phases {
            let mut filled = bounds[p];
            for t in (0..taps).filter(|&t| table[t] / (self.c * plane) == p) {
                starts[filled] = t * row + margin - table[t] % (self.c * plane);
                filled += 1;
            }
            bounds[p + 1] = filled;
        }
        for b in 0..batch {
            self.pad_sample(x, layout, batch, b, pad);
            // This sample's output gradient: OC rows of OH*OW, `ld` apart; after a ReLU, zero
            // where its output is.
            let (dyb, ld) = match relu.as_mut() {
                None => (&dy[b * ohw..], batch * ohw),
                Some((y, dbias)) => {
                    for (o, m) in dym.chunks_exact_mut(ohw).enumerate() {
                        let at = (o * batch + b) * ohw;
                        for ((m, &g), &v) in m.iter_mut().zip(&dy[at..][..ohw]).zip(&y[at..][..ohw]) {
                            *m = if v > 0.0 { g } else { 0.0 };
                        }
                        // No bias, no bias gradient.
                        if let Some(db) = dbias.get_mut(o) {
                            *db += sum(m);
                        }
                    }
                    (&dym[..], ohw)
                }
            };
            // The wide output gradient serves the dot-product weight gradient and the input
            // gradient.
            for o in (0..self.oc).filter(|_| !by_taps || (dx.is_some() && !flipped)) {
                let g = &dyb[o * ld..][..ohw];
                for (i, g) in g.chunks_exact(self.ow).enumerate() {
                    dyw[o * n + i * gw..][..self.ow].copy_from_slice(g);
                }
            }
            if by_taps {
                transpose(self.oc, ohw, Mat::rows(dyb, ld), dyt, self.oc);
                // dweight^T [C*KH*KW, OC] += taps [C*KH*KW, OH*OW] x dy_b^T [OH*OW, OC].
                for c0 in (0..self.c).step_by(chunk) {
                    let cc = chunk.min(self.c - c0);
                    let a = Gathered::new(&pad[c0 * plane..], &table[..cc * taps]).image(self.ow, gw);
                    let (dy, out) = (Mat::rows(dyt, self.oc), &mut dwt[c0 * taps * self.oc..]);
                    gather_rows_gemm(cc * taps, ohw, self.oc, a, dy, out, self.oc, Store::Accumulate);
                }
            } else {
                // dweight [OC, C*KH*KW] += dy_wide [OC, N] x taps^T; the wide columns past OW
                // are zero in dy_wide, so they add nothing.
                for c0 in (0..self.c).step_by(chunk) {
                    let cc = chunk.min(self.c - c0);
                    let views = Gathered::new(&pad[c0 * plane..], &table[..cc * taps]);
                    let out = &mut dweight[c0 * taps..];
                    gather_gemm_nt(
                        self.oc,
                        cc * taps,
                        n,
                        Mat::rows(dyw, n),
                        views,
                        out,
                        k,
                        Store::Accumulate,
                    );
                }
            }
            let Some(dx) = dx.as_deref_mut().filter(|_| !flipped) else {
                continue;
            };
            // dcols [C*KH*KW, N] = weight^T [C*KH*KW, OC] x dy_wide [OC, N], each row between
            // zero margins; then each pixel of the padded input gradient sums the taps that read
            // it: tap (u, v) of channel c at pixel q is dcols[c, u, v][q - u*WP - v].
            let dc = &mut dcols[margin..];
            small_gemm(
                k,
                self.oc,
                n,
                Mat::transposed(weight, k),
                Mat::rows(dyw, n),
                dc,
                row,
                Store::Overwrite,
            );
            for (at, out) in dpad.chunks_exact_mut(plane).enumerate() {
                // Phase image `at / C` of channel `at % C`.
                let (p, ch) = (at / self.c, at % self.c);
                let group = &starts[bounds[p]..bounds[p + 1]];
                sum_shifted(&dcols[ch * taps * row..], group, out);
            }
            self.unpad_sample(dpad, layout, batch, b, dx);
        }
        if by_taps {
            // dweight was zeroed by the caller: the transpose is the whole gradient.
            transpose(k, self.oc, Mat::rows(dwt, self.oc), dweight, k);
        }
        if let Some(dx) = dx.filter(|_| flipped) {
            // dx [C, batch, H, W] = conv(dy, kernels (o, c) turned by 180 degrees as (c, o)).
            let (flip, rest) = scratch.split_at_mut(self.weight_len());
            self.flip_kernels(weight, flip);
            let back = self.input_grad_conv();
            back.forward_direct(
                batch,
                dy,
                Layout::ChannelMajor,
                Weight::Rows(flip),
                None,
                dx,
                rest,
                Then::Nothing,
            );
        }
    }

    /// Whether the input gradient can be computed as the forward pass of a stride-1
    /// convolution of the output gradient ([`input_grad_conv`](Self::input_grad_conv)): a
    /// stride-1 layer with a padding smaller than the kernel. That pass multiplies with
    /// `OC*KH*KW` terms per output rather than the columns' `OC`, and writes no columns to sum
    /// back.
    const fn flips(&self) -> bool {
        self.direct() && self.ph < self.kh && self.pw < self.kw
    }

    /// The convolution whose forward pass is this stride-1 layer's input gradient: from the
    /// output gradient `[OC, OH, OW]` to `[C, H, W]`, the kernels flipped ([`flip_kernels`](
    /// Self::flip_kernels)), padding `KH-1-PH`, `KW-1-PW`.
    const fn input_grad_conv(&self) -> Conv2d {
        Conv2d {
            c: self.oc,
            h: self.oh,
            w: self.ow,
            oc: self.c,
            ph: self.kh - 1 - self.ph,
            pw: self.kw - 1 - self.pw,
            oh: self.h,
            ow: self.w,
            bias: false,
            ..*self
        }
    }

    /// `flip[c, o, u, v] = weight[o, c, KH-1-u, KW-1-v]`: the kernels of
    /// [`input_grad_conv`](Self::input_grad_conv).
    fn flip_kernels(&self, weight: &[f32], flip: &mut [f32]) {
        let taps = self.kh * self.kw;
        for (o, kernels) in weight.chunks_exact(self.c * taps).enumerate() {
            for (c, kernel) in kernels.chunks_exact(taps).enumerate() {
                let to = &mut flip[(c * self.oc + o) * taps..][..taps];
                for (t, &w) in to.iter_mut().rev().zip(kernel) {
                    *t = w;
                }
            }
        }
    }

    /// The output columns `j` whose input column `j*sw + v - pw` lies inside the image, for
    /// kernel column `v`: `lo..hi` (empty when none does).
    #[inline]
    fn valid_cols(&self, v: usize) -> (usize, usize) {
        // j*sw + v >= pw  <=>  j >= ceil((pw - v) / sw)
        let lo = self.pw.saturating_sub(v).div_ceil(self.sw);
        // j*sw + v - pw <= w - 1  <=>  j <= (w - 1 + pw - v) / sw
        let hi = match (self.w + self.pw).checked_sub(v + 1) {
            Some(top) => (top / self.sw + 1).min(self.ow),
            None => 0,
        };
        (lo.min(hi), hi)
    }

    /// Walks the unfolding of one sample: for each channel `ch` and kernel tap `(u, v)`, each
    /// output row `i`, calls `f(ch, at, src)`, where `at` is where the `OW` columns of that row
    /// start in `cols: [C*KH*KW, OH*OW]` and `src`, when the input row `i*sh + u - ph` lies in
    /// the image, is `(r, lo, hi, first)`: input row `r`, the output columns `lo..hi` that fall
    /// inside the image, and the input column of output column `lo`. The one definition of the
    /// layout that [`im2col`](Self::im2col) and its adjoint share.
    #[inline(always)]
    fn walk(&self, mut f: impl FnMut(usize, usize, Option<(usize, usize, usize, usize)>)) {
        let ohw = self.oh * self.ow;
        for ch in 0..self.c {
            for u in 0..self.kh {
                for v in 0..self.kw {
                    let row = ((ch * self.kh + u) * self.kw + v) * ohw;
                    let (lo, hi) = self.valid_cols(v);
                    for i in 0..self.oh {
                        // Input row i*sh + u - ph; outside the image it is padding.
                        let r = (i * self.sh + u).wrapping_sub(self.ph);
                        let src = (r < self.h).then(|| (r, lo, hi, lo * self.sw + v - self.pw));
                        f(ch, row + i * self.ow, src);
                    }
                }
            }
        }
    }

    fn check_unfold(&self, what: &str, x: usize, batch: usize, b: usize, cols: usize) {
        assert_eq!(
            x,
            batch * self.in_len(),
            "conv2d: {what} must hold batch*C*H*W = {batch}*{} elements, got {x}",
            self.in_len()
        );
        assert!(b < batch, "conv2d: sample {b} of a batch of {batch}");
        assert_eq!(
            cols,
            self.cols_len(),
            "conv2d: cols must hold C*KH*KW*OH*OW = {} elements, got {cols}",
            self.cols_len()
        );
    }

    /// Whether the kernel is 1x1 without padding (a ResNet's strided shortcut), which picks
    /// pixels: every output pixel reads one, with no padding to fill and one row of `cols` a
    /// channel.
    const fn picks(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.ph == 0 && self.pw == 0
    }

    /// [`im2col`](Self::im2col) of a layer that [`picks`](Self::picks), for output rows `rows`
    /// only: `cols [C, rows.len() * OW]`.
    fn pick_rows(&self, x: &[f32], layout: Layout, batch: usize, b: usize, cols: &mut [f32], rows: Range<usize>) {
        let (hw, w, sw) = (self.h * self.w, self.w, self.sw);
        let n = rows.len() * self.ow;
        for (ch, out) in cols[..self.c * n].chunks_exact_mut(n).enumerate() {
            let plane = &x[layout.plane(ch, b, self.c, batch) * hw..][..hw];
            for (i, out) in rows.clone().zip(out.chunks_exact_mut(self.ow)) {
                // The row's pixels up to its last one read, so that the compiler drops the
                // bounds checks; stride 2 as a constant, which it vectorizes.
                let src = &plane[i * self.sh * w..][..(self.ow - 1) * sw + 1];
                if sw == 2 {
                    for (j, o) in out.iter_mut().enumerate() {
                        *o = src[2 * j];
                    }
                } else {
                    for (j, o) in out.iter_mut().enumerate() {
                        *o = src[j * sw];
                    }
                }
            }
        }
    }

    /// Unfolds sample `b` of a batch `x` (in `layout`) into `cols: [C*KH*KW, OH*OW]`; padding
    /// reads as zero.
    ///
    /// # Panics
    ///
    /// If `x` does not hold the batch, `b >= batch`, or `cols` is not `cols_len()` long.
    pub fn im2col(&self, x: &[f32], layout: Layout, batch: usize, b: usize, cols: &mut [f32]) {
        self.check_unfold("input", x.len(), batch, b, cols.len());
        let (hw, w, sw) = (self.h * self.w, self.w, self.sw);
        if self.picks() {
            return self.pick_rows(x, layout, batch, b, cols, 0..self.oh);
        }
        self.walk(|ch, at, src| {
            let out = &mut cols[at..][..self.ow];
            let Some((r, lo, hi, first)) = src else {
                out.fill(0.0);
                return;
            };
            out[..lo].fill(0.0);
            out[hi..].fill(0.0);
            let src = &x[layout.plane(ch, b, self.c, batch) * hw + r * w..][..w];
            if sw == 1 {
                out[lo..hi].copy_from_slice(&src[first..first + (hi - lo)]);
            } else if hi > lo {
                // Indexed rather than `step_by`, whose length takes a division per row; stride 2
                // (ResNets' downsampling) as a constant, which the compiler vectorizes.
                let src = &src[first..=first + (hi - lo - 1) * sw];
                if sw == 2 {
                    for (o, pair) in out[lo..hi].iter_mut().zip(src.chunks(2)) {
                        *o = pair[0];
                    }
                } else {
                    for (j, o) in out[lo..hi].iter_mut().enumerate() {
                        *o = src[j * sw];
                    }
                }
            }
        });
    }

    /// Folds `cols: [C*KH*KW, OH*OW]` back onto sample `b` of `dx` (in `layout`), adding: the
    /// adjoint of [`im2col`](Self::im2col). Entries that fell on padding are dropped.
    ///
    /// # Panics
    ///
    /// As [`im2col`](Self::im2col).
    pub fn col2im_add(&self, cols: &[f32], layout: Layout, batch: usize, b: usize, dx: &mut [f32]) {
        self.check_unfold("dx", dx.len(), batch, b, cols.len());
        let (hw, w, sw) = (self.h * self.w, self.w, self.sw);
        self.walk(|ch, at, src| {
            let Some((r, lo, hi, first)) = src else { return };
            let src = &cols[at + lo..at + hi];
            let dst = &mut dx[layout.plane(ch, b, self.c, batch) * hw + r * w..][..w];
            if sw == 1 {
                dst[first..first + (hi - lo)]
                    .iter_mut()
                    .zip(src)
                    .for_each(|(d, g)| *d += g);
            } else if hi > lo {
                let dst = &mut dst[first..=first + (hi - lo - 1) * sw];
                for (j, g) in src.iter().enumerate() {
                    dst[j * sw] += g;
                }
            }
        });
    }

    /// `y = conv(x, weight) + bias` for a batch.
    ///
    /// `x`: the batch, `[batch, C, H, W]` or `[C, batch, H, W]` as `layout` says; `params`:
    /// weight then bias; `y`: the output, channel-major `[OC, batch, OH, OW]`; `scratch`: at
    /// least `cols_len()` elements.
    ///
    /// # Panics
    ///
    /// If a slice has the wrong length; the message gives the expected and the actual one.
    pub fn forward(&self, batch: usize, x: &[f32], layout: Layout, params: &[f32], y: &mut [f32], scratch: &mut [f32]) {
        let params = Params::Declared(params);
        self.forward_by(
            self.forward_route(),
            Then::Nothing,
            batch,
            x,
            layout,
            params,
            y,
            scratch,
        )
    }

    /// `y = max(0, conv(x, weight) + bias)`: [`forward`](Self::forward) and a ReLU, which a
    /// stride-1 convolution applies to each sample's output while it is still in cache.
    ///
    /// # Panics
    ///
    /// As [`forward`](Self::forward).
    ///
    /// ```
    /// use cnn_runtime::{conv::Conv2d, layout::Layout};
    /// const G: Conv2d = Conv2d::new([1, 3, 3], 1, [2, 2], [1, 1], [0, 0], false);
    /// let x = [1.0, -2.0, 3.0, -4.0, 5.0, -6.0, 7.0, -8.0, 9.0];
    /// let mut scratch = vec![0.0; G.forward_scratch_len()];
    /// let (mut y, mut r) = ([0.0; 4], [0.0; 4]);
    /// let w = [1.0, 0.0, 0.0, -1.0]; // each window's top left minus its bottom right
    /// G.forward(1, &x, Layout::SampleMajor, &w, &mut y, &mut scratch);
    /// G.forward_relu(1, &x, Layout::SampleMajor, &w, &mut r, &mut scratch);
    /// assert_eq!(y, [-4.0, 4.0, 4.0, -4.0]);
    /// assert_eq!(r, [0.0, 4.0, 4.0, 0.0]);
    /// ```
    pub fn forward_relu(
        &self,
        batch: usize,
        x: &[f32],
        layout: Layout,
        params: &[f32],
        y: &mut [f32],
        scratch: &mut [f32],
    ) {
        let params = Params::Declared(params);
        self.forward_by(self.forward_route(), Then::Relu, batch, x, layout, params, y, scratch)
    }

    /// `then(batchnorm(conv(x)))` at inference, in one pass: an eval-mode `BatchNorm2d` of
    /// the output channels folded into the convolution (`weight * scale` and
    /// `bias * scale + shift` per output channel, [`BatchNorm::eval_affine`]), then what `then`
    /// says (a BatchNorm [`with_relu`](BatchNorm::with_relu) applies its ReLU, and then
    /// `then` must be `Nothing` or `Relu`). `bn_params` and `running` are the BatchNorm's
    /// parameters and buffers; `scratch`
    /// needs [`folded_scratch_len`](Self::folded_scratch_len) elements. Equal to the two
    /// layers one after the other up to rounding.
    ///
    /// # Panics
    ///
    /// As [`forward`](Self::forward), if the BatchNorm does not have one channel of `OH*OW`
    /// elements per output channel or its slices have the wrong lengths, or if it has a ReLU
    /// and `then` a residual sum.
    ///
    /// ```
    /// use cnn_runtime::{batchnorm::BatchNorm, conv::{Conv2d, Then}, layout::Layout};
    /// const G: Conv2d = Conv2d::new([1, 2, 2], 1, [1, 1], [1, 1], [0, 0], false);
    /// const BN: BatchNorm = BatchNorm::new(1, 4, 0.0, 0.1, true);
    /// // conv: y = 2x; BatchNorm: (y - 1) / sqrt(4) * 3 + 0.5; then ReLU.
    /// let (w, bn_params, running) = ([2.0], [3.0, 0.5], [1.0, 4.0]);
    /// let mut y = [0.0; 4];
    /// let mut scratch = vec![0.0; G.folded_scratch_len()];
    /// G.forward_batchnorm(1, &[1.0, -1.0, 0.0, 2.0], Layout::SampleMajor, &w, &BN, &bn_params, &running, Then::Relu, &mut y, &mut scratch);
    /// assert_eq!(y, [2.0, 0.0, 0.0, 5.0]);
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn forward_batchnorm(
        &self,
        batch: usize,
        x: &[f32],
        layout: Layout,
        params: &[f32],
        bn: &BatchNorm,
        bn_params: &[f32],
        running: &[f32],
        then: Then,
        y: &mut [f32],
        scratch: &mut [f32],
    ) {
        let (prepared, scratch) =
            self.prepare_in(scratch, |p| self.prepare_batchnorm(params, bn, bn_params, running, p));
        // A BatchNorm with its ReLU ([`BatchNorm::with_relu`]) has nothing after it.
        let then = match then {
            Then::Nothing if bn.relu => Then::Relu,
            then => {
                assert!(
                    !bn.relu || then == Then::Relu,
                    "conv2d: a BatchNorm with a ReLU can only be followed by nothing or a ReLU, got {then:?}"
                );
                then
            }
        };
        self.forward_prepared(batch, x, layout, prepared, then, y, scratch)
    }

    /// Elements of the parameters [`prepare_batchnorm`](Self::prepare_batchnorm) and
    /// [`prepare`](Self::prepare) write: a weight, then a bias of `OC`, then, for a layer
    /// inference computes by Winograd's algorithm ([`winograd`](Self::winograd)), its
    /// transformed weight, `16 x OC x C`.
    ///
    /// ```
    /// use cnn_runtime::conv::Conv2d;
    /// let g = Conv2d::new([3, 8, 8], 4, [3, 3], [1, 1], [1, 1], false);
    /// assert_eq!(g.prepared_len(), 4 * 3 * 9 + 4);
    /// let w = Conv2d::new([16, 8, 8], 32, [3, 3], [1, 1], [1, 1], false);
    /// assert_eq!(w.prepared_len(), 32 * 16 * 9 + 32 + 16 * 32 * 16);
    /// ```
    pub const fn prepared_len(&self) -> usize {
        let winograd = if self.winograd() { self.tiles().u_len() } else { 0 };
        self.weight_len() + self.oc + winograd
    }

    /// The parameters of `batchnorm(conv(x))` at inference as one convolution reads them
    /// ([`forward_prepared`](Self::forward_prepared)), into `prepared`
    /// ([`prepared_len`](Self::prepared_len) long): the eval-mode BatchNorm folded into the
    /// weight and bias (`weight * scale`, `bias * scale + shift` per output channel,
    /// [`BatchNorm::eval_affine`]), the weight laid out as the forward pass multiplies it.
    /// What [`forward_batchnorm`](Self::forward_batchnorm) does on every call, done once: a
    /// network keeps them until its parameters or buffers change.
    ///
    /// # Panics
    ///
    /// If the BatchNorm does not have one channel of `OH*OW` elements per output channel, or a
    /// slice has the wrong length.
    ///
    /// ```
    /// use cnn_runtime::{batchnorm::BatchNorm, conv::{Conv2d, Then}, layout::Layout};
    /// const G: Conv2d = Conv2d::new([1, 2, 2], 1, [1, 1], [1, 1], [0, 0], false);
    /// const BN: BatchNorm = BatchNorm::new(1, 4, 0.0, 0.1, true);
    /// // conv: y = 2x; BatchNorm: (y - 1) / sqrt(4) * 3 + 0.5 = 3x - 1.
    /// let mut prepared = [0.0; 2];
    /// G.prepare_batchnorm(&[2.0], &BN, &[3.0, 0.5], &[1.0, 4.0], &mut prepared);
    /// assert_eq!(prepared, [3.0, -1.0]);
    /// let mut y = [0.0; 4];
    /// let mut scratch = vec![0.0; G.forward_scratch_len()];
    /// G.forward_prepared(1, &[1.0, -1.0, 0.0, 2.0], Layout::SampleMajor, &prepared, Then::Relu, &mut y, &mut scratch);
    /// assert_eq!(y, [2.0, 0.0, 0.0, 5.0]);
    /// ```
    pub fn prepare_batchnorm(
        &self,
        params: &[f32],
        bn: &BatchNorm,
        bn_params: &[f32],
        running: &[f32],
        prepared: &mut [f32],
    ) {
        assert!(
            bn.c == self.oc && bn.plane == self.oh * self.ow,
            "conv2d: a BatchNorm of {} channels of {} must follow {} output channels of {}x{}",
            bn.c,
            bn.plane,
            self.oc,
            self.oh,
            self.ow
        );
        self.prepare_affine(params, |o| bn.eval_affine(bn_params, running, o), prepared);
    }

    /// The parameters of the convolution alone at inference as
    /// [`forward_prepared`](Self::forward_prepared) reads them, into `prepared`
    /// ([`prepared_len`](Self::prepared_len) long): the weight laid out as the forward pass
    /// multiplies it, the bias (zeros without one), and Winograd's transformed weight where
    /// the layer takes it. Worth it where [`prepares`](Self::prepares) says.
    ///
    /// # Panics
    ///
    /// If a slice has the wrong length.
    ///
    /// ```
    /// use cnn_runtime::{conv::{Conv2d, Then}, layout::Layout};
    /// const G: Conv2d = Conv2d::new([1, 2, 2], 1, [1, 1], [1, 1], [0, 0], true);
    /// let mut prepared = [0.0; 2];
    /// G.prepare(&[2.0, -1.0], &mut prepared); // y = 2x - 1
    /// let mut y = [0.0; 4];
    /// let mut scratch = vec![0.0; G.forward_scratch_len()];
    /// G.forward_prepared(1, &[1.0, 0.0, 0.25, 2.0], Layout::SampleMajor, &prepared, Then::Relu, &mut y, &mut scratch);
    /// assert_eq!(y, [1.0, 0.0, 0.0, 3.0]);
    /// ```
    pub fn prepare(&self, params: &[f32], prepared: &mut [f32]) {
        self.prepare_affine(params, |_| (1.0, 0.0), prepared);
    }

    /// `then(conv(x))` as [`forward_prepared`](Self::forward_prepared) computes it from what
    /// [`prepare`](Self::prepare) writes, preparing the parameters in `scratch` on the way:
    /// the same bits, for a call that has nowhere to keep them. `scratch` needs
    /// [`folded_scratch_len`](Self::folded_scratch_len) elements.
    ///
    /// # Panics
    ///
    /// As [`forward`](Self::forward), and if `scratch` is shorter than that.
    ///
    /// ```
    /// use cnn_runtime::{conv::{Conv2d, Then}, layout::Layout};
    /// const G: Conv2d = Conv2d::new([1, 2, 2], 1, [1, 1], [1, 1], [0, 0], true);
    /// let (params, x) = ([2.0, -1.0], [1.0, 0.0, 0.25, 2.0]); // y = 2x - 1
    /// let mut y = [0.0; 4];
    /// let mut scratch = vec![0.0; G.folded_scratch_len()];
    /// G.forward_as_prepared(1, &x, Layout::SampleMajor, &params, Then::Relu, &mut y, &mut scratch);
    /// assert_eq!(y, [1.0, 0.0, 0.0, 3.0]);
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn forward_as_prepared(
        &self,
        batch: usize,
        x: &[f32],
        layout: Layout,
        params: &[f32],
        then: Then,
        y: &mut [f32],
        scratch: &mut [f32],
    ) {
        let (prepared, scratch) = self.prepare_in(scratch, |p| self.prepare(params, p));
        self.forward_prepared(batch, x, layout, prepared, then, y, scratch)
    }

    /// `scratch` ([`folded_scratch_len`](Self::folded_scratch_len) at least) as the prepared
    /// parameters, which `prepare` writes, and the forward pass's scratch after them.
    ///
    /// # Panics
    ///
    /// If `scratch` is shorter.
    fn prepare_in<'s>(&self, scratch: &'s mut [f32], prepare: impl FnOnce(&mut [f32])) -> (&'s [f32], &'s mut [f32]) {
        assert!(
            scratch.len() >= self.folded_scratch_len(),
            "conv2d: scratch must hold at least {} elements, got {}",
            self.folded_scratch_len(),
            scratch.len()
        );
        let (prepared, scratch) = scratch.split_at_mut(self.prepared_len());
        prepare(prepared);
        (prepared, scratch)
    }

    /// Whether inference gains by preparing this layer's parameters alone
    /// ([`prepare`](Self::prepare)): where its forward pass reads the weight transposed or
    /// by Winograd's algorithm, which [`forward`](Self::forward) lays out on every call.
    ///
    /// ```
    /// use cnn_runtime::conv::Conv2d;
    /// // A 3x3 layer of 32 channels goes by Winograd; LeNet-5's first layer reads its weight
    /// // as declared.
    /// assert!(Conv2d::new([32, 16, 16], 32, [3, 3], [1, 1], [1, 1], false).prepares());
    /// assert!(!Conv2d::new([1, 28, 28], 6, [5, 5], [1, 1], [2, 2], true).prepares());
    /// ```
    pub fn prepares(&self) -> bool {
        self.winograd() || self.transposed_weight()
    }

    /// [`prepare_batchnorm`](Self::prepare_batchnorm) and [`prepare`](Self::prepare): the
    /// convolution with output channel `o` scaled and shifted by `affine(o) = (scale, shift)`.
    fn prepare_affine(&self, params: &[f32], affine: impl Fn(usize) -> (f32, f32), prepared: &mut [f32]) {
        assert_eq!(
            params.len(),
            self.param_len(),
            "conv2d: params must hold {} elements, got {}",
            self.param_len(),
            params.len()
        );
        assert_eq!(
            prepared.len(),
            self.prepared_len(),
            "conv2d: prepared must hold weight and OC biases = {} elements, got {}",
            self.prepared_len(),
            prepared.len()
        );
        let (k, oc) = (self.patch_len(), self.oc);
        let weight = &params[..self.weight_len()];
        let (fw, rest) = prepared.split_at_mut(self.weight_len());
        let (fb, u) = rest.split_at_mut(oc);
        // The channels' scales, where the biases go after.
        for (o, s) in fb.iter_mut().enumerate() {
            *s = affine(o).0;
        }
        if self.transposed_weight() {
            // weight^T [K, OC], each row times the channels' scales.
            transpose(oc, k, Mat::rows(weight, k), fw, oc);
            for row in fw.chunks_exact_mut(oc) {
                row.iter_mut().zip(&*fb).for_each(|(f, &scale)| *f *= scale);
            }
        } else {
            for ((to, from), &scale) in fw.chunks_exact_mut(k).zip(weight.chunks_exact(k)).zip(&*fb) {
                to.iter_mut().zip(from).for_each(|(f, &w)| *f = w * scale);
            }
        }
        if self.winograd() {
            // Winograd's transform of the declared kernels, `[16, OC, C]`, each output
            // channel's times its scale (the transform is linear).
            winograd::weights(self.tiles(), weight, u);
            for (i, row) in u.chunks_exact_mut(self.c).enumerate() {
                let scale = fb[i % oc];
                row.iter_mut().for_each(|v| *v *= scale);
            }
        }
        for (o, b) in fb.iter_mut().enumerate() {
            let (scale, shift) = affine(o);
            let bias = if self.bias { params[self.weight_len() + o] } else { 0.0 };
            *b = bias * scale + shift;
        }
    }

    /// `then(conv(x))` with the parameters [`prepare_batchnorm`](Self::prepare_batchnorm)
    /// or [`prepare`](Self::prepare) wrote: what [`forward_batchnorm`](Self::forward_batchnorm)
    /// and [`forward_as_prepared`](Self::forward_as_prepared) compute, without preparing
    /// them. `scratch` needs [`forward_scratch_len`](Self::forward_scratch_len) elements.
    ///
    /// # Panics
    ///
    /// As [`forward`](Self::forward), and if `prepared` is not
    /// [`prepared_len`](Self::prepared_len) long.
    ///
    /// ```
    /// use cnn_runtime::{batchnorm::BatchNorm, conv::{Conv2d, Then}, layout::Layout};
    /// const G: Conv2d = Conv2d::new([1, 2, 2], 1, [1, 1], [1, 1], [0, 0], false);
    /// const BN: BatchNorm = BatchNorm::new(1, 4, 0.0, 0.1, false); // mean 0, variance 1
    /// let mut prepared = [0.0; 2];
    /// G.prepare_batchnorm(&[-1.0], &BN, &[], &[0.0, 1.0], &mut prepared); // y = -x
    /// let shortcut = [1.0, 1.0, 1.0, 1.0];
    /// let mut y = [0.0; 4];
    /// let mut scratch = vec![0.0; G.forward_scratch_len()];
    /// G.forward_prepared(1, &[0.5, 2.0, -1.0, 0.0], Layout::SampleMajor, &prepared, Then::AddRelu(&shortcut), &mut y, &mut scratch);
    /// assert_eq!(y, [0.5, 0.0, 2.0, 1.0]); // relu(-x + 1)
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn forward_prepared(
        &self,
        batch: usize,
        x: &[f32],
        layout: Layout,
        prepared: &[f32],
        then: Then,
        y: &mut [f32],
        scratch: &mut [f32],
    ) {
        assert_eq!(
            prepared.len(),
            self.prepared_len(),
            "conv2d: prepared must hold {} elements (prepared_len), got {}",
            self.prepared_len(),
            prepared.len()
        );
        if self.winograd() && winograd::available() {
            self.check_forward(batch, x, y, scratch, self.forward_scratch_len(), then);
            let (rest, u) = prepared.split_at(self.weight_len() + self.oc);
            let bias = &rest[self.weight_len()..];
            return self.forward_winograd(batch, x, layout, u, bias, then, y, scratch);
        }
        let folded = Conv2d { bias: true, ..*self };
        let prepared = &prepared[..self.weight_len() + self.oc];
        let params = Params::Prepared(prepared);
        folded.forward_by(folded.forward_route(), then, batch, x, layout, params, y, scratch)
    }

    /// Whether [`prepare_batchnorm`](Self::prepare_batchnorm) lays the weight out transposed,
    /// `[C*KH*KW, OC]`: where the forward pass multiplies by pixels, which reads it so.
    fn transposed_weight(&self) -> bool {
        self.forward_route() == Route::Direct && self.by_pixels()
    }

    /// Scratch [`forward_batchnorm`](Self::forward_batchnorm) and
    /// [`forward_as_prepared`](Self::forward_as_prepared) need: the prepared parameters, and
    /// the forward pass's scratch.
    ///
    /// ```
    /// use cnn_runtime::conv::Conv2d;
    /// let g = Conv2d::new([3, 8, 8], 4, [3, 3], [1, 1], [1, 1], false);
    /// assert_eq!(g.folded_scratch_len(), g.weight_len() + 4 + g.forward_scratch_len());
    /// ```
    pub const fn folded_scratch_len(&self) -> usize {
        self.prepared_len() + self.forward_scratch_len()
    }

    /// Panics, naming the slice and both sizes, unless `x` holds `batch` inputs, `y` and the
    /// residual `then` adds (if any) `batch` outputs, and `scratch` at least `need` elements:
    /// what every forward route checks before it starts.
    fn check_forward(&self, batch: usize, x: &[f32], y: &[f32], scratch: &[f32], need: usize, then: Then) {
        assert_eq!(
            y.len(),
            batch * self.out_len(),
            "conv2d: output must hold batch*OC*OH*OW = {batch}*{} elements, got {}",
            self.out_len(),
            y.len()
        );
        assert!(
            scratch.len() >= need,
            "conv2d: scratch must hold at least {need} elements, got {}",
            scratch.len()
        );
        assert_eq!(
            x.len(),
            batch * self.in_len(),
            "conv2d: input must hold batch*C*H*W = {batch}*{} elements, got {}",
            self.in_len(),
            x.len()
        );
        if let Then::Add(r) | Then::AddRelu(r) = then {
            assert_eq!(
                r.len(),
                y.len(),
                "conv2d: the residual must hold as many elements as the output, {}, got {}",
                y.len(),
                r.len()
            );
        }
    }

    /// [`forward`](Self::forward) by `route` with the parameters as declared or as prepared,
    /// followed by what `then` says.
    #[allow(clippy::too_many_arguments)]
    fn forward_by(
        &self,
        route: Route,
        then: Then,
        batch: usize,
        x: &[f32],
        layout: Layout,
        params: Params,
        y: &mut [f32],
        scratch: &mut [f32],
    ) {
        let (params, transposed) = match params {
            Params::Declared(params) => (params, false),
            Params::Prepared(params) => (params, self.transposed_weight()),
        };
        let need = match route {
            Route::Direct => self.forward_scratch_len(),
            Route::Unfolded | Route::Packed => self.cols_len() + self.out_len(),
        };
        assert_eq!(
            params.len(),
            self.param_len(),
            "conv2d: params must hold {} elements, got {}",
            self.param_len(),
            params.len()
        );
        self.check_forward(batch, x, y, scratch, need, then);
        let (k, ohw) = (self.patch_len(), self.oh * self.ow);
        let (weight, bias) = params.split_at(self.weight_len());
        let bias = self.bias.then_some(bias);
        if route == Route::Direct {
            let weight = if transposed {
                Weight::Transposed(weight)
            } else {
                Weight::Rows(weight)
            };
            return self.forward_direct(batch, x, layout, weight, bias, y, scratch, then);
        }
        // A large sample of a layer that picks pixels splits in two bands of its output rows
        // on two threads where worth it (`split`), as in-place layers do (`forward_direct`):
        // each picks the pixels of its rows into memory of its own, the helper's after `cols`
        // and `out`, where `forward_scratch_len` leaves room.
        let band_len = self.cols_len() + self.out_len();
        let bands = route == Route::Unfolded && self.picks() && scratch.len() >= 2 * band_len;
        if bands && split::worth_from(split::MIN_UNFOLDED_MACS, self.macs(), self.oh) {
            return self.forward_bands(batch, scratch, band_len, bias, then, y, |b, rows, memory| {
                let n = rows.len() * self.ow;
                let (cols, band) = memory.split_at_mut(self.cols_len());
                self.pick_rows(x, layout, batch, b, cols, rows);
                let (w, cols) = (Mat::rows(weight, k), Mat::rows(cols, n));
                finished_gemm(self.oc, k, n, w, cols, band, n, Finish::NONE);
                self.cols_len()
            });
        }
        let (cols, rest) = scratch.split_at_mut(self.cols_len());
        let (out, rest) = rest.split_at_mut(self.out_len());
        // y_b [OC, OH*OW] = then(weight [OC, K] x cols [K, OH*OW] + bias).
        if route == Route::Packed {
            for b in 0..batch {
                self.im2col(x, layout, batch, b, cols);
                // matrixmultiply's product into `out`, in cache; then into y's planes.
                packed_gemm(self.oc, k, ohw, weight, cols, out);
                self.write_sample(batch, b, out, bias, then, y);
            }
            return;
        }
        // Output channels `rows` of sample `b`, unfolded into `cols`, straight to their planes
        // of y (`c` from the first on), finished as the kernel stores them.
        let ldy = batch * ohw;
        let product = |b: usize, rows: Range<usize>, c: &mut [f32], cols: &mut [f32]| {
            self.im2col(x, layout, batch, b, cols);
            let (w, cols) = (Mat::rows(&weight[rows.start * k..], k), Mat::rows(cols, ohw));
            let finish = then.finish(bias.map(|bias| &bias[rows.start..]), b * ohw + rows.start * ldy);
            finished_gemm(rows.len(), k, ohw, w, cols, c, ldy, finish);
        };
        // A large sample splits in two halves of its channels on two threads where worth it
        // (`split`), each unfolding the sample into memory of its own (the helper's after
        // `out`, where `forward_scratch_len` leaves room).
        let split = rest.len() >= self.cols_len() && split::worth_from(split::MIN_UNFOLDED_MACS, self.macs(), self.oc);
        for b in 0..batch {
            let c = &mut y[b * ohw..];
            if split {
                let spare = &mut rest[..self.cols_len()];
                split::halves(self.oc, ldy, c, [&mut *cols, spare], |rows, c, cols| {
                    product(b, rows, c, cols)
                });
            } else {
                product(b, 0..self.oc, c, cols);
            }
        }
    }

    /// Writes one sample's output `out` (`[OC, OH*OW]`, contiguous) to its planes of the
    /// channel-major `y`, adding the bias and applying what `then` says.
    fn write_sample(&self, batch: usize, b: usize, out: &[f32], bias: Option<&[f32]>, then: Then, y: &mut [f32]) {
        let ohw = self.oh * self.ow;
        for (o, src) in out.chunks_exact(ohw).enumerate() {
            let at = (o * batch + b) * ohw;
            let bias = bias.map_or(0.0, |bias| bias[o]);
            then.write(&mut y[at..][..ohw], Some(src), bias, at);
        }
    }

    /// Gradients of a batch: overwrites `dparams` (weight then bias, as `params`) with
    /// d loss / d params and, when `dx` is given, overwrites it with d loss / d x (in `layout`,
    /// the layout of `x`).
    ///
    /// `dy` is d loss / d y, channel-major `[OC, batch, OH, OW]`; `scratch` at least
    /// [`scratch_len`](Self::scratch_len) elements.
    ///
    /// # Panics
    ///
    /// If a slice has the wrong length; the message gives the expected and the actual one.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &self,
        batch: usize,
        x: &[f32],
        layout: Layout,
        params: &[f32],
        dy: &[f32],
        dparams: &mut [f32],
        dx: Option<&mut [f32]>,
        scratch: &mut [f32],
    ) {
        self.backward_by(self.route(), None, batch, x, layout, params, dy, dparams, dx, scratch)
    }

    /// The gradients of [`forward_relu`](Self::forward_relu), as [`backward`](Self::backward):
    /// `y` is its output and `dy` = d loss / d y; the ReLU's mask is applied sample by sample.
    ///
    /// # Panics
    ///
    /// As [`backward`](Self::backward), if `y` is not as long as `dy`, or if the layer is not
    /// [`direct`](Self::direct) (the generated code fuses a ReLU only into those).
    ///
    /// ```
    /// use cnn_runtime::{conv::Conv2d, layout::Layout};
    /// const G: Conv2d = Conv2d::new([1, 2, 2], 1, [1, 1], [1, 1], [0, 0], true);
    /// let (x, params) = ([1.0, -1.0, 2.0, -2.0], [1.0, 0.0]); // y = x, then ReLU
    /// let y = [1.0, 0.0, 2.0, 0.0];
    /// let mut dp = [0.0; 2];
    /// let mut dx = [0.0; 4];
    /// let mut scratch = vec![0.0; G.scratch_len()];
    /// G.backward_relu(1, &x, Layout::SampleMajor, &params, &y, &[1.0; 4], &mut dp, Some(&mut dx), &mut scratch);
    /// assert_eq!(dx, [1.0, 0.0, 1.0, 0.0]); // no gradient where the ReLU cut
    /// assert_eq!(dp, [1.0 - 0.0 + 2.0 + 0.0, 2.0]); // d/dw = sum of x where it passed; d/db = 2
    /// ```
    #[allow(clippy::too_many_arguments)]
    pub fn backward_relu(
        &self,
        batch: usize,
        x: &[f32],
        layout: Layout,
        params: &[f32],
        y: &[f32],
        dy: &[f32],
        dparams: &mut [f32],
        dx: Option<&mut [f32]>,
        scratch: &mut [f32],
    ) {
        assert!(
            self.direct(),
            "conv2d: backward_relu needs a stride-1 layer, got {self:?}"
        );
        assert_eq!(
            y.len(),
            dy.len(),
            "conv2d: y must hold as many elements as dy, {}, got {}",
            dy.len(),
            y.len()
        );
        self.backward_by(
            Route::Direct,
            Some(y),
            batch,
            x,
            layout,
            params,
            dy,
            dparams,
            dx,
            scratch,
        )
    }

    /// [`backward`](Self::backward) in place when [`in_place`](Self::in_place), by unfolding
    /// otherwise; with `relu_out`, that of [`backward_relu`](Self::backward_relu) (stride-1
    /// layers only).
    #[allow(clippy::too_many_arguments)]
    fn backward_by(
        &self,
        route: Route,
        relu_out: Option<&[f32]>,
        batch: usize,
        x: &[f32],
        layout: Layout,
        params: &[f32],
        dy: &[f32],
        dparams: &mut [f32],
        mut dx: Option<&mut [f32]>,
        scratch: &mut [f32],
    ) {
        let (k, ohw) = (self.patch_len(), self.oh * self.ow);
        assert_eq!(
            x.len(),
            batch * self.in_len(),
            "conv2d: input must hold batch*C*H*W = {batch}*{} elements, got {}",
            self.in_len(),
            x.len()
        );
        assert_eq!(
            params.len(),
            self.param_len(),
            "conv2d: params must hold {} elements, got {}",
            self.param_len(),
            params.len()
        );
        assert_eq!(
            dy.len(),
            batch * self.out_len(),
            "conv2d: dy must hold batch*OC*OH*OW = {batch}*{} elements, got {}",
            self.out_len(),
            dy.len()
        );
        assert_eq!(
            dparams.len(),
            self.param_len(),
            "conv2d: dparams must hold {} elements, got {}",
            self.param_len(),
            dparams.len()
        );
        let need = match route {
            Route::Direct => self.scratch_len(),
            Route::Unfolded | Route::Packed => 2 * self.cols_len() + self.out_len() + self.weight_len(),
        };
        assert!(
            scratch.len() >= need,
            "conv2d: scratch must hold at least {need} elements, got {}",
            scratch.len()
        );
        let weight = &params[..self.weight_len()];
        let (dweight, dbias) = dparams.split_at_mut(self.weight_len());
        dweight.fill(0.0);
        dbias.fill(0.0);
        if relu_out.is_none() {
            for (db, row) in dbias.iter_mut().zip(dy.chunks_exact(batch * ohw)) {
                *db = sum(row);
            }
        }
        if let Some(dx) = dx.as_deref_mut() {
            assert_eq!(
                dx.len(),
                x.len(),
                "conv2d: dx must hold {} elements, got {}",
                x.len(),
                dx.len()
            );
            zero(dx);
        }
        if route == Route::Direct {
            // Without a bias, the ReLU's masked bias gradient goes to an empty slice.
            let relu = relu_out.map(|y| (y, &mut dbias[..]));
            return self.backward_direct(batch, x, layout, weight, relu, dy, dweight, dx, scratch);
        }
        let (cols, rest) = scratch.split_at_mut(self.cols_len());
        let (dcols, rest) = rest.split_at_mut(self.cols_len());
        let (dyt, rest) = rest.split_at_mut(self.out_len());
        let dwt = &mut rest[..self.weight_len()];
        zero(dwt);
        for b in 0..batch {
            // This sample's output gradient: OC rows of OH*OW, batch*OH*OW apart.
            let dyb = Mat::rows(&dy[b * ohw..], batch * ohw);
            self.im2col(x, layout, batch, b, cols);
            if self.oc < WIDE_OC {
                // dweight [OC, K] += dy_b [OC, OH*OW] x cols^T [OH*OW, K]: with few output
                // channels, dot products along the long axis, OH*OW, fill the kernel best.
                small_gemm_nt(
                    self.oc,
                    k,
                    ohw,
                    dyb,
                    Mat::rows(cols, ohw),
                    dweight,
                    k,
                    Store::Accumulate,
                );
            } else {
                // dweight^T [K, OC] += cols [K, OH*OW] x dy_b^T [OH*OW, OC]: the register-blocked
                // kernel runs along K, with the output channels as its columns.
                for o in 0..self.oc {
                    for (q, &g) in dy[(o * batch + b) * ohw..][..ohw].iter().enumerate() {
                        dyt[q * self.oc + o] = g;
                    }
                }
                small_gemm(
                    k,
                    ohw,
                    self.oc,
                    Mat::rows(cols, ohw),
                    Mat::rows(dyt, self.oc),
                    dwt,
                    self.oc,
                    Store::Accumulate,
                );
            }
            if let Some(dx) = dx.as_deref_mut() {
                // dcols [K, OH*OW] = weight^T [K, OC] x dy_b [OC, OH*OW]
                small_gemm(
                    k,
                    self.oc,
                    ohw,
                    Mat::transposed(weight, k),
                    dyb,
                    dcols,
                    ohw,
                    Store::Overwrite,
                );
                self.col2im_add(dcols, layout, batch, b, dx);
            }
        }
        if self.oc >= WIDE_OC {
            for (kk, row) in dwt.chunks_exact(self.oc).enumerate() {
                for (o, &g) in row.iter().enumerate() {
                    dweight[o * k + kk] = g;
                }
            }
        }
    }
}

/// The larger of two sizes, in a constant expression.
const fn larger(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

/// `(&mut s[a..a + n], &mut s[b..b + n])` for ranges that do not overlap.
fn two_mut(s: &mut [f32], a: usize, b: usize, n: usize) -> (&mut [f32], &mut [f32]) {
    if a < b {
        let (lo, hi) = s.split_at_mut(b);
        (&mut lo[a..a + n], &mut hi[..n])
    } else {
        let (lo, hi) = s.split_at_mut(a);
        (&mut hi[..n], &mut lo[b..b + n])
    }
}

/// The parameters a forward pass reads.
#[derive(Clone, Copy, Debug)]
enum Params<'a> {
    /// As declared: weight `[OC, C*KH*KW]`, then the bias if the layer has one.
    Declared(&'a [f32]),
    /// As [`Conv2d::prepare_batchnorm`] writes them: a weight laid out as the forward route
    /// reads it ([`Conv2d::transposed_weight`]), then a bias.
    Prepared(&'a [f32]),
}

/// A weight as the in-place forward pass gets it.
#[derive(Clone, Copy, Debug)]
enum Weight<'a> {
    /// `[OC, C*KH*KW]`, as declared.
    Rows(&'a [f32]),
    /// `[C*KH*KW, OC]`, as the product by pixels reads it.
    Transposed(&'a [f32]),
}

/// How a convolution is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// Kernel taps read in place from a padded copy of each sample (its phase images when
    /// strided).
    Direct,
    /// Each sample unfolded into columns (im2col), then multiplied.
    Unfolded,
    /// Unfolded, then multiplied by matrixmultiply's packed sgemm (forward only, with std).
    Packed,
}

/// `out [M, N] = a [M, K] x b [K, N]`, all row-major and contiguous, by matrixmultiply (which
/// allocates its packing buffers on each call).
///
/// # Panics
///
/// If a slice is shorter than its matrix.
#[cfg(feature = "std")]
fn packed_gemm(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], out: &mut [f32]) {
    assert!(
        a.len() >= m * k && b.len() >= k * n && out.len() >= m * n,
        "packed_gemm: {m}x{k} times {k}x{n} into {m}x{n} needs {}, {} and {} elements, got {}, {} and {}",
        m * k,
        k * n,
        m * n,
        a.len(),
        b.len(),
        out.len()
    );
    // SAFETY: the three matrices are row-major with the strides given and lie inside their
    // slices (checked just above); `out` does not alias the others (a unique borrow).
    unsafe {
        let (rsa, rsb) = (k as isize, n as isize);
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa,
            1,
            b.as_ptr(),
            rsb,
            1,
            0.0,
            out.as_mut_ptr(),
            rsb,
            1,
        );
    }
}

/// Without std the route is never taken.
#[cfg(not(feature = "std"))]
fn packed_gemm(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], out: &mut [f32]) {
    small_gemm(m, k, n, Mat::rows(a, k), Mat::rows(b, n), out, n, Store::Overwrite)
}

/// What the forward pass applies to the convolution's output as it writes it
/// ([`Conv2d::forward_batchnorm`]): the ReLU, and a residual block's sum, done in the pass that
/// writes the output rather than in passes of their own.
///
/// ```
/// use cnn_runtime::{batchnorm::BatchNorm, conv::{Conv2d, Then}, layout::Layout};
/// const G: Conv2d = Conv2d::new([1, 1, 2], 1, [1, 1], [1, 1], [0, 0], false);
/// const BN: BatchNorm = BatchNorm::new(1, 2, 0.0, 0.1, false); // mean 0, variance 1: identity
/// let shortcut = [1.0, -5.0];
/// let mut y = [0.0; 2];
/// let mut scratch = vec![0.0; G.folded_scratch_len()];
/// // max(0, 2x + shortcut) for x = [1, 1].
/// G.forward_batchnorm(1, &[1.0, 1.0], Layout::SampleMajor, &[2.0], &BN, &[], &[0.0, 1.0], Then::AddRelu(&shortcut), &mut y, &mut scratch);
/// assert_eq!(y, [3.0, 0.0]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Then<'a> {
    /// Nothing: `y = conv(x) + bias`.
    Nothing,
    /// `y = max(0, conv(x) + bias)`.
    Relu,
    /// A residual block's sum: `y = (conv(x) + bias) + r`, for `r` as long as `y` and in its
    /// layout.
    Add(&'a [f32]),
    /// The sum, then a ReLU: `y = max(0, (conv(x) + bias) + r)`.
    AddRelu(&'a [f32]),
}

impl<'a> Then<'a> {
    /// What a kernel applies as it stores the output from element `at` on: `bias`, and the
    /// residual from the same element.
    pub(crate) fn finish(self, bias: Option<&'a [f32]>, at: usize) -> Finish<'a> {
        let (residual, relu) = match self {
            Then::Nothing => (None, false),
            Then::Relu => (None, true),
            Then::Add(r) => (Some(&r[at..]), false),
            Then::AddRelu(r) => (Some(&r[at..]), true),
        };
        Finish { bias, residual, relu }
    }

    /// Writes `dst = then(src + bias)` (`src` is `dst` itself when `None`), where `dst` starts
    /// at element `at` of the output.
    #[inline]
    fn write(self, dst: &mut [f32], src: Option<&[f32]>, bias: f32, at: usize) {
        let Finish { residual, relu, .. } = self.finish(None, at);
        let residual = residual.map(|r| &r[..dst.len()]);
        let f = |v: f32| if relu { v.max(0.0) } else { v };
        match (src, residual) {
            (Some(s), Some(r)) => dst
                .iter_mut()
                .zip(s)
                .zip(r)
                .for_each(|((d, s), r)| *d = f(s + bias + r)),
            (Some(s), None) => dst.iter_mut().zip(s).for_each(|(d, s)| *d = f(s + bias)),
            (None, Some(r)) => dst.iter_mut().zip(r).for_each(|(d, r)| *d = f(*d + bias + r)),
            (None, None) => dst.iter_mut().for_each(|d| *d = f(*d + bias)),
        }
    }
}

/// Fewest input and output channels of a layer that inference computes by Winograd's
/// F(2x2, 3x3) ([`Conv2d::winograd`]): all of ResNet-8's stride-1 3x3 layers. Through the
/// general matrix kernel, its 16-channel layers on 32x32 gained nothing (48-54 us a sample
/// against 46-54 directly; 32 channels on 16x16 38-40 against 46-49, 64 on 8x8 34-42 against
/// 49-56: a throwaway timing of 400 calls, AMD EPYC Zen 4); with the products' own kernel
/// (`winograd::Transforms::product`), ResNet-8's batch 1 went from 250.6 to 207.1 us and its batch
/// 64 from 3,889 to 4,681 img/s with the 16-channel layers in (`CNN_BENCH_CPU_TIME=1 cargo
/// run --release --example bench -- --net resnet8 --threads 1 --only b1|b64`, 5 and 4
/// interleaved rounds, medians, against the threshold at 32 with the general kernel).
///
/// ```
/// use cnn_runtime::conv::{Conv2d, WINOGRAD_CHANNELS};
/// let c = WINOGRAD_CHANNELS;
/// assert!(Conv2d::new([c, 8, 8], c, [3, 3], [1, 1], [1, 1], false).winograd());
/// ```
pub const WINOGRAD_CHANNELS: usize = 16;

/// Fewest samples a call of the forward pass from the declared weight (a training step's, and
/// the input gradient of a stride-1 layer, which is one) computes by Winograd's F(2x2, 3x3)
/// ([`Conv2d::winograd`]), transforming the weight on each call: inference, from prepared
/// parameters, transforms it once, and runs groups of 4 samples.
pub const WINOGRAD_BATCH: usize = 8;

/// Most kernel taps a table of the stride-1 path holds (a 22x22 kernel); larger kernels take the
/// unfolding path.
pub const TAPS: usize = 512;

/// From this many output channels on, the weight gradient is computed transposed, with the
/// channels as the columns of the register-blocked kernel (16 wide).
const WIDE_OC: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{assert_all_close, assert_grad_matches, seq};

    /// Direct definition: y[o,i,j] = b[o] + sum_{c,u,v} w[o,c,u,v] * xpad[c, i*sh+u, j*sw+v].
    fn naive(g: &Conv2d, x: &[f32], p: &[f32]) -> Vec<f32> {
        let mut y = vec![0.0; g.out_len()];
        for o in 0..g.oc {
            for i in 0..g.oh {
                for j in 0..g.ow {
                    let mut s = if g.bias { p[g.weight_len() + o] } else { 0.0 };
                    for c in 0..g.c {
                        for u in 0..g.kh {
                            for v in 0..g.kw {
                                let r = (i * g.sh + u) as isize - g.ph as isize;
                                let q = (j * g.sw + v) as isize - g.pw as isize;
                                if r >= 0 && q >= 0 && (r as usize) < g.h && (q as usize) < g.w {
                                    s += p[((o * g.c + c) * g.kh + u) * g.kw + v]
                                        * x[(c * g.h + r as usize) * g.w + q as usize];
                                }
                            }
                        }
                    }
                    y[(o * g.oh + i) * g.ow + j] = s;
                }
            }
        }
        y
    }

    // Through whichever route each layer takes (strided ones in place from phase images where
    // the kernel is no smaller than the stride). `DIRECT` below runs both routes, narrow and
    // wide (>= WIDE_OC) weight gradients of the unfolding one among them.
    const CASES: [Conv2d; 7] = [
        Conv2d::new([2, 6, 5], 17, [3, 2], [1, 1], [1, 0], true),
        Conv2d::new([1, 5, 5], 2, [3, 3], [1, 1], [0, 0], true),
        Conv2d::new([3, 7, 6], 4, [3, 5], [2, 2], [1, 1], true),
        Conv2d::new([2, 4, 5], 3, [2, 3], [1, 2], [2, 0], false),
        Conv2d::new([1, 1, 1], 1, [1, 1], [1, 1], [0, 0], true),
        // 1x1 kernels that skip pixels (a ResNet's shortcut unfolds), odd sizes.
        Conv2d::new([3, 7, 5], 4, [1, 1], [2, 2], [0, 0], true),
        Conv2d::new([2, 7, 8], 3, [1, 1], [3, 2], [0, 0], false),
    ];

    #[test]
    fn forward_matches_definition() {
        for g in CASES {
            let batch = 3;
            let x = seq(batch * g.in_len(), 0.3);
            let p = seq(g.param_len(), 0.7);
            let mut y = vec![f32::NAN; batch * g.out_len()];
            let mut cols = vec![0.0; g.forward_scratch_len()];
            g.forward(batch, &x, Layout::SampleMajor, &p, &mut y, &mut cols);
            // The output is channel-major: [OC, batch, OH*OW].
            let ohw = g.oh * g.ow;
            for b in 0..batch {
                let want = naive(&g, &x[b * g.in_len()..][..g.in_len()], &p);
                for o in 0..g.oc {
                    for q in 0..ohw {
                        let (a, w) = (y[(o * batch + b) * ohw + q], want[o * ohw + q]);
                        assert!((a - w).abs() < 1e-5, "{g:?}: {a} vs {w}");
                    }
                }
            }
            // The same batch given channel-major gives the same output.
            let mut xc = vec![0.0; x.len()];
            crate::layout::to_channel_major(g.c, batch, g.h * g.w, &x, &mut xc);
            let mut yc = vec![f32::NAN; y.len()];
            g.forward(batch, &xc, Layout::ChannelMajor, &p, &mut yc, &mut cols);
            assert_eq!(y, yc);
        }
    }

    #[test]
    fn backward_matches_central_differences() {
        for g in CASES {
            let batch = 2;
            let x = seq(batch * g.in_len(), 0.3);
            let p = seq(g.param_len(), 0.7);
            // Loss = sum(y * r) for a fixed r, so dy = r.
            let r = seq(batch * g.out_len(), 1.3);
            let loss = |x: &[f32], p: &[f32]| {
                let mut y = vec![0.0; batch * g.out_len()];
                g.forward(
                    batch,
                    x,
                    Layout::SampleMajor,
                    p,
                    &mut y,
                    &mut vec![0.0; g.forward_scratch_len()],
                );
                y.iter().zip(&r).map(|(a, b)| (a * b) as f64).sum::<f64>()
            };
            let mut dp = vec![f32::NAN; g.param_len()];
            let mut dx = vec![f32::NAN; x.len()];
            let mut scratch = vec![0.0; g.scratch_len()];
            g.backward(
                batch,
                &x,
                Layout::SampleMajor,
                &p,
                &r,
                &mut dp,
                Some(&mut dx),
                &mut scratch,
            );
            assert_grad_matches("conv dparams", &p, &dp, |p| loss(&x, p));
            assert_grad_matches("conv dx", &x, &dx, |x| loss(x, &p));
        }
    }

    /// Stride-1 geometries: padding on one side or both, as large as the kernel, 1x1 and wide
    /// kernels, and channel counts past one tap table (25 taps: 20 channels a table), forward and backward.
    const DIRECT: [Conv2d; 7] = [
        Conv2d::new([1, 28, 28], 6, [5, 5], [1, 1], [2, 2], true),
        Conv2d::new([6, 14, 14], 16, [5, 5], [1, 1], [0, 0], true),
        Conv2d::new([3, 7, 9], 5, [3, 3], [1, 1], [1, 1], false),
        Conv2d::new([2, 3, 8], 4, [1, 6], [1, 1], [0, 5], true),
        Conv2d::new([21, 5, 6], 22, [5, 5], [1, 1], [2, 1], true),
        Conv2d::new([4, 6, 6], 3, [1, 1], [1, 1], [0, 0], true),
        Conv2d::new([2, 3, 4], 3, [1, 2], [1, 1], [1, 2], true),
    ];

    /// Every forward route and order: stride 1 by channels and by pixels, strided in place,
    /// unfolded, packed (matrixmultiply).
    const ROUTES: [Conv2d; 5] = [
        Conv2d::new([3, 7, 9], 5, [3, 3], [1, 1], [1, 1], true),
        Conv2d::new([4, 6, 6], 40, [3, 3], [1, 1], [1, 1], false),
        Conv2d::new([3, 9, 7], 5, [3, 3], [2, 2], [1, 1], true),
        Conv2d::new([4, 8, 8], 6, [1, 1], [2, 2], [0, 0], true),
        Conv2d::new([128, 7, 7], 24, [3, 3], [1, 1], [1, 1], true),
    ];

    #[test]
    fn a_residual_sum_and_relu_are_applied_as_the_output_is_written() {
        assert!(ROUTES.iter().any(|g| g.direct() && g.by_pixels()));
        for g in ROUTES {
            let batch = 3;
            let mut scratch = vec![f32::NAN; g.scratch_len()];
            let x = seq(batch * g.in_len(), 0.3);
            let p = seq(g.param_len(), 0.7);
            let r = seq(batch * g.out_len(), 1.3);
            let mut plain = vec![f32::NAN; batch * g.out_len()];
            g.forward(batch, &x, Layout::ChannelMajor, &p, &mut plain, &mut scratch);
            let sum: Vec<f32> = plain.iter().zip(&r).map(|(y, r)| y + r).collect();
            let relu: Vec<f32> = sum.iter().map(|v| v.max(0.0)).collect();
            assert!(relu.contains(&0.0) && relu.iter().any(|&v| v > 0.0));
            for (then, want) in [(Then::Add(&r), &sum), (Then::AddRelu(&r), &relu)] {
                let mut y = vec![f32::NAN; batch * g.out_len()];
                let (route, p) = (g.forward_route(), Params::Declared(&p));
                g.forward_by(route, then, batch, &x, Layout::ChannelMajor, p, &mut y, &mut scratch);
                assert_all_close(&format!("{g:?} {then:?}"), want, &[&y], 1e-5);
            }
        }
    }

    #[test]
    fn a_batchnorm_with_its_relu_folds_as_a_relu_after_it() {
        let g = Conv2d::new([3, 7, 9], 5, [3, 3], [1, 1], [1, 1], true);
        let bn = BatchNorm::new(5, 7 * 9, 1e-5, 0.1, true);
        let batch = 2;
        let (x, p, bn_params) = (seq(batch * g.in_len(), 0.3), seq(g.param_len(), 0.7), seq(10, 0.2));
        let running: Vec<f32> = seq(10, 0.9).iter().map(|v| v.abs() + 0.1).collect();
        let mut scratch = vec![f32::NAN; g.folded_scratch_len()];
        let mut run = |bn: &BatchNorm, then: Then| {
            let mut y = vec![f32::NAN; batch * g.out_len()];
            g.forward_batchnorm(
                batch,
                &x,
                Layout::ChannelMajor,
                &p,
                bn,
                &bn_params,
                &running,
                then,
                &mut y,
                &mut scratch,
            );
            y
        };
        let want = run(&bn, Then::Relu);
        assert!(want.contains(&0.0) && want.iter().any(|&v| v > 0.0));
        assert_eq!(run(&bn.with_relu(), Then::Nothing), want);
        assert_eq!(run(&bn.with_relu(), Then::Relu), want);
    }

    #[test]
    fn prepared_parameters_compute_the_convolution_and_its_batchnorm() {
        // By pixels, the prepared weight is transposed.
        assert!(ROUTES.iter().any(|g| g.transposed_weight()) && ROUTES.iter().any(|g| !g.transposed_weight()));
        prepared_agree(&ROUTES);
    }

    #[test]
    fn winograd_layers_compute_the_convolution_and_its_batchnorm() {
        // Rows of 1, 2, 4, 8, 16 and 32 tiles (runs of 1 to 16 tiles a vector), channels
        // not a multiple of 16, a last vector of tiles cut short (4 tiles).
        let layers = [
            Conv2d::new([16, 2, 2], 16, [3, 3], [1, 1], [1, 1], false),
            Conv2d::new([17, 32, 32], 21, [3, 3], [1, 1], [1, 1], true),
            Conv2d::new([33, 4, 4], 40, [3, 3], [1, 1], [1, 1], true),
            Conv2d::new([32, 8, 8], 64, [3, 3], [1, 1], [1, 1], false),
            Conv2d::new([48, 16, 16], 32, [3, 3], [1, 1], [1, 1], true),
            Conv2d::new([32, 6, 32], 32, [3, 3], [1, 1], [1, 1], false),
            Conv2d::new([32, 4, 64], 33, [3, 3], [1, 1], [1, 1], false),
        ];
        assert!(layers.iter().all(Conv2d::winograd));
        // Not: too few channels, odd sizes, rows of tiles that do not divide a vector.
        assert!(!Conv2d::new([8, 32, 32], 16, [3, 3], [1, 1], [1, 1], false).winograd());
        assert!(!Conv2d::new([32, 7, 7], 32, [3, 3], [1, 1], [1, 1], false).winograd());
        assert!(!Conv2d::new([32, 12, 12], 32, [3, 3], [1, 1], [1, 1], false).winograd());
        // Winograd's on AVX2 and AVX-512, the direct convolution on the portable path.
        crate::simd::on_every_path(|_| prepared_agree(&layers));
    }

    #[test]
    fn winograd_computes_calls_of_many_samples_and_input_gradients() {
        // Through the forward pass (with a bias), and the input gradient, whose convolution
        // (16 -> 24 channels backwards) takes it too; on the portable path both are direct.
        let g = Conv2d::new([24, 8, 8], 16, [3, 3], [1, 1], [1, 1], true);
        assert!(g.winograd() && g.input_grad_conv().winograd());
        let batch = WINOGRAD_BATCH;
        let (x, p, dy) = (
            seq(batch * g.in_len(), 0.3),
            seq(g.param_len(), 0.7),
            seq(batch * g.out_len(), 0.9),
        );
        let run = || {
            let mut scratch = vec![f32::NAN; g.scratch_len()];
            let mut y = vec![f32::NAN; batch * g.out_len()];
            g.forward(batch, &x, Layout::ChannelMajor, &p, &mut y, &mut scratch);
            let (mut dparams, mut dx) = (vec![f32::NAN; g.param_len()], vec![f32::NAN; x.len()]);
            g.backward(
                batch,
                &x,
                Layout::ChannelMajor,
                &p,
                &dy,
                &mut dparams,
                Some(&mut dx),
                &mut scratch,
            );
            [y, dx, dparams]
        };
        let want = crate::simd::on_path(crate::simd::Isa::PORTABLE, run);
        crate::simd::on_every_path(|path| {
            let got = run();
            for (what, (want, got)) in ["y", "dx", "dparams"].iter().zip(want.iter().zip(&got)) {
                assert_all_close(&format!("{path}: {what}"), want, &[got], 1e-4);
            }
        });
    }

    /// `forward_prepared` (Winograd's where the layer and the CPU take it) against the
    /// convolution's forward pass and then its BatchNorm, with a residual and a ReLU.
    fn prepared_agree(layers: &[Conv2d]) {
        for &g in layers {
            let bn = BatchNorm::new(g.oc, g.oh * g.ow, 1e-5, 0.1, true);
            let batch = 2;
            let (x, p) = (seq(batch * g.in_len(), 0.3), seq(g.param_len(), 0.7));
            let bn_params = seq(2 * g.oc, 0.2);
            let running: Vec<f32> = seq(2 * g.oc, 0.9).iter().map(|v| v.abs() + 0.1).collect();
            let r = seq(batch * g.out_len(), 1.1);
            let mut scratch = vec![f32::NAN; g.folded_scratch_len()];
            let mut prepared = vec![f32::NAN; g.prepared_len()];
            g.prepare_batchnorm(&p, &bn, &bn_params, &running, &mut prepared);
            let mut fast = vec![f32::NAN; batch * g.out_len()];
            g.forward_prepared(
                batch,
                &x,
                Layout::ChannelMajor,
                &prepared,
                Then::AddRelu(&r),
                &mut fast,
                &mut scratch,
            );
            let mut each_call = vec![f32::NAN; batch * g.out_len()];
            let then = Then::AddRelu(&r);
            g.forward_batchnorm(
                batch,
                &x,
                Layout::ChannelMajor,
                &p,
                &bn,
                &bn_params,
                &running,
                then,
                &mut each_call,
                &mut scratch,
            );
            assert_eq!(fast, each_call, "{g:?}");
            // And the layers one after the other.
            let mut conv = vec![0.0; batch * g.out_len()];
            g.forward(batch, &x, Layout::ChannelMajor, &p, &mut conv, &mut scratch);
            let mut normed = vec![0.0; conv.len()];
            bn.forward_eval(batch, &conv, Layout::ChannelMajor, &bn_params, &running, &mut normed);
            let want: Vec<f32> = normed.iter().zip(&r).map(|(v, r)| (v + r).max(0.0)).collect();
            assert_all_close(&format!("{g:?}"), &want, &[&fast], 1e-3);
        }
    }

    #[test]
    #[should_panic(expected = "a BatchNorm with a ReLU can only be followed by nothing or a ReLU")]
    fn a_batchnorm_with_its_relu_takes_no_residual_after_it() {
        let g = Conv2d::new([1, 2, 2], 1, [1, 1], [1, 1], [0, 0], false);
        let bn = BatchNorm::new(1, 4, 1e-5, 0.1, false).with_relu();
        let mut scratch = vec![0.0; g.folded_scratch_len()];
        let (r, mut y) = ([0.0; 4], [0.0; 4]);
        g.forward_batchnorm(
            1,
            &[1.0; 4],
            Layout::SampleMajor,
            &[1.0],
            &bn,
            &[],
            &[0.0, 1.0],
            Then::Add(&r),
            &mut y,
            &mut scratch,
        );
    }

    #[test]
    fn deep_layers_go_to_matrixmultiply_and_agree_with_our_kernels() {
        // 128 channels, 3x3 (a patch of 1,152) on 7x7, at strides 1 and 2, with a residual.
        for g in [
            Conv2d::new([128, 7, 7], 24, [3, 3], [1, 1], [1, 1], true),
            Conv2d::new([128, 14, 14], 8, [3, 3], [2, 2], [1, 1], false),
        ] {
            assert!(g.packed() && g.forward_route() == Route::Packed, "{g:?}");
            let batch = 2;
            let mut scratch = vec![f32::NAN; g.scratch_len()];
            let x = seq(batch * g.in_len(), 0.3);
            let p = seq(g.param_len(), 0.7);
            let r = seq(batch * g.out_len(), 1.1);
            for layout in [Layout::SampleMajor, Layout::ChannelMajor] {
                let run = |route: Route, scratch: &mut [f32]| {
                    let mut y = vec![f32::NAN; batch * g.out_len()];
                    g.forward_by(
                        route,
                        Then::AddRelu(&r),
                        batch,
                        &x,
                        layout,
                        Params::Declared(&p),
                        &mut y,
                        scratch,
                    );
                    y
                };
                let (packed, ours) = (run(Route::Packed, &mut scratch), run(Route::Unfolded, &mut scratch));
                assert_all_close(&format!("{g:?} {layout:?}"), &ours, &[&packed], 1e-4);
            }
        }
    }

    #[test]
    fn strided_layers_read_in_place_as_unfolding_computes() {
        // Strides 2 and 3 (across and down), padding, odd sizes, ResNet's shapes,
        // many channels (more than one tap table), both forward orders.
        let cases = [
            Conv2d::new([16, 32, 32], 32, [3, 3], [2, 2], [1, 1], false),
            Conv2d::new([3, 9, 7], 5, [3, 3], [2, 2], [1, 1], true),
            Conv2d::new([2, 11, 10], 4, [4, 3], [3, 2], [2, 0], true),
            Conv2d::new([60, 8, 8], 64, [3, 3], [2, 2], [1, 1], false),
            Conv2d::new([3, 7, 7], 2, [2, 2], [2, 2], [0, 0], true),
            Conv2d::new([2, 10, 11], 3, [3, 3], [2, 3], [1, 1], true),
        ];
        assert!(cases.iter().any(|g| g.by_pixels()) && cases.iter().any(|g| !g.by_pixels()));
        // Both orders of the weight gradient.
        assert!(cases.iter().any(|g| g.dweight_by_taps()) && cases.iter().any(|g| !g.dweight_by_taps()));
        for g in cases {
            assert!(g.in_place() && !g.direct() && g.route() == Route::Direct, "{g:?}");
            let batch = 3;
            let scratch_len = g.scratch_len().max(2 * g.cols_len() + g.out_len() + g.weight_len());
            let mut scratch = vec![f32::NAN; scratch_len];
            for layout in [Layout::SampleMajor, Layout::ChannelMajor] {
                let x = seq(batch * g.in_len(), 0.3);
                let p = seq(g.param_len(), 0.7);
                for then in [Then::Nothing, Then::Relu] {
                    let run = |route: Route, scratch: &mut [f32]| {
                        let mut y = vec![f32::NAN; batch * g.out_len()];
                        g.forward_by(route, then, batch, &x, layout, Params::Declared(&p), &mut y, scratch);
                        y
                    };
                    let (phased, unfolded) = (run(Route::Direct, &mut scratch), run(Route::Unfolded, &mut scratch));
                    assert_all_close(&format!("{g:?} {layout:?} {then:?}"), &unfolded, &[&phased], 1e-4);
                }
                // The backward pass from phase images, as unfolding computes it.
                let dy = seq(batch * g.out_len(), 1.9);
                let back = |route: Route, scratch: &mut [f32]| {
                    let (mut dp, mut dx) = (vec![f32::NAN; g.param_len()], vec![f32::NAN; x.len()]);
                    g.backward_by(route, None, batch, &x, layout, &p, &dy, &mut dp, Some(&mut dx), scratch);
                    (dp, dx)
                };
                let (phased, unfolded) = (back(Route::Direct, &mut scratch), back(Route::Unfolded, &mut scratch));
                assert_all_close(&format!("{g:?} {layout:?} dparams"), &unfolded.0, &[&phased.0], 1e-4);
                assert_all_close(&format!("{g:?} {layout:?} dx"), &unfolded.1, &[&phased.1], 1e-4);
            }
        }
    }

    #[test]
    fn stride_one_path_agrees_with_unfolding() {
        // Both orders of the forward pass and of the weight gradient are among the cases.
        assert!(DIRECT.iter().any(|g| g.by_pixels()) && DIRECT.iter().any(|g| !g.by_pixels()));
        assert!(DIRECT.iter().any(|g| g.dweight_by_taps()) && DIRECT.iter().any(|g| !g.dweight_by_taps()));
        // And both ways to the input gradient (channel-major inputs flip the kernels).
        assert!(DIRECT.iter().any(|g| g.flips()) && DIRECT.iter().any(|g| !g.flips()));
        for g in DIRECT {
            assert!(g.direct(), "{g:?}");
            let batch = 3;
            let scratch_len = g.scratch_len().max(2 * g.cols_len() + g.out_len() + g.weight_len());
            let mut scratch = vec![f32::NAN; scratch_len];
            for layout in [Layout::SampleMajor, Layout::ChannelMajor] {
                let x = seq(batch * g.in_len(), 0.3);
                let p = seq(g.param_len(), 0.7);
                let dy = seq(batch * g.out_len(), 1.9);
                let run = |route: Route, scratch: &mut [f32]| {
                    let mut y = vec![f32::NAN; batch * g.out_len()];
                    g.forward_by(
                        route,
                        Then::Nothing,
                        batch,
                        &x,
                        layout,
                        Params::Declared(&p),
                        &mut y,
                        scratch,
                    );
                    let mut dp = vec![f32::NAN; g.param_len()];
                    let mut dx = vec![f32::NAN; x.len()];
                    g.backward_by(route, None, batch, &x, layout, &p, &dy, &mut dp, Some(&mut dx), scratch);
                    // Without dx, the parameter gradient is the same.
                    let mut dp_only = vec![f32::NAN; g.param_len()];
                    g.backward_by(route, None, batch, &x, layout, &p, &dy, &mut dp_only, None, scratch);
                    assert_eq!(dp, dp_only, "{g:?}");
                    (y, dp, dx)
                };
                let direct = run(Route::Direct, &mut scratch);
                let unfolded = run(Route::Unfolded, &mut scratch);
                for (what, a, b) in [
                    ("y", &direct.0, &unfolded.0),
                    ("dparams", &direct.1, &unfolded.1),
                    ("dx", &direct.2, &unfolded.2),
                ] {
                    for (i, (a, b)) in a.iter().zip(b.iter()).enumerate() {
                        assert!(
                            (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                            "{g:?} {layout:?} {what}[{i}]: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn fused_relu_is_relu_after_the_convolution() {
        for g in DIRECT {
            let batch = 3;
            let mut scratch = vec![f32::NAN; g.scratch_len()];
            let x = seq(batch * g.in_len(), 0.3);
            let p = seq(g.param_len(), 0.7);
            let mut y = vec![f32::NAN; batch * g.out_len()];
            g.forward(batch, &x, Layout::ChannelMajor, &p, &mut y, &mut scratch);
            let relu: Vec<f32> = y.iter().map(|v| v.max(0.0)).collect();
            let mut fused = vec![f32::NAN; y.len()];
            g.forward_relu(batch, &x, Layout::ChannelMajor, &p, &mut fused, &mut scratch);
            assert_eq!(fused, relu, "{g:?}");
            // Backward: the same as the plain layer's on the masked output gradient.
            let dy = seq(y.len(), 1.9);
            let masked: Vec<f32> = dy
                .iter()
                .zip(&relu)
                .map(|(&g, &v)| if v > 0.0 { g } else { 0.0 })
                .collect();
            let (mut dp, mut dx) = (vec![f32::NAN; g.param_len()], vec![f32::NAN; x.len()]);
            g.backward(
                batch,
                &x,
                Layout::ChannelMajor,
                &p,
                &masked,
                &mut dp,
                Some(&mut dx),
                &mut scratch,
            );
            let (mut fp, mut fx) = (vec![f32::NAN; g.param_len()], vec![f32::NAN; x.len()]);
            let layout = Layout::ChannelMajor;
            g.backward_relu(batch, &x, layout, &p, &relu, &dy, &mut fp, Some(&mut fx), &mut scratch);
            for (what, a, b) in [("dparams", &fp, &dp), ("dx", &fx, &dx)] {
                for (i, (a, b)) in a.iter().zip(b.iter()).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                        "{g:?} {what}[{i}]: {a} vs {b}"
                    );
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "conv2d: backward_relu needs a stride-1 layer")]
    fn fused_relu_backward_needs_a_stride_one_layer() {
        let g = CASES[2];
        let n = g.out_len();
        let mut scratch = vec![0.0; g.scratch_len()];
        let (x, p) = (vec![0.0; g.in_len()], vec![0.0; g.param_len()]);
        g.backward_relu(
            1,
            &x,
            Layout::SampleMajor,
            &p,
            &vec![0.0; n],
            &vec![0.0; n],
            &mut p.clone(),
            None,
            &mut scratch,
        );
    }

    #[test]
    fn strides_and_large_padding_unfold() {
        assert!(!CASES[2].direct() && !CASES[3].direct());
        assert!(!Conv2d::new([1, 30, 30], 1, [23, 23], [1, 1], [0, 0], true).direct());
    }

    #[test]
    #[should_panic(expected = "conv2d: input must hold batch*C*H*W = 2*25 elements, got 49")]
    fn wrong_input_length_panics() {
        let g = CASES[1];
        g.forward(
            2,
            &[0.0; 49],
            Layout::SampleMajor,
            &vec![0.0; g.param_len()],
            &mut vec![0.0; 2 * g.out_len()],
            &mut vec![0.0; g.forward_scratch_len()],
        );
    }
}
