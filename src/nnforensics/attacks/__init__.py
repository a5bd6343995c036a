"""Adversarial attacks on a classifier's inputs (untargeted, L-infinity): FGSM and PGD.

Models take inputs in [0, 1] with normalisation inside (``LoadedModel.classifier()``)::

    attack = make_attack("pgd", model, eps=0.1, steps=20)
    x_adv = adversarial_examples(attack, x, y, device="cuda")
    accuracy_under_attack(model, x, y, attack)   # {"accuracy": %, "n": N}
"""

from .base import Attack
from .evaluate import accuracy_under_attack, adversarial_examples
from .fgsm import FGSM
from .pgd import PGD
from .registry import ATTACKS, attack_options, make_attack

__all__ = ["ATTACKS", "FGSM", "PGD", "Attack", "accuracy_under_attack", "adversarial_examples", "attack_options",
           "make_attack"]
