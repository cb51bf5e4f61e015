"""CLI sub-commands: every module here has ``register(subparsers)``.

``patronage.cli`` imports each module in this package, so adding a command is
adding a module; no central list to edit.
"""
