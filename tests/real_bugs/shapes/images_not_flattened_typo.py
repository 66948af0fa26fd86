# source: https://github.com/udacity/deep-learning-v2-pytorch/issues/86
# what: In a Fashion-MNIST MLP training loop the flattened batch is assigned to a misspelled name
#   (`imagees = ...`), so the model receives the 4-D image batch and its first Linear(784, 256)
#   multiplies rows of 28 pixels.
# expect: GG501@19
# fails: mat1 and mat2 shapes cannot be multiplied (1792x28 and 784x256)
# fix: images = images.view(images.shape[0], -1)
import torch
import torch.nn as nn

model = nn.Sequential(
    nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10), nn.LogSoftmax(dim=1)
)
criterion = nn.NLLLoss()

images = torch.randn(64, 1, 28, 28)
labels = torch.randint(0, 10, (64,))
imagees = images.view(1, -1)
log_ps = model(images)
loss = criterion(log_ps, labels)
