"""What a run reports: ``model`` (the steps and their outcomes, from pytest's reports), ``page``
(``report.html``), ``summary`` (``summary.json``, ``summary.md``), ``write`` (the run's directory) and
``cost`` (what the run cost)."""
