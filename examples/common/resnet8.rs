//! The CIFAR-10 ResNet-8 of `../shared/bench/README.md`, with torchvision's names: one
//! declaration for the `cifar` and `bench` examples and the augmentation test
//! (`#[path = "common/resnet8.rs"] mod resnet8;`).

use cnn::prelude::*;

cnn! {
    /// ResNet-8 for 32x32 RGB images (torchvision names): a 3x3 stem, three residual stages of
    /// 16, 32 and 64 channels, the last two halving the image with projection shortcuts,
    /// global average pooling and a 10-way classifier.
    pub struct ResNet8 {
        input: [3, 32, 32],
        conv1: Conv2d(16, kernel = 3, padding = 1, bias = false),
        bn1: BatchNorm2d,
        relu: Relu,
        layer1: Sequential {
            0: Residual {
                conv1: Conv2d(16, kernel = 3, padding = 1, bias = false),
                bn1: BatchNorm2d,
                relu: Relu,
                conv2: Conv2d(16, kernel = 3, padding = 1, bias = false),
                bn2: BatchNorm2d,
            } -> Relu,
        },
        layer2: Sequential {
            0: Residual {
                conv1: Conv2d(32, kernel = 3, stride = 2, padding = 1, bias = false),
                bn1: BatchNorm2d,
                relu: Relu,
                conv2: Conv2d(32, kernel = 3, padding = 1, bias = false),
                bn2: BatchNorm2d,
                downsample: Shortcut {
                    0: Conv2d(32, kernel = 1, stride = 2, bias = false),
                    1: BatchNorm2d,
                },
            } -> Relu,
        },
        layer3: Sequential {
            0: Residual {
                conv1: Conv2d(64, kernel = 3, stride = 2, padding = 1, bias = false),
                bn1: BatchNorm2d,
                relu: Relu,
                conv2: Conv2d(64, kernel = 3, padding = 1, bias = false),
                bn2: BatchNorm2d,
                downsample: Shortcut {
                    0: Conv2d(64, kernel = 1, stride = 2, bias = false),
                    1: BatchNorm2d,
                },
            } -> Relu,
        },
        avgpool: GlobalAvgPool2d,
        flatten: Flatten,
        fc: Dense(10),
    }
}
