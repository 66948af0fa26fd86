"""Precision on libraries the rules were never tuned on: every finding, ready for a human to judge.

    .venv/bin/python bench/libraries.py                    # the dev set (default)
    .venv/bin/python bench/libraries.py --set holdout      # kept aside: run it only to check a finished change
    .venv/bin/python bench/libraries.py --set holdout2     # a second set kept aside (the first has been read)
    .venv/bin/python bench/libraries.py --set holdout3     # a third (holdout2 has been read too)
    .venv/bin/python bench/libraries.py --set dev2         # a second tuning set (fourth session)
    .venv/bin/python bench/libraries.py --set dev3         # a third tuning set (same session)
    .venv/bin/python bench/libraries.py --set dev4         # a fourth
    .venv/bin/python bench/libraries.py --set dev5         # a fifth
    .venv/bin/python bench/libraries.py --set holdout4     # a fourth (run once at the end of the fourth session)
    .venv/bin/python bench/libraries.py --set dev6         # fifth session: tuning sets chosen by a seeded shuffle
    .venv/bin/python bench/libraries.py --set dev7
    .venv/bin/python bench/libraries.py --set dev8         # (and dev9) two more, once dev6/dev7 were reviewed
    .venv/bin/python bench/libraries.py --set holdout5     # a fifth, kept aside (holdout4 has been read)
    .venv/bin/python bench/libraries.py --set dev11        # sixth session: two more tuning sets (and dev12)
    .venv/bin/python bench/libraries.py --set holdout6     # a sixth (measured once in the sixth session)
    .venv/bin/python bench/libraries.py --set dev13        # seventh session: two more tuning sets (and dev14)
    .venv/bin/python bench/libraries.py --set holdout7     # a seventh, kept aside (holdout6 has been read)
    .venv/bin/python bench/libraries.py --set dev15        # eighth session: two more tuning sets (and dev16)
    .venv/bin/python bench/libraries.py --set holdout8     # an eighth, kept aside (holdout7 has been read)
    .venv/bin/python bench/libraries.py --set all --jobs 2

Downloads (at benchmark time, never committed) the sources of open-source PyTorch libraries other
than timm, torchvision and transformers, at the pinned versions below, with
`pip download --no-deps` into the git-ignored `bench/.corpus/libwheels/`, unpacks only their `.py`
files into `bench/.corpus/libs/<name>-<version>/`, and runs `python -m gradguard check --format json`
on each library. Writes

* `bench/results/libraries-<set>-<UTC time>.json`: per library files, lines, CPU seconds, findings;
* `bench/results/libraries-<set>-<UTC time>.md`: the review list, per library and per finding the rule,
  the message and 5 lines of source around it, with a blank verdict to fill in (real bug / false
  positive, and why).

The stdout summary shows counts only. The holdout set exists so that precision can be measured on
code nobody looked at while changing the rules: do not read its findings while working on them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus  # noqa: E402

WHEELS_DIR = corpus.CORPUS_DIR / "libwheels"
LIBS_DIR = corpus.CORPUS_DIR / "libs"

# (PyPI name, pinned version). None of them is timm, torchvision or transformers.
LIBRARIES: dict[str, list[tuple[str, str]]] = {
    "dev": [
        ("diffusers", "0.42.1"),
        ("kornia", "0.9.0"),
        ("monai", "1.6.1"),
        ("torch-geometric", "2.8.1"),
        ("speechbrain", "1.1.2"),
        ("torchrl", "0.14.1"),
        ("peft", "0.21.2"),
        ("pyro-ppl", "1.9.2"),
        ("gpytorch", "1.15.2"),
        ("torchmetrics", "1.9.0"),
        ("sentence-transformers", "6.2.0"),
        ("accelerate", "1.15.0"),
        ("einops", "0.8.2"),
        ("segmentation-models-pytorch", "0.6.0"),
        ("captum", "0.9.0"),
    ],
    "holdout": [
        ("fastai", "2.8.12"),
        ("ultralytics", "8.4.190"),
        ("torchtune", "0.6.1"),
        ("pytorch-metric-learning", "2.9.0"),
        ("botorch", "0.18.1"),
        ("torchdiffeq", "0.2.5"),
        ("normflows", "1.7.3"),
        ("lightly", "1.6.0"),
        ("skorch", "1.4.0"),
        ("flair", "0.15.1"),
    ],
    # the first holdout set was read once (its findings are reviewed in issue 10's notes, so it is
    # no longer unseen); this one was chosen at the end of a later session and run once
    "holdout2": [
        ("x-transformers", "2.31.10"),
        ("vector-quantize-pytorch", "1.32.0"),
        ("denoising-diffusion-pytorch", "2.3.4"),
        ("open-clip-torch", "3.3.0"),
        ("torchio", "1.2.1"),
        ("pytorch-tabnet", "4.1.0"),
        ("torchsde", "0.2.6"),
        ("zuko", "1.6.0"),
        ("e3nn", "0.6.0"),
        ("pytorch-forecasting", "1.8.0"),
        ("braindecode", "1.8.1"),
        ("nflows", "0.14"),
        ("mmengine", "0.10.7"),
        ("torch-optimizer", "0.3.0"),
        ("lion-pytorch", "0.2.5"),
    ],
    # chosen at the start of the third session, kept unread until the end of it and run once
    "holdout3": [
        ("lightning", "2.6.6"),
        ("pytorch-ignite", "0.5.5"),
        ("stable-baselines3", "2.9.2"),
        ("torchgeo", "0.8.1"),
        ("opacus", "1.6.0"),
        ("pykeen", "1.11.1"),
        ("tianshou", "2.0.1"),
        ("schnetpack", "2.1.1"),
        ("neuralforecast", "3.3.0"),
        ("pytorch-widedeep", "1.7.0"),
        ("asteroid", "0.7.0"),
        ("demucs", "4.1.0"),
        ("laplace-torch", "0.3"),
        ("bayesian-torch", "0.5.0"),
        ("audiocraft", "1.3.0"),
    ],
    # fourth session: a second set to tune on (read freely while changing rules) ...
    "dev2": [
        ("vit-pytorch", "1.26.14"),
        ("dalle2-pytorch", "1.15.6"),
        ("imagen-pytorch", "2.1.0"),
        ("k-diffusion", "0.1.1.post1"),
        ("lpips", "0.1.4"),
        ("piq", "0.8.0"),
        ("torch-fidelity", "0.4.0"),
        ("d3rlpy", "2.8.1"),
        ("pfrl", "0.4.0"),
        ("sbi", "0.27.0"),
        ("trl", "1.16.0"),
        ("ema-pytorch", "0.8.3"),
        ("torchcrepe", "0.0.24"),
        ("auraloss", "0.4.0"),
        ("mace-torch", "0.3.16"),
    ],
    # ... a third, added in the same session once dev2's classes were fixed ...
    "dev3": [
        ("fairseq", "0.12.2"),
        ("allennlp", "2.10.1"),
        ("catalyst", "21.5"),
        ("pytorch-toolbelt", "0.8.0"),
        ("torchensemble", "0.2.0"),
        ("geoopt", "0.5.1"),
        ("segment-anything", "1.0"),
        ("efficientnet-pytorch", "0.7.1"),
        ("chronos-forecasting", "2.3.2"),
        ("tabpfn", "9.2.0"),
        ("audiolm-pytorch", "2.4.0"),
        ("perceiver-pytorch", "0.11.0"),
        ("torch-ema", "0.3"),
        ("pytorch-msssim", "1.0.0"),
        ("higher", "0.2.1"),
    ],
    "dev4": [
        ("openai-whisper", "20250625"),
        ("pyannote.audio", "4.0.7"),
        ("descript-audio-codec", "1.0.0"),
        ("fairscale", "0.4.13"),
        ("neuralprophet", "0.9.0"),
        ("pypots", "1.5"),
        ("chemprop", "2.3.1"),
        ("fair-esm", "2.0.0"),
        ("nequip", "0.19.1"),
        ("rtdl", "0.0.13"),
        ("rl-games", "1.6.5"),
        ("adapters", "1.3.0"),
        ("stable-audio-tools", "0.0.19"),
        ("clip-anytorch", "2.6.0"),
    ],
    "dev5": [
        ("pytorchvideo", "0.1.5"),
        ("deepinv", "0.5.0"),
        ("pytorch-wavelets", "1.3.0"),
        ("kymatio", "0.3.0"),
        ("ptwt", "1.0.1"),
        ("torch-harmonics", "0.9.3"),
        ("neuraloperator", "2.0.0"),
        ("escnn", "1.0.11"),
        ("e2cnn", "0.2.3"),
        ("FrEIA", "0.2"),
        ("torch-geometric-temporal", "0.56.2"),
        ("sample-factory", "2.1.1"),
        ("torchkbnufft", "1.5.2"),
        ("torch-dct", "0.1.6"),
        ("pytorch-tcn", "1.2.3"),
    ],
    # ... and one chosen at its start, kept unread until its end and run once
    "holdout4": [
        ("tsai", "1.0.1"),
        ("julius", "0.2.8"),
        ("encodec", "0.1.1"),
        ("skrl", "2.1.1"),
        ("pytorch-pfn-extras", "0.9.0"),
        ("gluonts", "0.17.0"),
        ("darts", "0.41.0"),  # (u8darts, first listed, is a metapackage without code)
        ("pykan", "0.2.8"),
        ("torchcde", "0.2.5"),
        ("torchdyn", "1.0.6"),
        ("torchani", "2.9.0"),
        ("pytorch-tabular", "1.2.0"),
        ("avalanche-lib", "0.6.0"),
        ("nerfstudio", "1.1.5"),
        ("learn2learn", "0.2.0"),
    ],
    # fifth session: 53 unused libraries split by random.Random(20261202).shuffle into a holdout of 21
    # and two tuning sets of 16, so that no one's taste chose which libraries are kept aside (sam2, drawn
    # for dev7, has no wheel and its sdist needs torch to build, so dev7 has 15)
    "dev6": [
        ("stylegan2-pytorch", "1.9.0"),
        ("torchmd-net", "3.1.0"),
        ("byol-pytorch", "0.9.1"),
        ("super-gradients", "3.7.1"),
        ("brevitas", "0.13.4"),
        ("torchcam", "0.5.0"),
        ("mmpretrain", "1.2.0"),
        ("enformer-pytorch", "0.8.12"),
        ("mmdet", "3.3.0"),
        ("egnn-pytorch", "0.2.8"),
        ("e2-tts-pytorch", "2.2.2"),
        ("facenet-pytorch", "2.6.0"),
        ("torchtext", "0.18.0"),
        ("dgllife", "0.3.2"),
        ("torch-struct", "0.5"),
        ("lightning-bolts", "0.7.0"),
    ],
    "dev7": [
        ("gsplat", "1.5.3"),
        ("torch-pruning", "1.6.1"),
        ("uni2ts", "2.0.0"),
        ("fairchem-core", "2.24.0"),
        ("alphafold3-pytorch", "0.8.3"),
        ("tensordict", "0.15.3"),
        ("vocos", "0.1.0"),
        ("schedulefree", "1.4.1"),
        ("rectified-flow-pytorch", "0.14.0"),
        ("grad-cam", "1.5.7"),
        ("coqui-tts", "0.28.0"),
        ("torchlibrosa", "0.1.0"),
        ("mosaicml", "0.32.1"),
        ("backpack-for-pytorch", "1.7.1"),
        ("torch-audiomentations", "0.12.0"),
    ],
    # fifth session, once dev6/dev7 were reviewed: 32 more unused libraries split by
    # random.Random(202612022).shuffle into two more tuning sets (basicsr, drawn for dev8, has no wheel
    # and its sdist does not build)
    "dev8": [
        ("ring-attention-pytorch", "0.5.20"),
        ("magvit2-pytorch", "0.5.1"),
        ("nnsight", "0.8.1"),
        ("taming-transformers", "0.0.1"),
        ("soundstorm-pytorch", "0.6.1"),
        ("flash-linear-attention", "0.6.0"),
        ("voicebox-pytorch", "0.5.0"),
        ("musiclm-pytorch", "0.2.8"),
        ("torch-uncertainty", "0.13.0"),
        ("gigagan-pytorch", "0.3.0"),
        ("torchkge", "0.17.7"),
        ("sae-lens", "6.54.12"),
        ("facexlib", "0.3.0"),
        ("pytorch-adapt", "0.0.83"),
        ("salesforce-lavis", "1.0.2"),
    ],
    "dev9": [
        ("transformer-lens", "4.3.0"),
        ("BS-RoFormer", "1.2.4"),
        ("liger-kernel", "0.8.5"),
        ("meshgpt-pytorch", "1.8.1"),
        ("muse-maskgit-pytorch", "0.3.5"),
        ("realesrgan", "0.3.0"),
        ("espnet", "202511"),
        ("gfpgan", "1.3.8"),
        ("open-flamingo", "2.0.1"),
        ("torchgan", "0.1.0"),
        ("colossalai", "0.5.0"),
        ("torchdistill", "1.1.5"),
        ("blitz-bayesian-pytorch", "0.2.8"),
        ("naturalspeech2-pytorch", "0.1.8"),
        ("nerfacc", "0.5.3"),
        ("continuum", "1.2.7"),
    ],
    # ... and dev10: 18 of 26 more unused libraries drawn by random.Random(202612023).shuffle (theseus-ai,
    # drawn, has no wheel and its sdist needs torch to build)
    "dev10": [
        ("dadaptation", "3.2"),
        ("roma", "1.8.0"),
        ("spikingjelly", "2.0.0"),
        ("torchquantum", "0.1.8"),
        ("pypose", "0.9.5"),
        ("snntorch", "1.0.0"),
        ("imitation", "1.0.1"),
        ("elegantrl", "0.3.6"),
        ("lhotse", "1.33.0"),
        ("fastnlp", "1.0.1"),
        ("xformers", "0.0.35"),
        ("galore-torch", "1.0"),
        ("pytorch-optimizer", "4.1.0"),
        ("mmsegmentation", "1.2.2"),
        ("pytorch-ood", "0.4.0"),
        ("recbole", "1.2.1"),
        ("neuromancer", "1.5.6"),
    ],
    "holdout5": [
        ("nnAudio", "0.3.4"),
        ("deepchem", "2.8.0"),
        ("bitsandbytes", "0.50.2"),
        ("adversarial-robustness-toolbox", "1.20.1"),
        ("ogb", "1.3.6"),
        ("torchrec", "1.9.2"),
        ("lightweight-gan", "1.2.1"),
        ("torchao", "0.18.0"),
        ("torchattacks", "3.5.1"),
        ("deepxde", "1.15.0"),
        ("nnunetv2", "2.8.1"),
        ("torchaudio", "2.11.1"),
        ("solo-learn", "1.0.2"),
        ("momentfm", "0.1.4"),
        ("pytorch-crf", "0.7.2"),
        ("neurodiffeq", "0.7.0"),
        ("titans-pytorch", "0.5.5"),
        ("sb3-contrib", "2.9.2"),
        ("effdet", "0.4.1"),
        ("litgpt", "0.5.13"),
        ("torchquad", "0.6.0"),
    ],
    # sixth session: 69 unused libraries (each with a release on PyPI) split by
    # random.Random(20261204).shuffle, after sorting by name, into a holdout of 23 and two tuning sets
    "dev11": [
        ("unbabel-comet", "2.2.7"),
        ("mmocr", "1.0.1"),
        ("deepctr-torch", "0.3.0"),
        ("openunmix", "1.3.0"),
        ("scvi-tools", "1.4.2"),
        ("zennit", "0.5.1"),
        ("torch-spatiotemporal", "0.9.5"),
        ("parler-tts", "0.2.3"),
        ("bindsnet", "0.3.4"),
        ("mmpose", "1.3.2"),
        ("torchopt", "0.7.3"),
        ("heavyball", "3.2.1"),
        ("hqq", "0.2.8.post1"),
        ("prodigyopt", "1.1.2"),
        ("face-alignment", "1.5.0"),
        ("madgrad", "1.3"),
        ("soft-moe-pytorch", "0.1.9"),
        ("mup", "1.0.0"),
        ("mmagic", "1.2.0"),
        ("adabelief-pytorch", "0.2.1"),
        ("rotary-embedding-torch", "0.9.1"),
        ("local-attention", "1.11.2"),
        ("pytorch-fid", "0.3.0"),
    ],
    "dev12": [
        ("speechtokenizer", "1.0.1"),
        ("se3-transformer-pytorch", "0.9.0"),
        ("optimum", "2.3.0"),
        ("cellpose", "4.2.1.1"),
        ("perceiver-ar-pytorch", "0.0.10"),
        ("st-moe-pytorch", "0.1.8"),
        ("x-clip", "0.14.4"),
        ("kokoro", "0.9.4"),
        ("performer-pytorch", "1.1.4"),
        ("tab-transformer-pytorch", "0.6.1"),
        ("f5-tts", "1.1.22"),
        ("linformer", "0.2.3"),
        ("funasr", "1.4.16"),
        ("OpenNMT-py", "3.5.1"),
        ("snac", "1.2.1"),
        ("nncf", "3.4.0"),
        ("conformer", "0.3.2"),
        ("lampe", "0.9.0"),
        ("mbrl", "0.2.0"),
        ("evotorch", "0.6.1"),
        ("pytorch-nlp", "0.5.0"),
        ("agilerl", "2.58.0"),
        ("torch-lucent", "0.1.8"),
    ],
    "holdout6": [
        ("stanza", "1.15.0"),
        ("invariant-point-attention", "0.2.2"),
        ("funsor", "0.4.8"),
        ("optimum-quanto", "0.2.7"),
        ("gliner", "0.2.29"),
        ("memorizing-transformers-pytorch", "0.4.1"),
        ("clean-fid", "0.1.35"),
        ("timesfm", "3.0.2"),
        ("En-transformer", "1.6.6"),
        ("came-pytorch", "0.1.3"),
        ("reformer-pytorch", "1.4.4"),
        ("fvcore", "0.1.5.post20221221"),
        ("setfit", "1.2.0"),
        ("texar-pytorch", "0.1.4"),
        ("pytorchcv", "0.0.74"),
        ("torchdrift", "0.1.0.post1"),
        ("rwkv", "0.8.32"),
        ("crypten", "0.4.1"),
        ("nystrom-attention", "0.0.14"),
        ("hummingbird-ml", "0.4.12"),
        ("sockeye", "3.1.34"),
        ("ptflops", "0.7.5"),
        ("mmaction2", "1.2.0"),
    ],
    # seventh session: 80 unused libraries (each with a release on PyPI, all downloaded and unpacked) split by
    # random.Random(20261205).shuffle, after sorting by name, into a holdout of 28 and two tuning sets of 26
    "dev13": [
        ("yolov5", "7.0.14"),
        ("thinc", "9.1.1"),
        ("bottleneck-transformer-pytorch", "0.1.4"),
        ("make-a-video-pytorch", "0.4.0"),
        ("mmyolo", "0.6.0"),
        ("pytorch-memlab", "0.3.2"),
        ("span-marker", "1.8.1"),
        ("pyiqa", "0.1.16"),
        ("adan-pytorch", "0.1.0"),
        ("pytorch-kinematics", "0.10.0"),
        ("petals", "2.2.0.post1"),
        ("pyod", "3.6.7"),
        ("linear-attention-transformer", "0.19.1"),
        ("megatron-core", "0.16.1"),
        ("benchmarl", "1.5.2"),
        ("hyper-connections", "0.4.11"),
        ("pretrainedmodels", "0.7.4"),
        ("mlp-mixer-pytorch", "0.3.1"),
        ("poutyne", "1.19.0"),
        ("routing-transformer", "1.6.1"),
        ("nvidia-physicsnemo", "2.2.2"),
        ("torchlens", "2.36.1"),
        ("g-mlp-pytorch", "0.1.5"),
        ("pytorch-accelerated", "0.1.61"),
        ("einx", "0.4.3"),
        ("robustbench", "1.1.1"),
    ],
    "dev14": [
        ("controlnet-aux", "0.0.10"),
        ("vmas", "1.5.2"),
        ("bert-score", "0.3.13"),
        ("spear-tts-pytorch", "0.4.8"),
        ("dalle-pytorch", "1.6.6"),
        ("textattack", "0.3.11"),
        ("granite-tsfm", "0.3.11"),
        ("lambda-networks", "0.4.0"),
        ("silero-vad", "6.2.3"),
        ("video-diffusion-pytorch", "0.7.0"),
        ("sahi", "0.12.8"),
        ("resemblyzer", "0.1.4"),
        ("audio-diffusion-pytorch", "0.1.3"),
        ("equiformer-pytorch", "0.5.4"),
        ("mmdet3d", "1.4.0"),
        ("cleanrl", "0.4.8"),
        ("torchinfo", "1.8.0"),
        ("ctgan", "0.12.1"),
        ("hivemind", "1.1.12"),
        ("torchtitan", "0.3.0"),
        ("shap", "0.51.0"),
        ("pyvene", "0.1.8"),
        ("whisperx", "3.8.6"),
        ("alibi-detect", "0.13.0"),
        ("retro-pytorch", "0.3.9"),
        ("advertorch", "0.2.3"),
    ],
    "holdout7": [
        ("phenaki-pytorch", "0.5.0"),
        ("mixture-of-experts", "0.2.3"),
        ("PaLM-rlhf-pytorch", "0.8.0"),
        ("simpletransformers", "0.70.8"),
        ("chatterbox-tts", "0.1.7"),
        ("xlstm", "2.0.6"),
        ("product-key-memory", "0.3.0"),
        ("CoCa-pytorch", "0.1.0"),
        ("thop", "0.1.1.post2209072238"),
        ("flamingo-pytorch", "0.1.2"),
        ("point-transformer-pytorch", "0.1.5"),
        ("halonet-pytorch", "0.0.5"),
        ("inseq", "0.7.1"),
        ("torchmeta", "1.8.0"),
        ("styletts2", "0.1.6"),
        ("mmrotate", "0.3.4"),
        ("transformers-interpret", "0.10.0"),
        ("pina-mathlab", "0.3.2.post2610"),
        ("torchphysics", "1.1.2"),
        ("synthcity", "0.2.12"),
        ("descript-audiotools", "0.7.2"),
        ("toolformer-pytorch", "0.0.30"),
        ("axial-attention", "0.6.1"),
        ("unit-scaling", "0.3.5"),
        ("llmcompressor", "0.14.0.1"),
        ("torchscale", "0.3.0"),
        ("deeprobust", "0.2.11"),
        ("compressed-tensors", "0.20.1"),
    ],
    "dev15": [
        ("cleanlab", "2.9.0"),
        ("parti-pytorch", "0.2.0"),
        ("h-transformer-1d", "0.1.9"),
        ("cogdl", "0.6"),
        ("pytorch-warmup", "0.2.0"),
        ("whisperspeech", "0.8.9"),
        ("torchsummary", "1.5.1"),
        ("auto-gptq", "0.7.1"),
        ("chgnet", "0.4.2"),
        ("torchx", "0.7.0"),
        ("compressive-transformer-pytorch", "0.4.0"),
        ("nni", "3.0"),
        ("torchdata", "0.11.0"),
        ("mmrazor", "1.0.0"),
        ("matgl", "4.1.2"),
        ("CALM-pytorch", "0.2.2"),
        ("pi-zero-pytorch", "0.5.17"),
        ("uformer-pytorch", "0.0.8"),
        ("torchxrayvision", "1.5.7"),
        ("TotalSegmentator", "2.18.0"),
    ],
    "dev16": [
        ("mmflow", "0.5.2"),
        ("sinkhorn-transformer", "0.11.4"),
        ("audiosr", "0.0.7"),
        ("gptqmodel", "7.7.0"),
        ("onnx2torch", "1.5.15"),
        ("memory-efficient-attention-pytorch", "0.1.6"),
        ("aqlm", "1.1.7"),
        ("dgl", "2.1.0"),
        ("scgpt", "0.2.4"),
        ("lightning-thunder", "0.2.6"),
        ("hiddenlayer", "0.3"),
        ("tortoise-tts", "3.0.0"),
        ("spacy-transformers", "1.4.0"),
        ("mmtrack", "0.14.0"),
        ("graphein", "1.7.8"),
        ("torchtyping", "0.1.5"),
        ("orb-models", "0.5.5"),
        ("fairseq2", "0.8.1"),
        ("sevenn", "0.13.0"),
        ("block-recurrent-transformer-pytorch", "0.4.4"),
    ],
    "holdout8": [
        ("nuwa-pytorch", "0.7.8"),
        ("mattersim", "1.2.3"),
        ("audioldm", "0.1.1"),
        ("foolbox", "3.3.4"),
        ("deep-daze", "0.11.1"),
        ("model-compression-toolkit", "2.6.1"),
        ("nemo-toolkit", "3.0.0"),
        ("res-mlp-pytorch", "0.0.6"),
        ("siren-pytorch", "0.1.7"),
        ("transfusion-pytorch", "0.20.0"),
        ("neural-compressor", "3.10"),
        ("mega-pytorch", "0.1.0"),
        ("torchreid", "0.2.5"),
        ("MEGABYTE-pytorch", "0.3.6"),
        ("mmselfsup", "1.0.0"),
        ("autoawq", "0.2.9"),
        ("insightface", "2.1"),
        ("recurrent-memory-transformer-pytorch", "0.7.0"),
        ("auto-round", "0.16.1"),
        ("big-sleep", "0.9.1"),
        ("mmfewshot", "0.1.0"),
        ("torchviz", "0.0.3"),
        ("alignn", "2026.8.11"),
        ("dive-into-graphs", "1.1.0"),
    ],
}


def _log(message: str) -> None:
    print(f"[libraries] {message}", file=sys.stderr, flush=True)


def _normalized(name: str) -> str:
    return name.replace("-", "_").replace(".", "_").lower()


def _archive_for(name: str, version: str) -> Path | None:
    prefix = f"{_normalized(name)}-{version}"
    for path in sorted(WHEELS_DIR.iterdir()) if WHEELS_DIR.is_dir() else []:
        stem = path.name.replace("-", "_").lower()
        if stem.startswith(prefix.replace("-", "_")) and path.name.endswith((".whl", ".tar.gz", ".zip")):
            return path
    return None


def _download(name: str, version: str) -> Path:
    WHEELS_DIR.mkdir(parents=True, exist_ok=True)
    archive = _archive_for(name, version)
    if archive is not None:
        return archive
    _log(f"downloading {name}=={version} (pip download --no-deps)")
    base = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(WHEELS_DIR)]
    # a wheel first (no build step); an sdist only when the version has no wheel
    proc = subprocess.run([*base, "--only-binary=:all:", f"{name}=={version}"], check=False)
    if proc.returncode != 0:
        subprocess.run([*base, "--no-binary=:all:", f"{name}=={version}"], check=True)
    archive = _archive_for(name, version)
    if archive is None:
        raise RuntimeError(f"pip download produced no archive for {name}=={version}")
    return archive


def ensure_library(name: str, version: str) -> Path:
    """The unpacked `.py` files of `name==version`; downloads on first use."""
    target = LIBS_DIR / f"{_normalized(name)}-{version}"
    if target.is_dir():
        return target
    archive = _download(name, version)
    _log(f"unpacking {archive.name}")
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if archive.name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.namelist() if m.endswith(".py") and ".." not in Path(m).parts]
            zf.extractall(tmp, members)
    else:
        with tarfile.open(archive) as tf:
            members = [
                m
                for m in tf.getmembers()
                if m.isfile() and m.name.endswith(".py") and ".." not in Path(m.name).parts
            ]
            tf.extractall(tmp, members, filter="data")
    os.replace(tmp, target)
    return target


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_gradguard(directory: Path, jobs: int) -> tuple[list[dict], float, list[str]]:
    argv = [sys.executable, "-m", "gradguard", "check", "--format", "json", "--exit-zero", "-j", str(jobs)]
    # cold runs, and no result cache written into the corpus
    env = dict(os.environ, PYTHONPATH=str(corpus.ROOT / "server"), NO_COLOR="1", GRADGUARD_NO_CACHE="1")
    before = _children_cpu()
    # run inside the library's directory: paths in the report are relative to it
    proc = subprocess.run([*argv, "."], capture_output=True, text=True, env=env, cwd=directory, check=False)
    cpu = _children_cpu() - before
    if proc.returncode not in (0, 1):
        raise SystemExit(f"gradguard failed on {directory} ({proc.returncode}):\n{proc.stderr[-3000:]}")
    notes = [line for line in proc.stderr.splitlines() if line.startswith("gradguard:")]
    return json.loads(proc.stdout or "[]"), cpu, notes


def _context(path: Path, line: int, around: int = 2) -> list[tuple[int, str]]:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    lo, hi = max(1, line - around), min(len(lines), line + around)
    return [(n, lines[n - 1]) for n in range(lo, hi + 1)]


def review_markdown(set_name: str, libraries: list[dict]) -> str:
    out = [f"# gradguard findings on the `{set_name}` libraries", ""]
    out.append("| library | version | files | lines | CPU s | findings |")
    out.append("|---|---|---:|---:|---:|---:|")
    for lib in libraries:
        out.append(
            f"| {lib['name']} | {lib['version']} | {lib['files']} | {lib['lines']} "
            f"| {lib['cpu_seconds']:.1f} | {len(lib['findings'])} |"
        )
    total_lines = sum(lib["lines"] for lib in libraries)
    total_findings = sum(len(lib["findings"]) for lib in libraries)
    out += ["", f"Total: {total_lines} lines, {total_findings} findings.", ""]
    out.append("For each finding: verdict = real bug / false positive / debatable, and the reason.")
    for lib in libraries:
        if not lib["findings"]:
            continue
        out += ["", f"## {lib['name']} {lib['version']}"]
        root = Path(lib["path"])
        for n, f in enumerate(lib["findings"], 1):
            out += ["", f"### {lib['name']}-{n}: {f['code']} {f['name']} — `{f['path']}:{f['line']}`", ""]
            out.append(f"> {f['message']}")
            out += ["", "```python"]
            for number, text in _context(root / f["path"], f["line"]):
                marker = ">" if f["line"] <= number <= f["end_line"] else " "
                out.append(f"{marker}{number:5d} | {text}")
            out += ["```", "", "verdict: "]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--set", choices=[*LIBRARIES, "all"], default="dev")
    parser.add_argument("--jobs", type=int, default=0, help="-j for gradguard (default: all cores)")
    parser.add_argument("--only", nargs="+", help="only these libraries (PyPI names) of the set")
    args = parser.parse_args(argv)

    sets = list(LIBRARIES) if args.set == "all" else [args.set]
    chosen = [(s, name, version) for s in sets for name, version in LIBRARIES[s]]
    if args.only:
        chosen = [c for c in chosen if c[1] in set(args.only)]
    libraries = []
    for set_name, name, version in chosen:
        directory = ensure_library(name, version)
        files = corpus.python_files(directory)
        lines = sum(corpus.count_lines(p.read_text(encoding="utf-8", errors="replace")) for p in files)
        findings, cpu, notes = run_gradguard(directory, args.jobs)
        findings.sort(key=lambda f: (f["path"], f["line"], f["column"]))
        libraries.append(
            {
                "set": set_name,
                "name": name,
                "version": version,
                "path": str(directory),
                "files": len(files),
                "lines": lines,
                "cpu_seconds": round(cpu, 2),
                "skipped_or_failed": notes,
                "findings": findings,
            }
        )
        _log(f"{name} {version}: {len(files)} files, {lines} lines, {len(findings)} findings, {cpu:.1f}s CPU")

    print(f"{'set':<8} {'library':<28} {'version':<9} {'files':>6} {'lines':>9} {'CPU s':>7} {'findings':>8}")
    for lib in libraries:
        print(
            f"{lib['set']:<8} {lib['name']:<28} {lib['version']:<9} {lib['files']:6d} {lib['lines']:9d} "
            f"{lib['cpu_seconds']:7.1f} {len(lib['findings']):8d}"
        )
    for set_name in sets:
        libs = [lib for lib in libraries if lib["set"] == set_name]
        lines = sum(lib["lines"] for lib in libs)
        cpu = sum(lib["cpu_seconds"] for lib in libs)
        per_rule = Counter(f["code"] for lib in libs for f in lib["findings"])
        rate = f"{lines / cpu:,.0f} lines/CPU-s" if cpu else "-"
        print(
            f"{set_name}: {len(libs)} libraries, {lines} lines, {cpu:.1f} CPU-s ({rate}), "
            f"{sum(per_rule.values())} findings"
            + (f" ({', '.join(f'{k}={v}' for k, v in sorted(per_rule.items()))})" if per_rule else "")
        )

    corpus.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    base = corpus.RESULTS_DIR / f"libraries-{args.set}-{stamp}"
    payload = {"set": args.set, "libraries": libraries}
    base.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    base.with_suffix(".md").write_text(review_markdown(args.set, libraries), encoding="utf-8")
    print(f"wrote {base.relative_to(corpus.ROOT)}.json and .md (the review list)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
