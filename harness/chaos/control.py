"""chaostoolkit control: deploy before the experiment, tear down after it (rollbacks run first).

Use in an experiment:
    "controls": [
        {"name": "gauntlet", "provider": {"type": "python", "module": "harness.chaos.control"}}
    ]
Configuration keys (all optional, see `harness.chaos.session.DEFAULTS`): gauntlet_backend,
gauntlet_profile, gauntlet_manifests, gauntlet_out, gauntlet_runtime, gauntlet_debug_endpoints,
gauntlet_context, gauntlet_report, gauntlet_deploy_timeout_s.

chaostoolkit swallows a failing control, so a failed deployment raises InterruptExecution:
the experiment stops (status "interrupted"), rollbacks still run and are no-ops.
"""

from __future__ import annotations

import logging
from typing import Any

from chaoslib.exceptions import InterruptExecution

from harness.chaos import session
from harness.run import evidence

logger = logging.getLogger("chaostoolkit")


def before_experiment_control(
    context: dict[str, Any], configuration: dict[str, Any] | None = None, **_: Any
) -> None:
    try:
        # logs the deployment (certify.log and chaostoolkit's log)
        session.open_gameday(configuration)
    except Exception as err:
        logger.error("gauntlet: deployment failed: %s", err)
        raise InterruptExecution(f"gauntlet: deployment failed: {err}") from err


def after_experiment_control(
    context: dict[str, Any],
    state: Any = None,
    configuration: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    gd = session.close_gameday()
    conf = session.settings_from(configuration)
    if gd is None or not conf["gauntlet_report"] or not isinstance(state, dict):
        return
    # plain `chaos run`: leave the journal and the Gauntlet report next to the evidence
    from harness.chaos.journal import write_report

    evidence.write_json(gd.run_dir / evidence.JOURNAL, state)
    write_report(state, context, conf, gd.run_dir)  # logs the verdict
