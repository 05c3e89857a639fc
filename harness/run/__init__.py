"""The run engine every entry point drives: `gauntlet certify`, the pytest suites in
`scenarios/`, and game days.

- `options`: a run's inputs (CertifyOptions; profile, manifests, backend options) resolved and
  checked before anything is deployed;
- `engine`: the run itself (contexts, certify.log, report.json after every scenario, signals
  and interrupts, the outputs, exit codes) and `certify`;
- `evidence`: every file name of a run directory, and the writers they share;
- `live_table`: certify's live table.

Nothing is imported here: `harness.report` reads `harness.run.evidence` without pulling in
the engine.
"""
