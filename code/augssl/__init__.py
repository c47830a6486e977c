"""augssl: augmentation-driven semi-supervised learning and learned data augmentation."""

__version__ = "0.1.0"
