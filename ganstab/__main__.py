"""Allow `python -m ganstab ...` (used by torchrun)."""

from ganstab.cli import main

raise SystemExit(main())
