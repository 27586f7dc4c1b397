"""Data-quality checks in SageMaker Model Monitor's formats, as a bring-your-own-container image.

Model Monitor's own analyzer is a closed AWS image, and localmaker has no Spark; this package
reproduces the parts our pipelines rely on (``statistics.json``, ``constraints.json``,
``constraint_violations.json`` and their check names) so the same monitoring Processing job runs
on AWS and on localmaker. It deliberately imports nothing from ``localmaker``, ``include`` or
``dags``: it runs inside an image.

Modules, one role each:

* ``config``  - the environment-variable contract (Model Monitor's BYOC names plus ours)
* ``table``   - token typing (Integral/Fractional/String), baseline CSV/JSON-lines reading
* ``capture`` - data-capture jsonl -> rows, with window filtering and malformed-line accounting
* ``stats``   - statistics.json and suggested constraints.json
* ``checks``  - constraint evaluation and distribution distances -> violations
* ``report``  - JSON writers and the drift plot
* ``cli``     - the ``baseline`` and ``analyze`` programs, exit codes, the failure message file
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
