"""``python -m neurons.generator``: run the generative miner (what pm2 starts; see miner.py)."""

import sys

from neurons.generator.miner import main

sys.exit(main())
