use cnn::prelude::*;

cnn! {
    /// torchvision's resnet18, named as its state_dict.
    pub struct ResNet18 {
        input: [3, 224, 224],
        conv1: Conv2d(64, kernel = 7, stride = 2, padding = 3, bias = false),
        bn1: BatchNorm2d,
        relu: Relu,
        maxpool: MaxPool2d(3, stride = 2, padding = 1),
        layer1: Sequential {
            0: Residual { conv1: Conv2d(64, kernel = 3, padding = 1, bias = false), bn1: BatchNorm2d, relu: Relu, conv2: Conv2d(64, kernel = 3, padding = 1, bias = false), bn2: BatchNorm2d } -> Relu,
            1: Residual { conv1: Conv2d(64, kernel = 3, padding = 1, bias = false), bn1: BatchNorm2d, relu: Relu, conv2: Conv2d(64, kernel = 3, padding = 1, bias = false), bn2: BatchNorm2d } -> Relu,
        },
        layer2: Sequential {
            0: Residual {
                conv1: Conv2d(128, kernel = 3, stride = 2, padding = 1, bias = false), bn1: BatchNorm2d, relu: Relu,
                conv2: Conv2d(128, kernel = 3, padding = 1, bias = false), bn2: BatchNorm2d,
                downsample: Shortcut { 0: Conv2d(128, kernel = 1, stride = 2, bias = false), 1: BatchNorm2d },
            } -> Relu,
            1: Residual { conv1: Conv2d(128, kernel = 3, padding = 1, bias = false), bn1: BatchNorm2d, relu: Relu, conv2: Conv2d(128, kernel = 3, padding = 1, bias = false), bn2: BatchNorm2d } -> Relu,
        },
        layer3: Sequential {
            0: Residual {
                conv1: Conv2d(256, kernel = 3, stride = 2, padding = 1, bias = false), bn1: BatchNorm2d, relu: Relu,
                conv2: Conv2d(256, kernel = 3, padding = 1, bias = false), bn2: BatchNorm2d,
                downsample: Shortcut { 0: Conv2d(256, kernel = 1, stride = 2, bias = false), 1: BatchNorm2d },
            } -> Relu,
            1: Residual { conv1: Conv2d(256, kernel = 3, padding = 1, bias = false), bn1: BatchNorm2d, relu: Relu, conv2: Conv2d(256, kernel = 3, padding = 1, bias = false), bn2: BatchNorm2d } -> Relu,
        },
        layer4: Sequential {
            0: Residual {
                conv1: Conv2d(512, kernel = 3, stride = 2, padding = 1, bias = false), bn1: BatchNorm2d, relu: Relu,
                conv2: Conv2d(512, kernel = 3, padding = 1, bias = false), bn2: BatchNorm2d,
                downsample: Shortcut { 0: Conv2d(512, kernel = 1, stride = 2, bias = false), 1: BatchNorm2d },
            } -> Relu,
            1: Residual { conv1: Conv2d(512, kernel = 3, padding = 1, bias = false), bn1: BatchNorm2d, relu: Relu, conv2: Conv2d(512, kernel = 3, padding = 1, bias = false), bn2: BatchNorm2d } -> Relu,
        },
        avgpool: GlobalAvgPool2d,
        flatten: Flatten,
        fc: Dense(1000),
    }
}

fn main() {
    println!("{}", ResNet18::summary());
    println!("{} params, {} buffers", ResNet18::PARAM_COUNT, ResNet18::BUFFER_COUNT);
    let args: Vec<String> = std::env::args().collect();
    if args.len() > 2 {
        let net: ResNet18 = cnn::io::load_safetensors(&args[1]).unwrap();
        let x: Vec<f32> = std::fs::read(&args[2]).unwrap().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        let n = x.len() / ResNet18::INPUT_LEN;
        let mut out = vec![0.0; n * 1000];
        let t = std::time::Instant::now();
        net.forward_batch(&x, &mut out);
        eprintln!("forward {:?}", t.elapsed());
        let bytes: Vec<u8> = out.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&args[3], bytes).unwrap();
        if args.len() > 4 { cnn::io::save_safetensors(&net, &args[4]).unwrap(); }
    }
}
