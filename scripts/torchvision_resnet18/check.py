import torch, torchvision, numpy as np
from safetensors.torch import load_file
y = np.fromfile("y_torch.bin", dtype='<f4'); z = np.fromfile("y_cnn.bin", dtype='<f4')
print("max abs diff", np.abs(y - z).max(), "max |y|", np.abs(y).max(), "argmax equal", (y.reshape(2,-1).argmax(1) == z.reshape(2,-1).argmax(1)).all())
m = torchvision.models.resnet18(weights=None)
sd = load_file("ours.safetensors")
print(m.load_state_dict(sd, strict=True))
print({k: (v.dtype, tuple(v.shape)) for k, v in sd.items() if 'num_batches' in k} .__len__(), sd['bn1.num_batches_tracked'])
