# source: https://github.com/qijiezhao/pseudo-3d-pytorch/issues/28
# what: A video network folds its (N, C, T, H, W) features into 2-D maps with x.view(-1, C, H, W), which
#   only keeps the batch when T == 1; with longer clips the time steps become extra samples and the loss
#   sees twice as many predictions as labels.
# expect: GG505@22
# fails: Expected input batch_size (8) to match target batch_size (4).
# fix: none (modelling choice): fold time into the channels, or average over T
import torch
import torch.nn as nn


class P3DHead(nn.Module):
    def __init__(self, channels=16, classes=5):
        super().__init__()
        self.conv3d = nn.Conv3d(3, channels, kernel_size=(3, 3, 3), stride=(2, 1, 1), padding=(1, 1, 1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, classes)

    def forward(self, x):
        x = self.conv3d(x)
        sizes = x.size()
        x = x.view(-1, sizes[1], sizes[3], sizes[4])
        x = self.pool(x).flatten(1)
        return self.fc(x)


model = P3DHead()
clips = torch.randn(4, 3, 4, 16, 16)
targets = torch.randint(0, 5, (4,))
loss = nn.CrossEntropyLoss()(model(clips), targets)
