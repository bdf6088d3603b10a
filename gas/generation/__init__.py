"""Media generation for the generative miner: services, the durable task engine, C2PA signing."""
