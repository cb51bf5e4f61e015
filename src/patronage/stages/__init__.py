"""One module per job task; each exposes ``run(ctx)`` and a wheel ``main``."""
