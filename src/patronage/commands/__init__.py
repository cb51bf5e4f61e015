"""CLI sub-commands: every module here has ``register(subparsers)``.

``patronage.cli`` imports each module in this package, so adding a command is
adding a module; no central list to edit. Every parser created with
``subparsers.add_parser(...)`` already has the common options ``--target``,
``--state-dir``, ``--var NAME=VALUE``, ``--bundle-dir`` and ``--job`` (cli.py
injects them as parent parsers), so ``patronage.runner.resolve_settings(args)``
works in any command.
"""
