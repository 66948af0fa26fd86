# source: https://github.com/MRsources/pulseq-zero/issues/20
# what: A differentiable pulse-sequence adapter builds a gradient waveform with
#       `torch.tensor([0, grad.amplitude, grad.amplitude, 0])`; the optimized amplitude loses its history,
#       so the simulation loss gives it no gradient.
# expect: GG305@18
# fails: no-learning
# fix: `torch.stack([torch.as_tensor(x) for x in tmp])`
import torch


class TrapGrad:
    def __init__(self, amplitude, flat_time):
        self.amplitude = amplitude
        self.flat_time = flat_time


def make_waveform(grad):
    return torch.tensor([0, grad.amplitude, grad.amplitude, 0])


amplitude = torch.tensor(2.0)
amplitude.requires_grad = True
flat_time = torch.tensor(1.0)
flat_time.requires_grad = True
grad = TrapGrad(amplitude, flat_time)
waveform = make_waveform(grad)
moment = (waveform * grad.flat_time).sum()
loss = (moment - 3.0) ** 2
loss.backward()
assert amplitude.grad is not None, "the gradient amplitude gets no gradient"
