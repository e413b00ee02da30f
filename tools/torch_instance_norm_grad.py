"""Shows why cut_step.npz's G after one official CUT iteration differs from
ours: PyTorch's CPU InstanceNorm2d backward gives a wrong input gradient when
the gradient arriving at its output is channels-last strided, and the
official PatchSampleF (feat.permute(0, 2, 3, 1) before sampling patches) sends
exactly such gradients into the generator's instance norms.

    pip install torch && python tools/torch_instance_norm_grad.py

(torch is not a dependency of this project; this script is evidence, not a
test.) Prints the input gradient of nn.InstanceNorm2d for the same values of
the output gradient in contiguous and channels-last memory, each against a
float64 instance norm written out by hand. With torch 2.14.1 on CPU:
contiguous 5.5e-08, channels-last 1.41 (relative errors): the second is
unrelated to the true gradient. Running the official cut_model.py on the
fixture with that gradient made contiguous before each instance norm
reproduces our G step (99.4-100 % of each weight tensor's update signs, 59 %
as the fixture has it), see README "CUT and FastCUT".
"""

import torch


def relative_error(got, expected):
    return float((got.double() - expected).norm() / expected.norm())


def main():
    torch.manual_seed(0)
    x = torch.randn(1, 32, 16, 16, requires_grad=True)
    grad = torch.randn(1, 32, 16, 16)
    channels_last = grad.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    assert torch.equal(grad, channels_last)  # the same values, other strides
    x64 = x.detach().double().requires_grad_(True)
    mean = x64.mean((2, 3), keepdim=True)
    var = x64.var((2, 3), unbiased=False, keepdim=True)
    exact = torch.autograd.grad(((x64 - mean) / torch.sqrt(var + 1e-5) * grad.double()).sum(),
                                [x64])[0]
    norm = torch.nn.InstanceNorm2d(32)
    for name, g in (('contiguous', grad), ('channels-last', channels_last)):
        got = torch.autograd.grad((norm(x) * g).sum(), [x])[0]
        print(f'{name:14s} output gradient: input gradient off by {relative_error(got, exact):.2e}'
              f' (torch {torch.__version__})')


if __name__ == '__main__':
    main()
