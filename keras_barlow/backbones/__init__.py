"""Encoders: ResNets that are KerasHub backbones (and that KerasCV accepts), and their input statistics."""

from keras_barlow.backbones.normalization import IMAGENET_MEAN, IMAGENET_STD, check_mean_std
from keras_barlow.backbones.resnet import RESNET_DEPTHS, BarlowResNetBackbone, Grayscale, resnet

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "RESNET_DEPTHS",
    "BarlowResNetBackbone",
    "Grayscale",
    "check_mean_std",
    "resnet",
]
