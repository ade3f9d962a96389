"""The active learning loop (``al`` step): pick the sentences the model is least sure about, have
experts label them (gold labels stand in for them), fine-tune, stop when the gain stalls.

See ``scripts/al/loop.py`` for the loop, ``scripts/al/strategies.py`` for the strategies.
"""

from __future__ import annotations

from nerloop.al.loop import (
    STUDY_SETTINGS,
)

# The defaults are the study's loop settings over the whole pool. From a CNN init model
# (configs/tagger_cnn.cfg), timed on samples on 2 busy CPU cores (load ~7): scoring the 12,004
# sentence pool ~20 s (590 sentences/s; bald 290/s), fine-tuning ~2,600 words/s (2 epochs of
# ~22k words ~17 s), dev ~11,600 words/s (~5 s): ~45 s an iteration, ~11 minutes for 15
# (~16 with bald). A transformer init model on CPU scores ~25 sentences/s and trains ~30x
# slower: use the GPU var set in the help, or --pool-sample and fewer iterations.
# with --hub-repo: which checkpoints are on the Hub (beside history.json; never holds the token)
HUB_RECORD_FILE = "hub_pushed.json"
DEFAULTS = {**STUDY_SETTINGS, "initial_epochs": None, "pool_sample": 0}




