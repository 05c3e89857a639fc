"""Gauntlet as a chaostoolkit extension: a control that deploys and tears down, probes and actions.

An experiment lists `harness.chaos.control` under `controls` and calls activities from
`harness.chaos.steady_state` (probes) / `harness.chaos.actions`, so it runs with plain
`chaos run` as well as with `gauntlet gameday`.
"""
