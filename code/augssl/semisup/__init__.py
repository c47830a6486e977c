"""Semi-supervised building blocks: TSA, consistency losses, pseudo-labels, sharpening,
MixUp, masks, the joint forward pass of the views."""
