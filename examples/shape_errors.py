"""Shape mistakes gradguard follows through a whole model (GG501, GG505-GG509).

The model is built and called at the bottom of the file, so the shapes of `forward` are known
(hover a tensor to see its shape, dtype and gradient status; the editor shows the shape after each
assignment of `forward` as an inlay hint).

Bugs here:
  * GG501 `Classifier.forward`: the convolutions leave 32 x 7 x 7 features for 28x28 images,
    but `self.head` was written for 32 x 8 x 8 (32x32 images): "mat1 and mat2 shapes cannot be
    multiplied (16x1568 and 2048x10)".
  * GG505 `keypoint_loss`: `view(1, -1)` merges the batch of 10 into one row; the loss against
    the (10, 136) predictions raises.
  * GG506 `flatten_features`: 16 x 2 x 2 features per image do not fit rows of 400.
  * GG507 `attention_mask`: a (16, 16) mask for (1, 5, 5) scores does not broadcast.
  * GG508 `skip_connection`: a 61-pixel map and a 60-pixel map cannot be concatenated.
  * GG509 the `__main__` block: `Classifier` returns softmax probabilities and they are fed to
    `nn.CrossEntropyLoss`, which applies log_softmax itself (training stalls; nothing raises).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class Classifier(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Linear(32 * 8 * 8, classes)

    def forward(self, images):
        h = self.features(images)
        flat = torch.flatten(h, 1)
        logits = self.head(flat)
        return torch.softmax(logits, dim=1)


def keypoint_loss():
    predictions = torch.randn(10, 136)
    keypoints = torch.randn(10, 68, 2)
    keypoints = keypoints.view(1, -1)
    return F.mse_loss(predictions, keypoints)


def flatten_features():
    features = torch.randn(6, 16, 2, 2)
    return features.view(-1, 16 * 5 * 5)


def attention_mask():
    scores = torch.randn(1, 5, 5)
    mask = torch.ones(16, 16, dtype=torch.bool).tril()
    return scores.masked_fill(~mask, float("-inf"))


def skip_connection():
    encoder = torch.randn(1, 8, 61, 61)
    decoder = F.interpolate(F.max_pool2d(encoder, 2), scale_factor=2)
    return torch.cat([encoder, decoder], dim=1)


if __name__ == "__main__":
    model = Classifier()
    images = torch.randn(16, 1, 28, 28)
    labels = torch.randint(0, 10, (16,))
    probabilities = model(images)
    loss = nn.CrossEntropyLoss()(probabilities, labels)
