"""Semi-supervised building blocks: TSA, consistency losses, sharpening, MixUp, masks."""
