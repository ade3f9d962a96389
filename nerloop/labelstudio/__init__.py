"""Label Studio as the experts' tool of the active learning loop: an ML backend that serves the
current model (``backend``) and a small client of Label Studio's API (``client``)."""
