"""Training losses: BCE plus soft Dice (the default) or plus the Lovász hinge (`--loss`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dice_bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    bce = F.binary_cross_entropy_with_logits(logits, target)
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum()
    dice = 1 - (2 * inter + 1) / (prob.sum() + target.sum() + 1)
    return bce + dice


def lovasz_hinge(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Lovász hinge (Berman et al., CVPR 2018), per image then averaged: a convex surrogate of 1 - IoU.

    Dice and BCE reward pixels; this ranks each image's pixel errors and weights them by how much each
    would change that image's IoU, which is the figure the model is judged by.
    """
    losses = []
    for logit, truth in zip(logits.flatten(1), target.flatten(1), strict=True):
        signs = 2 * truth - 1
        errors = 1 - logit * signs
        errors_sorted, order = torch.sort(errors, descending=True)
        truth_sorted = truth[order]
        positives = truth_sorted.sum()
        intersection = positives - truth_sorted.cumsum(0)
        union = positives + (1 - truth_sorted).cumsum(0)
        jaccard = 1 - intersection / union
        grad = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
        losses.append(torch.dot(F.relu(errors_sorted), grad))
    return torch.stack(losses).mean()


def bce_lovasz_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, target) + lovasz_hinge(logits, target)


LOSSES = {"dice": dice_bce_loss, "lovasz": bce_lovasz_loss}
