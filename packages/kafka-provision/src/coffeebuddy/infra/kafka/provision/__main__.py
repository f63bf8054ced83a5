"""`python -m coffeebuddy.infra.kafka.provision` = `coffeebuddy-kafka`."""

from __future__ import annotations

import sys

from coffeebuddy.infra.kafka.provision._cli import main

if __name__ == "__main__":
    sys.exit(main())
