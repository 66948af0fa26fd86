# source: https://github.com/huggingface/pytorch-image-models/blob/main/timm/models/mlp_mixer.py
# timm's MLP-Mixer (a patch-embedding convolution flattened to tokens, mixer blocks whose token MLP runs
# on the transposed sequence, global average over tokens, linear head), written for this suite with
# its own small Mlp and PatchEmbed. Two models: one MixerBlock and a small MlpMixer.
import torch.nn as nn


class Mlp(nn.Module):
    def __init__(self, in_features, hidden_features, act_layer=nn.GELU, drop=0.0):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x):
        x = self.fc1(x)
        x = self.act(x)
        x = self.drop1(x)
        x = self.fc2(x)
        x = self.drop2(x)
        return x


class PatchEmbed(nn.Module):
    def __init__(self, img_size=224, patch_size=16, in_chans=3, embed_dim=768):
        super().__init__()
        self.num_patches = (img_size // patch_size) ** 2
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x):
        x = self.proj(x)
        x = x.flatten(2).transpose(1, 2)
        return x


# gradguard: probe MixerBlock(32, 16) input=(2, 16, 32)
class MixerBlock(nn.Module):
    def __init__(self, dim, seq_len, mlp_ratio=(0.5, 4.0), drop=0.0):
        super().__init__()
        tokens_dim, channels_dim = [int(r * dim) for r in mlp_ratio]
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp_tokens = Mlp(seq_len, tokens_dim, drop=drop)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp_channels = Mlp(dim, channels_dim, drop=drop)

    def forward(self, x):
        x = x + self.mlp_tokens(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        x = x + self.mlp_channels(self.norm2(x))
        return x


# gradguard: probe MlpMixer(num_classes=10, img_size=32, patch_size=4, num_blocks=2, embed_dim=48) input=(2, 3, 32, 32)
class MlpMixer(nn.Module):
    def __init__(
        self, num_classes=1000, img_size=224, in_chans=3, patch_size=16, num_blocks=8, embed_dim=512
    ):
        super().__init__()
        self.stem = PatchEmbed(
            img_size=img_size, patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim
        )
        self.blocks = nn.Sequential(
            *[MixerBlock(embed_dim, self.stem.num_patches) for _ in range(num_blocks)]
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_classes)

    def forward(self, x):
        x = self.stem(x)
        x = self.blocks(x)
        x = self.norm(x)
        x = x.mean(dim=1)
        x = self.head(x)
        return x
