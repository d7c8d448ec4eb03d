"""safeadapt: measure and repair the safety cost of adapting aligned language models.

Stages of the loop live in sub-packages: io, data, eval, diagnose, repair, train, study, report.
"""

__version__ = "0.1.0"

# SAFEADAPT_NO_PROGRESS=1 silences every progress bar, the libraries' tqdm bars included: set their
# switches before they are imported (cheap: environment only unless they are loaded already)
from safeadapt.core.runtime import quiet_progress as _quiet_progress  # noqa: E402

_quiet_progress()
