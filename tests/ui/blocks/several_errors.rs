use cnn::prelude::*;

cnn! {
    /// Independent mistakes in blocks and the new layers, all reported in one build: a stage
    /// whose output shape is known despite its error (BatchNorm of the wrong rank, a convolution
    /// with bad `groups`) lets the stages after it be checked.
    pub struct Net {
        input: [3, 16, 16],
        conv1: Conv2d(8, kernel = 3, padding = 1, bias = false),
        bn1: BatchNorm1d,
        layer1: Sequential {
            0: Residual {
                conv1: Conv2d(8, kernel = 3, padding = 1, groups = 3),
                bn1: BatchNorm2d(momentum = 2),
            } -> Relu,
            1: Residual {
                conv1: Conv2d(16, kernel = 3, stride = 2, padding = 1),
                bn1: BatchNorm2d,
            },
        },
        pool: MaxPool2d(2, padding = 2),
        drop: Dropout(1.5),
    }
}

fn main() {}
