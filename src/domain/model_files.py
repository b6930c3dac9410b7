"""How model files are named for the package's scripts, per FEDn 0.33 helper type.

The stock client hands ``train``/``validate``/``predict`` temp files made by its helper,
and scripts may look at the suffix (``np.savez`` appends ``.npz`` to a path without it).
FEDn 0.33 ships four helpers; their temp files end in:

* ``numpyhelper``: ``.npz``;
* ``binaryhelper``: ``.npz`` too (it reuses numpyhelper's naming; the content is raw float64);
* ``splitlearninghelper``: ``.npz``;
* ``androidhelper``: no suffix at all.
"""

from __future__ import annotations

DEFAULT_HELPER = "numpyhelper"
MODEL_SUFFIXES = {
    "numpyhelper": ".npz",
    "binaryhelper": ".npz",
    "splitlearninghelper": ".npz",
    "androidhelper": "",
}


def choose_helper(configured: str | None, from_controller: str | None) -> str:
    """The stock client's order: the client's own setting, then the controller's, then numpyhelper."""
    return (configured or "").strip() or (from_controller or "").strip() or DEFAULT_HELPER


def model_suffix(helper_type: str) -> str | None:
    """The suffix the stock client gives model files for ``helper_type``; None for a helper it lacks."""
    return MODEL_SUFFIXES.get(helper_type)
