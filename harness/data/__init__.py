"""Packaged data, read through `harness.resources` (never by path from here).

`profiles`, `experiments` and `manifests` are relative symlinks to the repository's top-level
`scenarios/profiles`, `scenarios/experiments` and `manifests/`: the data is edited there, an
editable install reads it through the links, and a wheel build copies the files in (setuptools
follows the links), so an installed wheel carries real directories with the same layout.
"""
