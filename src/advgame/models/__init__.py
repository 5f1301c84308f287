"""Classifiers: ReLU architectures, training, and weights-only checkpoints."""

from advgame.models.architectures import ARCHITECTURES, MLP, LinearModel, SmallCNN, build_model
from advgame.models.checkpoint import load_checkpoint, save_checkpoint
from advgame.models.training import TrainConfig, TrainHistory, accuracy, frozen, predict, train

__all__ = [
    "ARCHITECTURES", "MLP", "LinearModel", "SmallCNN", "TrainConfig", "TrainHistory",
    "accuracy", "build_model", "frozen", "load_checkpoint", "predict", "save_checkpoint", "train",
]
