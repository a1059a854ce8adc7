//! The network as the passes after `parse` see it: shapes, a small graph of ops over values,
//! the parameter and buffer tables, the summary rows. Knows no tokens; imported by `check`
//! (which builds it), `plan`, `expand`, `weights` and `messages`, and imports none of them.

use cnn_runtime::activation::Activation;
use cnn_runtime::batchnorm::BatchNorm;
use cnn_runtime::conv::Conv2d;
use cnn_runtime::dense::Dense;
use cnn_runtime::dropout::Dropout;
use cnn_runtime::pool::Pool2d;
use std::fmt;
use std::ops::Range;

/// The shape of one sample between stages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Image([usize; 3]),
    Flat(usize),
}

impl Shape {
    pub fn len(self) -> usize {
        match self {
            Shape::Image([c, h, w]) => c * h * w,
            Shape::Flat(n) => n,
        }
    }

    pub fn dims(self) -> Vec<usize> {
        match self {
            Shape::Image(d) => d.to_vec(),
            Shape::Flat(n) => vec![n],
        }
    }

    pub fn image(self) -> Option<[usize; 3]> {
        match self {
            Shape::Image(d) => Some(d),
            Shape::Flat(_) => None,
        }
    }

    /// Channels and elements per channel: `(C, H*W)` for an image, `(N, 1)` for a vector.
    pub fn channels(self) -> (usize, usize) {
        match self {
            Shape::Image([c, h, w]) => (c, h * w),
            Shape::Flat(n) => (n, 1),
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shape::Image([c, h, w]) => write!(f, "[{c}, {h}, {w}]"),
            Shape::Flat(n) => write!(f, "[{n}]"),
        }
    }
}

/// A value of the graph: the input (value 0) or an op's output.
pub type ValueId = usize;

/// The value of the network's input.
pub const INPUT: ValueId = 0;

/// One kernel call of the forward pass. `Flatten` has none: it only renames the layout.
#[derive(Clone, Debug)]
pub enum Op {
    /// `geom` is one group's convolution (`groups` of them side by side).
    Conv {
        geom: Conv2d,
        groups: usize,
        params: Range<usize>,
    },
    Pool(Pool2d),
    Dense {
        geom: Dense,
        params: Range<usize>,
    },
    Act(Activation),
    BatchNorm {
        geom: BatchNorm,
        params: Range<usize>,
        buffers: Range<usize>,
    },
    /// `stage`: which Dropout of the network, for its masks.
    Dropout {
        geom: Dropout,
        stage: u32,
    },
    /// A residual block's sum, `inputs[0] + inputs[1]`.
    Add,
}

/// An op applied to values, giving a new value.
#[derive(Clone, Debug)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<ValueId>,
    pub output: ValueId,
}

/// A named tensor of the flat parameter or buffer table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub shape: Vec<usize>,
    pub offset: usize,
}

/// One line of the summary table.
#[derive(Clone, Debug)]
pub struct Row {
    pub stage: String,
    pub kind: String,
    pub shape: Shape,
    pub params: usize,
    pub macs: usize,
}

/// Everything `plan` and `expand` need: sizes as numbers, no tokens.
#[derive(Clone, Debug)]
pub struct Model {
    pub input: Shape,
    pub output_len: usize,
    /// Every value's shape, indexed by [`ValueId`]; value 0 is the input.
    pub values: Vec<Shape>,
    /// The ops in execution order; each reads values made before it.
    pub nodes: Vec<Node>,
    /// The network's output.
    pub output: ValueId,
    pub params: Vec<Param>,
    pub param_count: usize,
    /// BatchNorm running statistics.
    pub buffers: Vec<Param>,
    pub buffer_count: usize,
    /// Ranges of BatchNorm weights (set to 1 at initialization) and biases (set to 0).
    pub ones: Vec<Range<usize>>,
    pub zeros: Vec<Range<usize>>,
    pub macs: usize,
    pub rows: Vec<Row>,
}

/// What is known of a declaration that has errors, for the stubbed struct.
#[derive(Clone, Debug, Default)]
pub struct Partial {
    pub input: Option<Shape>,
    pub output_len: Option<usize>,
}

/// The most `f32`s a declaration may need in one buffer: 2^32, 16 GiB.
///
/// It bounds the input sample, every parameter tensor and the whole parameter buffer, each
/// stage's output, and the working memory of a training step per sample (every activation, the
/// gradient buffers and the convolution scratch, summed). A network past it is a compile error
/// naming the stage.
///
/// Why this number: it is far above any network this crate can train on a CPU (VGG-16 has
/// 138 million parameters), and far below the limits where the generated code itself would
/// break. rustc refuses an array type of 2^61 bytes or more (`[f32; OUTPUT_LEN]` in `forward`)
/// with an error that names no stage, and `isize::MAX` bytes is the most one allocation can
/// hold. Under this bound every size the generated code computes from these lengths fits
/// `usize` on a 64-bit host.
pub const MAX_ELEMS: usize = 1 << 32;
