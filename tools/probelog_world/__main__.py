"""``python -m probelog_world build --scale tiny --seed 0 --out DIR``."""

from __future__ import annotations

from probelog_world.cli import main

raise SystemExit(main())
