"""ganstab: stable GAN training with every well-known trick behind one validated config."""

__version__ = "0.1.0"
