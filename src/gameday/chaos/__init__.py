"""Chaos Toolkit providers of gameday: the actions and probes experiment files name.

    provider: {type: python, module: gameday.chaos.actions, func: kill_pods, arguments: {count: 1}}

Every action goes through the engine's ledger-first injection path.
"""
