// Names are unique within their group only: `conv1`, `bn1` and `0` appear at several levels,
// as in torchvision's ResNet (`conv1.weight`, `layer1.0.conv1.weight`, `layer2.0.conv1.weight`).
use cnn::prelude::*;

cnn! {
    struct Net {
        input: [4, 8, 8],
        conv1: Conv2d(8, kernel = 3, padding = 1, bias = false),
        bn1: BatchNorm2d,
        layer1: Sequential {
            0: Residual {
                conv1: Conv2d(8, kernel = 3, padding = 1, bias = false),
                bn1: BatchNorm2d,
            } -> Relu,
        },
        layer2: Sequential {
            0: Residual {
                conv1: Conv2d(16, kernel = 3, stride = 2, padding = 1, bias = false),
                bn1: BatchNorm2d,
                downsample: Shortcut {
                    0: Conv2d(16, kernel = 1, stride = 2, bias = false),
                    1: BatchNorm2d,
                },
            } -> Relu,
        },
        avgpool: GlobalAvgPool2d,
        flatten: Flatten,
        fc: Dense(10),
    }
}

fn main() {
    let names: Vec<&str> = <Net as Network>::PARAMS.iter().map(|p| p.name).collect();
    for name in ["conv1.weight", "layer1.0.conv1.weight", "layer2.0.conv1.weight", "layer2.0.downsample.0.weight", "layer2.0.downsample.1.weight"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
}
