import torch, torchvision, numpy as np
from safetensors.torch import save_file, load_file
torch.manual_seed(0)
m = torchvision.models.resnet18(weights=None)
# random running statistics and affine parameters, so that eval mode is tested
for mod in m.modules():
    if isinstance(mod, torch.nn.BatchNorm2d):
        mod.running_mean.uniform_(-0.5, 0.5); mod.running_var.uniform_(0.5, 2.0)
        mod.weight.data.uniform_(0.5, 1.5); mod.bias.data.uniform_(-0.2, 0.2)
        mod.num_batches_tracked.fill_(5)
m.eval()
save_file({k: v.contiguous() for k, v in m.state_dict().items()}, "r18.safetensors")
x = torch.randn(2, 3, 224, 224)
x.numpy().astype('<f4').tofile("x.bin")
with torch.no_grad():
    y = m(x)
y.numpy().astype('<f4').tofile("y_torch.bin")
