"""``python -m neurons.discriminator``: the same as ``python -m neurons.discriminator.push_model``."""

import sys

from neurons.discriminator.push_model import main

sys.exit(main())
